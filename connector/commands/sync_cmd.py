"""`mall-connector sync-once`: one pass of everything, for cron, tests and trying things out."""

from __future__ import annotations

import sys

import click

from connector.cli import Context, friendly_errors, pass_ctx
from connector.commands.account_option import account_option


@click.command("sync-once")
@click.option("--retry-now", is_flag=True, help="Also take changes whose retry is not due yet.")
@click.option("--no-sweep", is_flag=True, help="Skip listing MALL's unconfirmed orders this time.")
@account_option
@pass_ctx
@friendly_errors
def sync_once(ctx: Context, retry_now: bool, no_sweep: bool, account: str | None) -> None:
    """Run one poll of the shop feed, one push pass to MALL, and the inbound pipeline.

    Retries that are due are processed too. The message names the feed and the problem.

    \b
    Exit status (the first that applies):
      66  the shop feed is missing or cannot be read (file, permissions, HTTP error, refused XML)
      65  the feed was read but is unusable (a required column is missing, or no order rows
          while the previous successful read had some)
       2  some change is failed (see `mall-connector ledger list --state failed`)
      75  some changes still wait for a retry
       0  all well
      78  a config error

    With several MALL accounts, --account NAME sweeps, pushes and confirms for that account only (the shop
    feed is still read whole: its rows are recorded for every account and pushed by their own account's pass).

    Example: mall-connector --config /etc/mall-connector/config.toml sync-once
    """
    from connector.commands.account_option import chosen_account  # issue 18
    from connector.sync.runner import Services, sync_once as run_pass

    services = Services(ctx.config(), account=chosen_account(ctx.config(), account))
    try:
        summary = run_pass(services, retry_now=retry_now, sweep=not no_sweep)
    finally:
        services.close()
    from connector.safety import terminal_safe

    for line in summary.lines():
        click.echo(terminal_safe(line))  # reasons quote MALL and the shop (issue 16 item 6)
    if summary.poll.feed_status != "ok":
        click.echo(f"error: shop feed {summary.poll.feed_status}: {summary.poll.unavailable}", err=True)
    sys.exit(summary.exit_code)
