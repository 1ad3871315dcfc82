"""`mall-connector ledger ...`: look into and steer the ledger."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

import click

from connector.cli import Context, friendly_errors, pass_ctx
from connector.commands.output import emit, render_table
from connector.ledger.types import ChangeState, ItemKind, parse_item_ref

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
            items = ledger.actions.open()
            rows = [(a["id"], a["mall_order_id"], a["kind"], a["created_at"], a["message"]) for a in items]
            emit(fmt if fmt == "json" else "wide", ["id", "mall_order_id", "kind", "since", "what to do"], rows,
                 empty="nothing needs a human")
            if rows and fmt == "table":
                click.echo("\nWhen done, clear an item with: mall-connector ledger done ID")
            return
        states = STATE_FILTERS[state] if state else NOT_DONE
        changes = ledger.changes.list(states=states, order_id=order_id)
        rows = [(c.id, c.mall_order_id, c.shop_status or "", c.target_status or "", c.state, c.attempts,
                 c.reason or c.last_error or "") for c in changes]
        if state in (S.FAILED, "all") or state is None:
            # Quarantined inbox ids, hand-offs and confirmations too: whatever failed, it is listed here, named by
            # the MALL order id(s), what failed and how many attempts were made. `ledger retry ITEM` takes the id.
            for item in ledger.failed_items():
                if item.kind == ItemKind.CHANGE:
                    continue
                if order_id is not None and order_id not in item.mall_order_ids:
                    continue
                orders = ",".join(str(o) for o in item.mall_order_ids) or "-"
                rows.append((item.ref, orders, "", "", S.FAILED.value, item.attempts, f"{item.what}: {item.reason}"))
        emit(fmt, ["change", "mall_order_id", "shop_status", "mall_status", "state", "attempts", "reason"], rows,
             empty="no changes" + ("" if state else " waiting or needing attention"))


@ledger_group.command("show")
@click.argument("order_id", type=int)
@pass_ctx
@friendly_errors
def ledger_show(ctx: Context, order_id: int) -> None:
    """Show one order's whole history: what MALL and the shop say, every change and event."""
    with _ledger(ctx) as ledger:
        o = ledger.orders.get(order_id)
        if o is None:
            click.echo(f"order {order_id} is not in the ledger", err=True)
            sys.exit(1)
        click.echo(f"order {order_id}  shop order {o.shop_order_id or '-'}")
        click.echo(f"  MALL: {o.mall_status or 'unknown'}  confirmed={o.mall_confirmed}  mdp={o.mdp}  test={o.test}  "
                   f"read {o.mall_read_at or '-'} UTC")
        click.echo(f"  shop: {o.shop_status or '-'}  handed over: {o.handed_at or 'no'}  "
                   f"last status handed: {o.handed_status or '-'}")
        changes = ledger.changes.list(order_id=order_id)
        if changes:
            click.echo("\nchanges:")
            click.echo(render_table(
                ["change", "origin", "shop_status", "mall_status", "state", "attempts", "reason"],
                [(c.id, c.origin, c.shop_status or "", c.target_status or "", c.state, c.attempts,
                  c.reason or c.last_error or "") for c in changes], max_width=90))
        quarantined = [i for i in ledger.failed_items() if i.kind != ItemKind.CHANGE and order_id in i.mall_order_ids]
        if quarantined:
            click.echo("\nquarantined (bring back with: mall-connector ledger retry ITEM):")
            for item in quarantined:
                click.echo(f"  {item.ref:<16} {item.what}, {item.attempts} attempt(s): {item.reason}")
        events = ledger.orders.events_for(order_id)
        if events:
            click.echo("\nhistory (UTC):")
            for at, kind, message in events:
                click.echo(f"  {at:%Y-%m-%d %H:%M:%S}  {kind:<10} {message}")


@ledger_group.command("retry")
@click.argument("change_id", metavar="CHANGE_ID|ITEM", required=False)
@click.option("--failed", "all_failed", is_flag=True, help="Retry every failed change and quarantined item.")
@pass_ctx
@friendly_errors
def ledger_retry(ctx: Context, change_id: str | None, all_failed: bool) -> None:
    """Put a change (or every failed one) back to pending; the next pass re-reads MALL first. A quarantined
    inbox id, hand-off or confirmation is named as in `ledger list --state failed` (inbox:ID, handoff:ID,
    confirm:ID) and waits again with a fresh count of attempts.

    Example: mall-connector ledger retry 42; mall-connector ledger retry inbox:1001; ledger retry --failed
    """
    from connector.ledger import steering
    from connector.ledger.audit import Actor  # audit rows as cli:<unix user>

    if (change_id is None) == (not all_failed):
        raise click.UsageError("give either CHANGE_ID (or ITEM) or --failed")
    with _ledger(ctx) as ledger:
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
@click.argument("item_id", type=int)
@click.option("--note", default=None, help="What was done (kept in the ledger).")
@pass_ctx
@friendly_errors
def ledger_done(ctx: Context, item_id: int, note: str | None) -> None:
    """Clear a needs-action item once a human has handled it. Example: ledger done 7"""
    from connector.ledger import steering
    from connector.ledger.audit import Actor  # audit rows as cli:<unix user>

    with _ledger(ctx) as ledger:
        r = steering.done(ledger, item_id, note, actor=Actor.cli())
        if not r.ok:
            click.echo(r.message, err=True)
            sys.exit(1)
        click.echo(r.message)
