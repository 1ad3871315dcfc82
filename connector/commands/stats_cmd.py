"""``mall-connector stats``: MALL API calls per day by kind, from the ledger (issue 17, docs/quota.md)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import click

from connector.cli import Context, friendly_errors, pass_ctx
from connector.commands.account_option import account_option, chosen_account
from connector.commands.output import emit

#: The kinds a partner reads first, in this order; any other kind the ledger holds follows them.
KINDS = ("push", "confirm", "read", "sweep", "list", "verify", "labels", "serials", "stats", "other")


@click.command("stats", short_help="MALL API calls per day by kind (push, confirm, read, sweep, list, verify).")
@click.option("--days", type=click.IntRange(1, 366), default=7, show_default=True,
              help="How many days back, today included (days in [shop] timezone).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@account_option
@pass_ctx
@friendly_errors
def stats(ctx: Context, days: int, fmt: str, account: str | None = None) -> None:
    """Show how many MALL API calls the connector made per day, by kind, against the daily quota MALL sets.

    Kinds: push (status and tracking PUTs), confirm (PUT confirmed), read (GET of one order), sweep (the
    unconfirmed list), list (batched state reads), verify (batched checks of recent confirmations), labels,
    serials, stats, other. `errors` counts calls MALL answered with an error or not at all. Counted by the
    service (`run`), `sync-once` and `orders list --refresh`. The quota itself is shown by `mall-connector
    check` and the metrics.

    \b
    Examples:
      mall-connector stats
      mall-connector stats --days 30 --format csv > mall-calls.csv
      mall-connector stats --account sk
    """
    from connector.commands.ops_cmd import _ledger

    cfg = ctx.config()
    account = chosen_account(cfg, account)
    tz = ZoneInfo(cfg.shop.timezone)
    today = datetime.now(timezone.utc).astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    ledger = _ledger(ctx)
    try:
        found = ledger.calls.per_day(first.isoformat(), account=account)
        from connector.sync.ratelimit import _stored_quota

        quota = _stored_quota(ledger)
    finally:
        ledger.close()
    kinds = list(KINDS) + sorted({k for _, k, _, _ in found} - set(KINDS))
    by_day: dict[str, dict[str, int]] = {}
    errors: dict[str, int] = {}
    for day, kind, calls, errs in found:
        by_day.setdefault(day, {})[kind] = calls
        errors[day] = errors.get(day, 0) + errs
    rows = []
    for i in range(days):
        day = (today - timedelta(days=i)).isoformat()
        counts = by_day.get(day, {})
        rows.append([day, *(counts.get(k, 0) for k in kinds), sum(counts.values()), errors.get(day, 0)])
    emit(fmt, ["day", *kinds, "total", "errors"], rows)
    if fmt == "table":
        click.echo(f"(days in {cfg.shop.timezone})")
        if quota and quota.get("day_limit"):
            click.echo(f"MALL's daily limit as last told: {quota['day_limit']} calls"
                       + (f", {quota['day_remaining']} left" if quota.get("day_remaining") is not None else ""))
