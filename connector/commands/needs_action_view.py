"""What `ledger list --needs-action`, `ledger show` and `ledger done` print about needs-action items
(issue 14): each item's kind and how it will close, times in [shop] timezone with the zone named once."""

from __future__ import annotations

import click

from connector.commands.output import emit, render_table
from connector.ledger import needs_action
from connector.timefmt import iso, local, zone_name


def list_needs_action(ledger, tz: str, fmt: str, kind: str | None = None, account: str | None = None) -> None:
    items = needs_action.open_items(ledger, kind=kind)
    if account is not None:  # issue 18: `ledger list --needs-action --account NAME`
        owners = ledger.accounts.of_orders([i.mall_order_id for i in items if i.mall_order_id is not None])
        items = [i for i in items if owners.get(i.mall_order_id, "default") == account]
    if fmt == "json":
        emit("json", ["id", "mall_order_id", "kind", "since", "closes", "what to do"],
             [(i.id, i.mall_order_id, i.kind, iso(i.created_at, tz), i.how_it_closes, i.message) for i in items])
        return
    rows = [(i.id, i.mall_order_id, i.kind, local(i.created_at, tz), i.how_it_closes, i.message) for i in items]
    emit("wide", ["id", "mall_order_id", "kind", f"since ({zone_name(tz)})", "closes", "what to do"], rows,
         empty="nothing needs a human")
    if rows:
        click.echo("\nWhen done, clear items with: mall-connector ledger done ID [ID...] (or --kind KIND, --all)")


def show_items(ledger, order_id: int, tz: str) -> None:
    items = needs_action.items_for_order(ledger, order_id)
    if not items:
        return
    click.echo(f"\nneeds-action items (times in {zone_name(tz)}):")
    rows = []
    for i in items:
        if i.done_at is None:
            state = f"open; closes {i.how_it_closes}"
        elif i.closed_by == "itself":
            state = f"closed by itself {local(i.done_at, tz)}: {(i.done_note or '').removeprefix('closed by itself: ')}"
        else:
            state = f"done by hand {local(i.done_at, tz)}" + (f": {i.done_note}" if i.done_note else "")
        rows.append((i.id, i.kind, local(i.created_at, tz), state, i.message))
    click.echo(render_table(["id", "kind", "since", "state", "what to do"], rows, max_width=60))
