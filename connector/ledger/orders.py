"""Orders and their snapshots (what MALL and the shop say about each order), and each order's history."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from connector.ledger import schema as s
from connector.ledger.rows import OrderRow, by_columns, chunks, update_many, utcnow

ORDER_DEFAULTS = {"mdp": False, "test": False, "needs_confirm": False}


class OrdersRepo:
    def __init__(self, ledger):
        self._ledger = ledger

    # -- reads ----------------------------------------------------------------------------------
    def get_many(self, ids: Sequence[int], c: Connection | None = None) -> dict[int, OrderRow]:
        if c is None:
            with self._ledger.read() as c:
                return self.get_many(ids, c)
        out: dict[int, OrderRow] = {}
        for chunk in chunks(list(ids)):
            for r in c.execute(select(s.orders).where(s.orders.c.mall_order_id.in_(chunk))):
                out[r.mall_order_id] = OrderRow.from_row(r)
        return out

    def get(self, order_id: int, c: Connection | None = None) -> OrderRow | None:
        return self.get_many([order_id], c).get(order_id)

    def fingerprints(self, ids: Sequence[int]) -> dict[int, str | None]:
        """{order id: fingerprint of the shop row last seen} for the known ones among ``ids`` (two columns
        only: comparing a feed with the ledger must not drag every order's snapshot along)."""
        out: dict[int, str | None] = {}
        with self._ledger.read() as c:
            for chunk in chunks(list(ids)):
                out.update(c.execute(select(s.orders.c.mall_order_id, s.orders.c.shop_fingerprint)
                                     .where(s.orders.c.mall_order_id.in_(chunk))).all())
        return out

    def count(self) -> int:
        with self._ledger.read() as c:
            return c.execute(select(func.count()).select_from(s.orders)).scalar_one()

    @staticmethod
    def existing_ids(c: Connection, ids: Sequence[int]) -> set[int]:
        out: set[int] = set()
        for chunk in chunks(list(ids)):
            out.update(c.execute(select(s.orders.c.mall_order_id).where(s.orders.c.mall_order_id.in_(chunk))).scalars())
        return out

    def needing_confirm(self, account: str | None = None) -> list[int]:
        """Orders unconfirmed on MALL whose every MALL-side change reached the shop (inbound before confirm);
        ``account``: only that MALL account's (issue 18)."""
        from connector.ledger.types import OPEN_CHANGE_STATES, Origin

        with self._ledger.read() as c:
            waiting = select(s.changes.c.mall_order_id).where(
                s.changes.c.origin == Origin.MALL.value, s.changes.c.state.in_([x.value for x in OPEN_CHANGE_STATES]))
            return list(c.execute(select(s.orders.c.mall_order_id).where(
                s.orders.c.needs_confirm.is_(True), s.orders.c.mall_order_id.not_in(waiting),
                *([s.orders.c.account == account] if account is not None else []))
                .order_by(s.orders.c.mall_order_id)).scalars())

    # -- writes (in the caller's transaction) -----------------------------------------------------
    @staticmethod
    def ensure(c: Connection, order_id: int, **values: Any) -> None:
        """Insert the order row if missing, then set ``values`` on it."""
        now = utcnow()
        exists = c.execute(select(s.orders.c.mall_order_id).where(s.orders.c.mall_order_id == order_id)).first()
        if exists is None:
            base = {"mall_order_id": order_id, **ORDER_DEFAULTS, "created_at": now, "updated_at": now}
            base.update(values)
            c.execute(insert(s.orders).values(**base))
        elif values:
            c.execute(update(s.orders).where(s.orders.c.mall_order_id == order_id).values(updated_at=now, **values))

    @staticmethod
    def insert_many(c: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert new order rows (``mall_order_id`` plus values); one executemany per set of columns."""
        now = utcnow()
        full = [{**ORDER_DEFAULTS, "created_at": now, "updated_at": now, **r} for r in rows]
        for _, group in by_columns(full):
            c.execute(insert(s.orders), group)

    @staticmethod
    def update_many(c: Connection, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Set values on existing orders: ``[(order_id, {column: value})]``, one executemany per set of columns."""
        now = utcnow()
        update_many(c, s.orders, s.orders.c.mall_order_id, [{"updated_at": now, **v, "_id": oid} for oid, v in updates])

    # -- history (per-order events, `ledger show`) ------------------------------------------------
    @staticmethod
    def add_event(c: Connection, order_id: int, kind: str, message: str) -> None:
        c.execute(insert(s.events).values(mall_order_id=order_id, at=utcnow(), kind=str(kind), message=message[:4000]))

    @staticmethod
    def add_events(c: Connection, events: Sequence[tuple[int, str, str]]) -> None:
        """``add_event`` for many: ``[(order_id, kind, message)]`` in one executemany."""
        if events:
            now = utcnow()
            c.execute(insert(s.events), [{"mall_order_id": oid, "at": now, "kind": str(kind), "message": message[:4000]}
                                         for oid, kind, message in events])

    def events_for(self, order_id: int) -> list[tuple[datetime, str, str]]:
        with self._ledger.read() as c:
            q = select(s.events.c.at, s.events.c.kind, s.events.c.message).where(
                s.events.c.mall_order_id == order_id).order_by(s.events.c.id)
            return [tuple(r) for r in c.execute(q)]
