"""What the console reads from the ledger: one module, so a change in the ledger's layout is fixed here.

Every list is bounded (``LIMIT``); nothing here writes (the actions are in connector/ledger/audit.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from connector.exports.orders import last_sync
from connector.ledger import Ledger
from connector.ledger import schema as s
from connector.ledger.audit import AuditEntry, for_order
from connector.ledger.repo import ChangeRow, OrderRow

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


def search_orders(ledger: Ledger, *, text: str = "", status: str = "", account: str = "",
                  limit: int = LIMIT) -> tuple[list[OrderListRow], bool]:
    """Orders matching ``text`` (MALL id, shop id, or part of the customer's name), newest first.

    Returns (rows, more): ``more`` when the list was cut at ``limit``."""
    o = s.orders.c
    q = select(o.mall_order_id, o.shop_order_id, o.mall_status, o.shop_status, o.customer, o.ship_date, o.test)
    text = " ".join(text.split())[:QUERY_MAX]
    if text:
        like = f"%{_escape_like(text)}%"
        conds = [o.shop_order_id.like(like, escape="\\"), o.customer.like(like, escape="\\"),
                 func.lower(o.customer).like(like.lower(), escape="\\")]
        if text.isdigit():
            conds.insert(0, o.mall_order_id == int(text))
        q = q.where(or_(*conds))
    if status:
        q = q.where(o.mall_status == status) if status != "unknown" else q.where(o.mall_status.is_(None))
    if account and account != DEFAULT_ACCOUNT:
        return [], False  # one account today: any other matches nothing
    q = q.order_by(o.updated_at.desc(), o.mall_order_id.desc()).limit(limit + 1)
    with ledger.read() as c:
        rows = c.execute(q).all()
    more = len(rows) > limit
    rows = rows[:limit]
    syncs = last_sync(ledger, [r.mall_order_id for r in rows])
    return [OrderListRow(r.mall_order_id, r.shop_order_id, r.mall_status, r.shop_status, r.customer, r.ship_date,
                         bool(r.test), DEFAULT_ACCOUNT, syncs.get(r.mall_order_id, "")) for r in rows], more


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def order_history(ledger: Ledger, order_id: int) -> History | None:
    order = ledger.get_order(order_id)
    if order is None:
        return None
    with ledger.read() as c:
        customer = c.execute(select(s.orders.c.customer).where(s.orders.c.mall_order_id == order_id)).scalar()
    return History(order, ledger.list_changes(order_id=order_id), ledger.events_for(order_id),
                   for_order(ledger, order_id), customer)


def list_changes(ledger: Ledger, state: str, limit: int = LIMIT) -> tuple[list[ChangeRow], bool]:
    """Changes in the filter's states, oldest first, at most ``limit`` (and whether there were more)."""
    states = CHANGE_FILTERS.get(state, CHANGE_FILTERS["open"])
    with ledger.read() as c:
        q = (select(s.changes).where(s.changes.c.state.in_(states)).order_by(s.changes.c.id.desc())
             .limit(limit + 1))
        rows = [ChangeRow.from_row(r) for r in c.execute(q)]
    return rows[:limit], len(rows) > limit


def change_counts(ledger: Ledger) -> dict[str, int]:
    with ledger.read() as c:
        q = select(s.changes.c.state, func.count()).where(s.changes.c.state != "done").group_by(s.changes.c.state)
        return {state: n for state, n in c.execute(q)}


def open_actions(ledger: Ledger, limit: int = LIMIT) -> list[dict[str, Any]]:
    with ledger.read() as c:
        q = select(s.actions).where(s.actions.c.done_at.is_(None)).order_by(s.actions.c.id).limit(limit)
        return [dict(r._mapping) for r in c.execute(q)]


def open_alerts(ledger: Ledger, limit: int = 50) -> list[dict[str, Any]]:
    """Open alert problems (the alerter's table), oldest first: title, message, since, count."""
    with ledger.read() as c:
        q = (select(s.alerts).where(s.alerts.c.state == "open").order_by(s.alerts.c.first_at, s.alerts.c.key)
             .limit(limit))
        out = []
        for r in c.execute(q):
            title, _, message = r.message.partition("\n")
            out.append({"key": r.key, "title": title, "message": message, "first_at": r.first_at, "count": r.count})
        return out


def orders_by_status(ledger: Ledger) -> dict[str, int]:
    with ledger.read() as c:
        q = select(s.orders.c.mall_status, func.count()).group_by(s.orders.c.mall_status)
        return {status or "unknown": n for status, n in c.execute(q)}


def shop_status_counts(ledger: Ledger, limit: int = 1000) -> list[tuple[str, str | None, int]]:
    """(shop status as last seen in the feed, MALL status, number of orders) for the mapping preview."""
    with ledger.read() as c:
        q = (select(s.orders.c.shop_status, s.orders.c.mall_status, func.count())
             .where(s.orders.c.shop_status.is_not(None))
             .group_by(s.orders.c.shop_status, s.orders.c.mall_status).limit(limit))
        return [(shop, mall, n) for shop, mall, n in c.execute(q)]


def overview(ledger: Ledger) -> dict[str, Any]:
    """The overview page's numbers: last job runs, health, open changes, problems."""
    return {
        "jobs": ledger.job_ok_times(),
        "health": ledger.health(),
        "changes": change_counts(ledger),
        "orders": orders_by_status(ledger),
        "alerts": open_alerts(ledger),
        "actions": open_actions(ledger, limit=10),
        "feed_failures": int(ledger.get_kv("shop_feed_failures") or 0),
    }
