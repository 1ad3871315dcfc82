"""Confirmations (PUT confirmed: true) that failed: retried with backoff, quarantined past max_attempts.

An order waiting for its first try has no row here (``orders.needs_confirm``); a row exists from the
first failure until the order is confirmed or dropped.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from connector.ledger import schema as s
from connector.ledger.rows import FailedItem, utcnow
from connector.ledger.types import ConfirmState, ItemKind


class ConfirmsRepo:
    def __init__(self, ledger):
        self._ledger = ledger

    def held(self, now: datetime | None = None, *, only_quarantined: bool = False) -> set[int]:
        """Orders whose confirmation must not be tried now: quarantined, or (unless ``only_quarantined``)
        backing off."""
        now = now or utcnow()
        cf = s.confirms.c
        cond = cf.state == ConfirmState.FAILED.value
        if not only_quarantined:
            cond = cond | (cf.next_attempt_at > now)
        with self._ledger.read() as c:
            return set(c.execute(select(cf.mall_order_id).where(cond)).scalars())

    def attempts(self, order_id: int) -> int:
        with self._ledger.read() as c:
            return c.execute(select(s.confirms.c.attempts).where(s.confirms.c.mall_order_id == order_id)).scalar() or 0

    @staticmethod
    def record_failure(c: Connection, order_id: int, *, attempts: int, next_attempt_at: datetime | None,
                       quarantine: bool, error_class: str, message: str, reason: str) -> None:
        values = {"state": (ConfirmState.FAILED if quarantine else ConfirmState.RETRY).value, "attempts": attempts,
                  "next_attempt_at": next_attempt_at, "error_class": error_class, "last_error": message,
                  "reason": reason, "updated_at": utcnow()}
        if not c.execute(update(s.confirms).where(s.confirms.c.mall_order_id == order_id).values(**values)).rowcount:
            c.execute(insert(s.confirms).values(mall_order_id=order_id, **values))

    @staticmethod
    def clear(c: Connection, order_id: int) -> None:
        """The order is confirmed (or no longer needs it): forget its failures."""
        c.execute(delete(s.confirms).where(s.confirms.c.mall_order_id == order_id))

    @staticmethod
    def release(c: Connection, order_id: int) -> bool:
        """`ledger retry confirm:ID`: tried again on the next pass, with a fresh count."""
        return c.execute(delete(s.confirms).where(s.confirms.c.mall_order_id == order_id,
                                                  s.confirms.c.state == ConfirmState.FAILED.value)).rowcount == 1

    def failed(self) -> list[FailedItem]:
        cf = s.confirms.c
        with self._ledger.read() as c:
            rows = c.execute(select(s.confirms).where(cf.state == ConfirmState.FAILED.value)
                             .order_by(cf.mall_order_id)).all()
        return [FailedItem(ItemKind.CONFIRM, r.mall_order_id, (r.mall_order_id,), "confirmation on MALL",
                           r.attempts, r.reason or r.last_error or "", r.error_class, r.updated_at) for r in rows]
