"""The admin console's reads (connector/console/queries.py shapes them for the pages).

Kept apart from the core's repositories so the console's SQL is one module; every list is bounded by
``limit``. Nothing here writes.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import func, or_, select

from connector.ledger import schema as s
from connector.ledger.rows import ChangeRow
from connector.ledger.types import ChangeState


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_orders(ledger, *, text: str, status: str, limit: int) -> list:
    """Orders matching ``text`` (MALL id, shop id, or part of the customer's name), newest first, at most
    ``limit`` rows. ``status`` "unknown" means no MALL status known yet."""
    o = s.orders.c
    q = select(o.mall_order_id, o.shop_order_id, o.mall_status, o.shop_status, o.customer, o.ship_date, o.test)
    if text:
        like = f"%{_escape_like(text)}%"
        conds = [o.shop_order_id.like(like, escape="\\"), o.customer.like(like, escape="\\"),
                 func.lower(o.customer).like(like.lower(), escape="\\")]
        if text.isdigit():
            conds.insert(0, o.mall_order_id == int(text))
        q = q.where(or_(*conds))
    if status:
        q = q.where(o.mall_status == status) if status != "unknown" else q.where(o.mall_status.is_(None))
    q = q.order_by(o.updated_at.desc(), o.mall_order_id.desc()).limit(limit)
    with ledger.read() as c:
        return c.execute(q).all()


def customer_of(ledger, order_id: int) -> str | None:
    with ledger.read() as c:
        return c.execute(select(s.orders.c.customer).where(s.orders.c.mall_order_id == order_id)).scalar()


def changes_in(ledger, states: Sequence[str], limit: int) -> list[ChangeRow]:
    """Changes in ``states``, newest first, at most ``limit``."""
    with ledger.read() as c:
        q = (select(s.changes).where(s.changes.c.state.in_([str(x) for x in states]))
             .order_by(s.changes.c.id.desc()).limit(limit))
        return [ChangeRow.from_row(r) for r in c.execute(q)]


def change_counts(ledger) -> dict[str, int]:
    """Changes per state, done ones left out."""
    with ledger.read() as c:
        q = (select(s.changes.c.state, func.count()).where(s.changes.c.state != ChangeState.DONE.value)
             .group_by(s.changes.c.state))
        return {state: n for state, n in c.execute(q)}


def open_actions(ledger, limit: int) -> list[dict[str, Any]]:
    with ledger.read() as c:
        q = select(s.actions).where(s.actions.c.done_at.is_(None)).order_by(s.actions.c.id).limit(limit)
        return [dict(r._mapping) for r in c.execute(q)]


def orders_by_status(ledger) -> dict[str, int]:
    with ledger.read() as c:
        q = select(s.orders.c.mall_status, func.count()).group_by(s.orders.c.mall_status)
        return {status or "unknown": n for status, n in c.execute(q)}


def shop_status_counts(ledger, limit: int) -> list[tuple[str, str | None, int]]:
    """(shop status as last seen in the feed, MALL status, number of orders) for the mapping preview."""
    with ledger.read() as c:
        q = (select(s.orders.c.shop_status, s.orders.c.mall_status, func.count())
             .where(s.orders.c.shop_status.is_not(None))
             .group_by(s.orders.c.shop_status, s.orders.c.mall_status).limit(limit))
        return [(shop, mall, n) for shop, mall, n in c.execute(q)]
