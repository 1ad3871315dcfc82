"""`mall-connector ledger ...`: look into and steer the ledger."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

import click

from connector.cli import Context, friendly_errors, pass_ctx
from connector.commands.account_option import account_option, chosen_account, several
from connector.commands.output import emit, render_table
from connector.ledger.types import ChangeState, ItemKind, parse_item_ref
from connector.safety import terminal_safe

S = ChangeState
STATE_FILTERS = {
    "pending": (S.PENDING, S.SENDING),
    "retry": (S.RETRY,),
    "done": (S.DONE,),
    "skipped": (S.SKIPPED,),
    "failed": (S.FAILED,),
    "all": None,
}
NOT_DONE = (S.PENDING, S.SENDING, S.RETRY, S.SKIPPED, S.FAILED)


@contextmanager
def _ledger(ctx: Context, *, read_only: bool = False) -> Iterator:
    """The config's ledger, closed when the command ends. ``read_only``: never create a missing one."""
    from connector.ledger import open_ledger

    if read_only:
        from connector.preflight import require_existing_ledger

        require_existing_ledger(ctx.config())
    ledger = open_ledger(ctx.config().ledger.url)
    try:
        yield ledger
    finally:
        ledger.close()


@click.group("ledger")
def ledger_group() -> None:
    """Inspect and steer the ledger of changes (what was seen, decided and sent)."""


@ledger_group.command("list")
@click.option("--state", type=click.Choice(list(STATE_FILTERS)), default=None,
              help="Only changes in this state. Default: everything not done.")
@click.option("--order", "order_id", type=int, default=None, help="Only changes of this MALL order id.")
@click.option("--needs-action", is_flag=True,
              help="List the orders where a human must act: kind, how the item closes, what to do.")
@click.option("--since", "since", default=None, metavar="DATE",
              help="Only changes updated since DATE (YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]', [shop] timezone).")
@click.option("--all", "show_all", is_flag=True, help="Also show skipped changes older than 7 days (hidden by default).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@account_option
@pass_ctx
@friendly_errors
def ledger_list(ctx: Context, state: str | None, order_id: int | None, needs_action: bool, since: str | None,
                show_all: bool, fmt: str, account: str | None) -> None:
    """List changes, one line each: change id, MALL order, shop status, target MALL status, state,
    attempts, updated (in [shop] timezone), reason. Skipped changes older than 7 days are hidden
    unless --all.

    Examples: mall-connector ledger list; mall-connector ledger list --state failed;
    mall-connector ledger list --since 2026-12-01; mall-connector ledger list --needs-action
    """
    _list_changes(ctx, state, order_id, needs_action, since, show_all, fmt, account)


def _list_changes(ctx: Context, state, order_id, needs_action: bool, since, show_all: bool, fmt: str,
                  account: str | None = None) -> None:
    """issue 14: times in [shop] timezone (ISO with offset in JSON), --since, old skipped changes hidden."""
    from connector.commands.needs_action_view import list_needs_action
    from connector.ledger.listing import list_changes
    from connector.timefmt import iso, local, zone_name

    tz = ctx.config().shop.timezone
    since_utc = _parse_since(since, tz) if since else None
    account = chosen_account(ctx.config(), account)  # issue 18
    with_account = several(ctx.config())
    with _ledger(ctx, read_only=True) as ledger:
        if needs_action:
            list_needs_action(ledger, tz, fmt, account=account)
            return
        states = STATE_FILTERS[state] if state else NOT_DONE
        changes, hidden = list_changes(ledger, states=states, order_id=order_id, since=since_utc,
                                       show_old_skipped=show_all, account=account)
        when = (lambda at: iso(at, tz)) if fmt == "json" else (lambda at: local(at, tz))
        rows = [(c.id, c.mall_order_id, c.shop_status or "", c.target_status or "", c.state, c.attempts,
                 when(c.updated_at), c.reason or c.last_error or "") for c in changes]
        accounts_of = [c.account for c in changes]
        if state in (S.FAILED, "all") or state is None:
            # Quarantined inbox ids, hand-offs and confirmations too: whatever failed, it is listed here, named by
            # the MALL order id(s), what failed and how many attempts were made. `ledger retry ITEM` takes the id.
            items = [i for i in ledger.failed_items() if i.kind != ItemKind.CHANGE]
            owners = ledger.accounts.of_orders([o for i in items for o in i.mall_order_ids]) if items else {}
            for item in items:
                if order_id is not None and order_id not in item.mall_order_ids:
                    continue
                item_account = ",".join(sorted({owners.get(o, "default") for o in item.mall_order_ids})) or "default"
                if account is not None and account not in item_account.split(","):
                    continue
                accounts_of.append(item_account)
                orders = ",".join(str(o) for o in item.mall_order_ids) or "-"
                rows.append((item.ref, orders, "", "", S.FAILED.value, item.attempts,
                             when(item.failed_at) if item.failed_at else "", f"{item.what}: {item.reason}"))
        headers = ["change", "mall_order_id", "shop_status", "mall_status", "state", "attempts",
                   "updated" if fmt == "json" else f"updated ({zone_name(tz)})", "reason"]
        if with_account:  # issue 18: several accounts: which one, on every line
            headers = ["account", *headers]
            rows = [(a, *row) for a, row in zip(accounts_of, rows)]
        emit(fmt, headers, rows,
             empty="no changes" + ("" if state else " waiting or needing attention"))
        if hidden and fmt == "table":
            click.echo(f"\n{hidden} skipped change(s) older than 7 days not shown (--all shows them)")


def _parse_since(text: str, tz: str):
    """DATE in [shop] timezone -> naive UTC (the ledger's convention). BadParameter names the option."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            at = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        return at.replace(tzinfo=ZoneInfo(tz)).astimezone(timezone.utc).replace(tzinfo=None)
    raise click.BadParameter(f"{text!r} is not a date (use YYYY-MM-DD or 'YYYY-MM-DD HH:MM')", param_hint="'--since'")


@ledger_group.command("show")
@click.argument("order_id", type=int)
@account_option
@pass_ctx
@friendly_errors
def ledger_show(ctx: Context, order_id: int, account: str | None) -> None:
    """Show one order's whole history: what MALL and the shop say, every change and event."""
    from connector.commands.needs_action_view import show_items
    from connector.timefmt import local, zone_name

    tz = ctx.config().shop.timezone
    with _ledger(ctx, read_only=True) as ledger:
        o = ledger.orders.get(order_id)
        account = chosen_account(ctx.config(), account)  # issue 18
        if o is None or (account is not None and o.account != account):
            click.echo(f"order {order_id} is not in the ledger" + (f" of account {account!r}" if o else ""), err=True)
            sys.exit(1)
        safe = terminal_safe  # shop and MALL text may hold escape sequences (issue 16 item 6)
        click.echo(safe(f"order {order_id}  shop order {o.shop_order_id or '-'}  (times in {zone_name(tz)})"))
        click.echo(safe(f"  MALL: {o.mall_status or 'unknown'}  confirmed={o.mall_confirmed}  mdp={o.mdp}  "
                        f"test={o.test}  read {local(o.mall_read_at, tz, empty='-')}"))
        click.echo(safe(f"  shop: {o.shop_status or '-'}  handed over: {local(o.handed_at, tz, empty='no')}  "
                        f"last status handed: {o.handed_status or '-'}"))
        if ctx.config().accounts:  # issue 18
            click.echo(f"  MALL account: {o.account if o.account != 'default' else 'not known yet'}")
        changes = ledger.changes.list(order_id=order_id)
        if changes:
            click.echo("\nchanges:")
            click.echo(render_table(
                ["change", "origin", "shop_status", "mall_status", "state", "attempts", "reason"],
                [(c.id, c.origin, c.shop_status or "", c.target_status or "", c.state, c.attempts,
                  c.reason or c.last_error or "") for c in changes], max_width=90))
        show_items(ledger, order_id, tz)
        # -- MALL Delivery labels and serial numbers (connector/ledger/labels.py) --
        mdp_lines = ledger.mdp.label_lines(order_id, tz)
        if mdp_lines:
            click.echo(f"\nlabels and serial numbers ({zone_name(tz)}):")
            for line in mdp_lines:
                click.echo(safe(f"  {line}"))
        # --
        quarantined = [i for i in ledger.failed_items() if i.kind != ItemKind.CHANGE and order_id in i.mall_order_ids]
        if quarantined:
            click.echo("\nquarantined (bring back with: mall-connector ledger retry ITEM):")
            for item in quarantined:
                click.echo(safe(f"  {item.ref:<16} {item.what}, {item.attempts} attempt(s): {item.reason}"))
        events = ledger.orders.events_for(order_id)
        if events:
            click.echo(f"\nhistory ({zone_name(tz)}):")
            for at, kind, message in events:
                click.echo(f"  {local(at, tz)}  {terminal_safe(kind):<10} {terminal_safe(message)}")


@ledger_group.command("retry")
@click.argument("change_id", metavar="CHANGE_ID|ITEM", required=False)
@click.option("--failed", "all_failed", is_flag=True, help="Retry every failed change and quarantined item.")
@account_option
@pass_ctx
@friendly_errors
def ledger_retry(ctx: Context, change_id: str | None, all_failed: bool, account: str | None) -> None:
    """Put a change (or every failed one) back to pending; the next pass re-reads MALL first. A quarantined
    inbox id, hand-off or confirmation is named as in `ledger list --state failed` (inbox:ID, handoff:ID,
    confirm:ID) and waits again with a fresh count of attempts.

    Example: mall-connector ledger retry 42; mall-connector ledger retry inbox:1001; ledger retry --failed
    """
    from connector.ledger import steering
    from connector.ledger.audit import Actor  # audit rows as cli:<unix user>

    if (change_id is None) == (not all_failed):
        raise click.UsageError("give either CHANGE_ID (or ITEM) or --failed")
    if account is not None and not all_failed:
        raise click.UsageError("--account goes with --failed (a CHANGE_ID or ITEM names one item already)")
    account = chosen_account(ctx.config(), account)  # issue 18
    with _ledger(ctx) as ledger:
        if all_failed and account is not None:
            items = ledger.failed_items()
            owners = ledger.accounts.of_orders([o for i in items for o in i.mall_order_ids])
            mine = [i for i in items if any(owners.get(o, "default") == account for o in i.mall_order_ids)]
            done = [r for r in (steering.retry(ledger, i.kind, i.id, actor=Actor.cli()) for i in mine) if r.ok]
            click.echo(f"{len(done)} item(s) of account {account!r} will be retried on the next pass")
            return
        if all_failed:
            done = [r for r in steering.retry_all_failed(ledger, actor=Actor.cli()) if r.ok]
            click.echo(f"{len(done)} item(s) will be retried on the next pass")
            return
        try:
            kind, item_id = parse_item_ref(change_id)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="CHANGE_ID") from None
        r = steering.retry(ledger, kind, item_id, actor=Actor.cli())
        if not r.ok:
            click.echo(r.message, err=True)
            sys.exit(1)
        click.echo(r.message)


@ledger_group.command("skip")
@click.argument("change_id", type=int)
@click.option("--reason", required=True, help="Why (kept in the ledger).")
@pass_ctx
@friendly_errors
def ledger_skip(ctx: Context, change_id: int, reason: str) -> None:
    """Mark a change skipped: it will never be sent. Example: ledger skip 42 --reason "fixed in the portal" """
    from connector.ledger import steering
    from connector.ledger.audit import Actor  # audit rows as cli:<unix user>

    with _ledger(ctx) as ledger:
        r = steering.skip(ledger, change_id, reason, actor=Actor.cli())
        if not r.ok:
            click.echo(r.message, err=True)
            sys.exit(1)
        click.echo(r.message)


@ledger_group.command("done")
@click.argument("item_ids", type=int, nargs=-1)
@click.option("--kind", default=None, metavar="KIND",
              help="Every open item of this kind (e.g. shop_action, branch_change, credit_note, deadline).")
@click.option("--all", "every", is_flag=True, help="Every open item.")
@click.option("--note", default=None, help="What was done (kept in the ledger).")
@pass_ctx
@friendly_errors
def ledger_done(ctx: Context, item_ids: tuple[int, ...], kind: str | None, every: bool, note: str | None) -> None:
    """Clear needs-action items once a human has handled them: one or several ids, every item of a
    kind, or all. Exit 1 when a given id is not an open item (the others are still cleared).

    Examples: ledger done 7; ledger done 7 8 12; ledger done --kind shop_action; ledger done --all
    """
    from connector.ledger import steering
    from connector.ledger.audit import Actor  # audit rows as cli:<unix user>
    from connector.ledger.needs_action import open_items

    if not item_ids and not kind and not every:
        raise click.UsageError("give item ids, --kind KIND or --all (see: mall-connector ledger list --needs-action)")
    with _ledger(ctx) as ledger:
        closed, missing = steering.done_many(ledger, ids=item_ids, kind=kind, every=every, note=note,
                                             actor=Actor.cli())
        open_kinds = sorted({i.kind for i in open_items(ledger)}) if kind and not closed else []
    if closed:
        click.echo(f"{len(closed)} item(s) done: {', '.join(str(i) for i in closed)}")
    elif not missing:
        click.echo("no open needs-action item matched" + (f" kind {kind!r}" if kind else "")
                   + (f" (open kinds: {', '.join(open_kinds)})" if open_kinds else ""))
    for i in missing:
        click.echo(f"no open needs-action item {i} (see: ledger list --needs-action)", err=True)
    if missing:
        sys.exit(1)
