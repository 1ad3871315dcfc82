"""Read-only queries of the exports and the housekeeping job (orders list, picking, billing, deadlines)."""

from __future__ import annotations

from typing import Iterable, Sequence

from sqlalchemy import func, or_, select

from connector.ledger import schema as s
from connector.ledger.rows import chunks
from connector.ledger.types import ChangeState, Origin


class ReportsRepo:
    def __init__(self, ledger):
        self._ledger = ledger

    def orders_in(self, statuses: Iterable[str] | None, *, include_test: bool = False) -> list:
        """Order rows in ``statuses`` (None: all), test orders only with ``include_test``."""
        q = select(s.orders)
        if statuses is not None:
            q = q.where(s.orders.c.mall_status.in_(tuple(statuses)))
        if not include_test:
            q = q.where(s.orders.c.test.is_(False))
        with self._ledger.read() as c:
            return list(c.execute(q))

    def order_ids_in(self, statuses: Iterable[str], *, include_test: bool = False) -> set[int]:
        q = select(s.orders.c.mall_order_id).where(s.orders.c.mall_status.in_(tuple(statuses)))
        if not include_test:
            q = q.where(s.orders.c.test.is_(False))
        with self._ledger.read() as c:
            return set(c.execute(q).scalars())

    def orders_by_ids(self, ids: Sequence[int]) -> dict[int, object]:
        out = {}
        with self._ledger.read() as c:
            for chunk in chunks(list(dict.fromkeys(ids))):
                out.update({r.mall_order_id: r for r in c.execute(select(s.orders).where(
                    s.orders.c.mall_order_id.in_(list(chunk))))})
        return out

    def newest_changes(self, order_ids: Sequence[int]) -> list:
        """Each order's newest change: mall_order_id, origin, kind, target_status, state, reason, last_error."""
        c_ = s.changes.c
        out = []
        with self._ledger.read() as c:
            for chunk in chunks(list(order_ids)):
                newest = select(func.max(c_.id)).where(c_.mall_order_id.in_(chunk)).group_by(c_.mall_order_id)
                out += c.execute(select(c_.mall_order_id, c_.origin, c_.kind, c_.target_status, c_.state, c_.reason,
                                        c_.last_error).where(c_.id.in_(newest))).all()
        return out

    def delivered_between(self, status: str, start: str, end: str) -> list:
        """Non-test orders in ``status`` delivered in [start, end) or with no delivery time recorded."""
        o = s.orders.c
        with self._ledger.read() as c:
            return list(c.execute(select(s.orders).where(
                o.mall_status == status, o.test.is_(False),
                or_(o.mall_delivered_at.is_(None), (o.mall_delivered_at >= start) & (o.mall_delivered_at < end)))))

    def pushed_payloads(self, order_ids: Sequence[int], target_status: str) -> list[tuple[int, str | None]]:
        """(order id, payload JSON) of the done outbound changes that set ``target_status``."""
        ch = s.changes.c
        out = []
        with self._ledger.read() as c:
            for chunk in chunks(list(order_ids)):
                out += c.execute(select(ch.mall_order_id, ch.payload).where(
                    ch.mall_order_id.in_(chunk), ch.origin == Origin.SHOP.value, ch.target_status == target_status,
                    ch.state == ChangeState.DONE.value)).all()
        return out

    def orders_with_shop_moves(self, status: str) -> tuple[list, list]:
        """Orders in ``status`` (id, snapshot, test, account) and their outbound changes to another status (id, state).

        Only the changes of those orders (index on changes.mall_order_id): this runs every minute, and a scan
        of every shop change the ledger ever recorded grows with its age."""
        o, ch = s.orders.c, s.changes.c
        ids = select(o.mall_order_id).where(o.mall_status == status)
        with self._ledger.read() as c:
            rows = list(c.execute(select(o.mall_order_id, o.snapshot, o.test, o.account).where(o.mall_status == status)))
            moves = c.execute(select(ch.mall_order_id, ch.state).where(
                ch.mall_order_id.in_(ids), ch.origin == Origin.SHOP.value, ch.target_status.is_not(None),
                ch.target_status != status)).all()
        return rows, moves
