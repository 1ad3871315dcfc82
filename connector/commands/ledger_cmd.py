"""`mall-connector ledger ...`: look into and steer the ledger."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

import click

from connector.cli import Context, friendly_errors, pass_ctx
from connector.commands.output import emit, render_table

STATE_FILTERS = {
    "pending": ("pending", "sending"),
    "retry": ("retry",),
    "done": ("done",),
    "skipped": ("skipped",),
    "failed": ("failed",),
    "all": None,
}
NOT_DONE = ("pending", "sending", "retry", "skipped", "failed")


@contextmanager
def _ledger(ctx: Context) -> Iterator:
    """The config's ledger, closed when the command ends."""
    from connector.ledger import open_ledger

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
@click.option("--needs-action", is_flag=True, help="List the orders where a human must act, with what to do.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_ctx
@friendly_errors
def ledger_list(ctx: Context, state: str | None, order_id: int | None, needs_action: bool, fmt: str) -> None:
    """List changes, one line each: change id, MALL order, shop status, target MALL status, state,
    attempts, reason.

    Examples: mall-connector ledger list; mall-connector ledger list --state failed;
    mall-connector ledger list --needs-action
    """
    with _ledger(ctx) as ledger:
        if needs_action:
            items = ledger.open_actions()
            rows = [(a["id"], a["mall_order_id"], a["kind"], a["created_at"], a["message"]) for a in items]
            emit(fmt if fmt == "json" else "wide", ["id", "mall_order_id", "kind", "since", "what to do"], rows,
                 empty="nothing needs a human")
            if rows and fmt == "table":
                click.echo("\nWhen done, clear an item with: mall-connector ledger done ID")
            return
        states = STATE_FILTERS[state] if state else NOT_DONE
        changes = ledger.list_changes(states=states, order_id=order_id)
        rows = [(c.id, c.mall_order_id, c.shop_status or "", c.target_status or "", c.state, c.attempts,
                 c.reason or c.last_error or "") for c in changes]
        emit(fmt, ["change", "mall_order_id", "shop_status", "mall_status", "state", "attempts", "reason"], rows,
             empty="no changes" + ("" if state else " waiting or needing attention"))


@ledger_group.command("show")
@click.argument("order_id", type=int)
@pass_ctx
@friendly_errors
def ledger_show(ctx: Context, order_id: int) -> None:
    """Show one order's whole history: what MALL and the shop say, every change and event."""
    with _ledger(ctx) as ledger:
        o = ledger.get_order(order_id)
        if o is None:
            click.echo(f"order {order_id} is not in the ledger", err=True)
            sys.exit(1)
        click.echo(f"order {order_id}  shop order {o.shop_order_id or '-'}")
        click.echo(f"  MALL: {o.mall_status or 'unknown'}  confirmed={o.mall_confirmed}  mdp={o.mdp}  test={o.test}  "
                   f"read {o.mall_read_at or '-'} UTC")
        click.echo(f"  shop: {o.shop_status or '-'}  handed over: {o.handed_at or 'no'}  "
                   f"last status handed: {o.handed_status or '-'}")
        changes = ledger.list_changes(order_id=order_id)
        if changes:
            click.echo("\nchanges:")
            click.echo(render_table(
                ["change", "origin", "shop_status", "mall_status", "state", "attempts", "reason"],
                [(c.id, c.origin, c.shop_status or "", c.target_status or "", c.state, c.attempts,
                  c.reason or c.last_error or "") for c in changes], max_width=90))
        events = ledger.events_for(order_id)
        if events:
            click.echo("\nhistory (UTC):")
            for at, kind, message in events:
                click.echo(f"  {at:%Y-%m-%d %H:%M:%S}  {kind:<10} {message}")


@ledger_group.command("retry")
@click.argument("change_id", type=int, required=False)
@click.option("--failed", "all_failed", is_flag=True, help="Retry every failed change.")
@pass_ctx
@friendly_errors
def ledger_retry(ctx: Context, change_id: int | None, all_failed: bool) -> None:
    """Put a change (or every failed one) back to pending; the next pass re-reads MALL first.

    Example: mall-connector ledger retry 42; mall-connector ledger retry --failed
    """
    if (change_id is None) == (not all_failed):
        raise click.UsageError("give either CHANGE_ID or --failed")
    with _ledger(ctx) as ledger:
        targets = ledger.list_changes(states=("failed",)) if all_failed else [ledger.get_change(change_id)]
        if not all_failed and targets[0] is None:
            click.echo(f"no change {change_id}", err=True)
            sys.exit(1)
        from connector.ledger.audit import Actor, retry_change  # the same steering code as the console's

        n = 0
        for ch in targets:
            outcome = retry_change(ledger, ch, Actor.cli())
            if not outcome.ok:
                click.echo(outcome.message, err=True)
                continue
            n += 1
        click.echo(f"{n} change(s) will be retried on the next pass")


@ledger_group.command("skip")
@click.argument("change_id", type=int)
@click.option("--reason", required=True, help="Why (kept in the ledger).")
@pass_ctx
@friendly_errors
def ledger_skip(ctx: Context, change_id: int, reason: str) -> None:
    """Mark a change skipped: it will never be sent. Example: ledger skip 42 --reason "fixed in the portal" """
    with _ledger(ctx) as ledger:
        ch = ledger.get_change(change_id)
        if ch is None:
            click.echo(f"no change {change_id}", err=True)
            sys.exit(1)
        from connector.ledger.audit import Actor, skip_change

        outcome = skip_change(ledger, ch, reason, Actor.cli())
        if not outcome.ok:
            click.echo(outcome.message, err=True)
            sys.exit(1)
        click.echo(outcome.message)


@ledger_group.command("done")
@click.argument("item_id", type=int)
@click.option("--note", default=None, help="What was done (kept in the ledger).")
@pass_ctx
@friendly_errors
def ledger_done(ctx: Context, item_id: int, note: str | None) -> None:
    """Clear a needs-action item once a human has handled it. Example: ledger done 7"""
    from connector.ledger.audit import Actor, mark_done

    with _ledger(ctx) as ledger:
        if mark_done(ledger, item_id, note, Actor.cli()).ok:
            click.echo(f"item {item_id} done")
        else:
            click.echo(f"no open needs-action item {item_id} (see: ledger list --needs-action)", err=True)
            sys.exit(1)
