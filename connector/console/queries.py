"""What the console reads from the ledger: one module, so a change in the ledger's layout is fixed here.

Every list is bounded (``LIMIT``); nothing here writes (the actions are connector/ledger/steering.py). The SQL
is in connector/ledger/console_reads.py; this module shapes it for the pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.exports.orders import last_sync
from connector.ledger import Ledger
from connector.ledger import console_reads as reads
from connector.ledger.audit import AuditEntry, for_order
from connector.ledger.repo import ChangeRow, FailedItem, OrderRow
from connector.ledger.types import ItemKind

LIMIT = 200  # rows per page of a list
QUERY_MAX = 100  # characters of a search text

#: The accounts the connector serves. One today (the config's [mall] client); the filter is ready for more.
DEFAULT_ACCOUNT = "default"

#: Change states by the console's filter (the same groups as `ledger list --state`).
CHANGE_FILTERS: dict[str, tuple[str, ...]] = {
    "open": ("pending", "sending", "retry", "failed", "skipped"),
    "pending": ("pending", "sending"),
    "retry": ("retry",),
    "failed": ("failed",),
    "skipped": ("skipped",),
    "done": ("done",),
}


@dataclass(frozen=True)
class OrderListRow:
    mall_order_id: int
    shop_order_id: str | None
    mall_status: str | None
    shop_status: str | None
    customer: str | None
    ship_date: str | None
    test: bool
    account: str
    last_sync: str


@dataclass(frozen=True)
class History:
    """One order's whole history, the same parts as `ledger show` prints."""

    order: OrderRow
    changes: list[ChangeRow]
    events: list[tuple[datetime, str, str]]
    audit: list[AuditEntry]
    customer: str | None
    quarantined: list[FailedItem]  # the order's quarantined inbox id, confirmation, hand-off


def search_orders(ledger: Ledger, *, text: str = "", status: str = "", account: str = "",
                  limit: int = LIMIT) -> tuple[list[OrderListRow], bool]:
    """Orders matching ``text`` (MALL id, shop id, or part of the customer's name), newest first.

    Returns (rows, more): ``more`` when the list was cut at ``limit``."""
    text = " ".join(text.split())[:QUERY_MAX]
    if account and account != DEFAULT_ACCOUNT:
        return [], False  # one account today: any other matches nothing
    rows = reads.search_orders(ledger, text=text, status=status, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    syncs = last_sync(ledger, [r.mall_order_id for r in rows])
    return [OrderListRow(r.mall_order_id, r.shop_order_id, r.mall_status, r.shop_status, r.customer, r.ship_date,
                         bool(r.test), DEFAULT_ACCOUNT, syncs.get(r.mall_order_id, "")) for r in rows], more


def order_history(ledger: Ledger, order_id: int) -> History | None:
    order = ledger.orders.get(order_id)
    if order is None:
        return None
    quarantined = [i for i in ledger.failed_items() if i.kind != ItemKind.CHANGE and order_id in i.mall_order_ids]
    return History(order, ledger.changes.list(order_id=order_id), ledger.orders.events_for(order_id),
                   for_order(ledger, order_id), reads.customer_of(ledger, order_id), quarantined)


def list_changes(ledger: Ledger, state: str, limit: int = LIMIT) -> tuple[list[ChangeRow], bool]:
    """Changes in the filter's states, newest first, at most ``limit`` (and whether there were more)."""
    rows = reads.changes_in(ledger, CHANGE_FILTERS.get(state, CHANGE_FILTERS["open"]), limit + 1)
    return rows[:limit], len(rows) > limit


def quarantined_items(ledger: Ledger, limit: int = LIMIT) -> list[FailedItem]:
    """The core's quarantined inbox ids, hand-offs and confirmations (failed changes are in the changes list)."""
    return [i for i in ledger.failed_items() if i.kind != ItemKind.CHANGE][:limit]


def change_counts(ledger: Ledger) -> dict[str, int]:
    return reads.change_counts(ledger)


def open_actions(ledger: Ledger, limit: int = LIMIT) -> list[dict[str, Any]]:
    return reads.open_actions(ledger, limit)


def open_alerts(ledger: Ledger, limit: int = 50) -> list[dict[str, Any]]:
    """Open alert problems (the alerter's table), oldest first: title, message, since, count."""
    out = []
    for r in ledger.alerts.open_problems()[:limit]:
        title, _, message = r.message.partition("\n")
        out.append({"key": r.key, "title": title, "message": message, "first_at": r.first_at, "count": r.count})
    return out


def orders_by_status(ledger: Ledger) -> dict[str, int]:
    return reads.orders_by_status(ledger)


def shop_status_counts(ledger: Ledger, limit: int = 1000) -> list[tuple[str, str | None, int]]:
    """(shop status as last seen in the feed, MALL status, number of orders) for the mapping preview."""
    return reads.shop_status_counts(ledger, limit)


def overview(ledger: Ledger) -> dict[str, Any]:
    """The overview page's numbers: last job runs, health, open changes, problems."""
    return {
        "jobs": ledger.kv.job_ok_times(),
        "health": ledger.health(),
        "quarantined": ledger.quarantined_count(),
        "changes": change_counts(ledger),
        "orders": orders_by_status(ledger),
        "alerts": open_alerts(ledger),
        "actions": open_actions(ledger, limit=10),
        "feed_failures": int(ledger.kv.get("shop_feed_failures") or 0),
    }
