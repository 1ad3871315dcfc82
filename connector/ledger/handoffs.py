"""Hand-off batches to the shop's outbox: recorded with their final name before a byte is written."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection

from connector.ledger import schema as s
from connector.ledger.rows import FailedItem, HandoffRow, chunks, utcnow
from connector.ledger.types import OPEN_HANDOFF_STATES, ChangeState, HandoffState, ItemKind

_OPEN = [x.value for x in OPEN_HANDOFF_STATES]


class HandoffsRepo:
    def __init__(self, ledger):
        self._ledger = ledger

    @staticmethod
    def create(c: Connection, kind: str, change_ids: Sequence[int]) -> tuple[int, str]:
        """Record a batch and its final name before anything is written (state ``sending``); its changes are
        ``sending`` with it. The caller commits before the adapter writes a byte."""
        now = utcnow()
        res = c.execute(insert(s.handoffs).values(name=f"tmp-{kind}-{now.timestamp()}", kind=str(kind),
                                                  state=HandoffState.SENDING.value, created_at=now, attempts=0))
        hid = int(res.inserted_primary_key[0])
        name = f"{kind}-{now.strftime('%Y%m%dT%H%M%SZ')}-{hid:06d}"
        c.execute(update(s.handoffs).where(s.handoffs.c.id == hid).values(name=name))
        for chunk in chunks(list(change_ids)):
            c.execute(update(s.changes).where(s.changes.c.id.in_(chunk))
                      .values(handoff_id=hid, state=ChangeState.SENDING.value, updated_at=now))
        return hid, name

    @staticmethod
    def set_state(c: Connection, handoff_id: int, state: str) -> None:
        values = {"state": str(state)}
        if state == HandoffState.DONE:
            values["done_at"] = utcnow()
        c.execute(update(s.handoffs).where(s.handoffs.c.id == handoff_id).values(**values))

    def open(self, *, due_only: bool = False, now: datetime | None = None) -> list[HandoffRow]:
        """Batches not yet done nor quarantined, oldest first; ``due_only``: those whose backoff has passed."""
        h = s.handoffs.c
        # IN (the open states), not != "done": that can use ix_handoffs_state instead of reading every
        # batch ever handed over, and it runs on every drain and after every job.
        q = select(s.handoffs).where(h.state.in_(_OPEN))
        if due_only:
            q = q.where(or_(h.next_attempt_at.is_(None), h.next_attempt_at <= (now or utcnow())))
        with self._ledger.read() as c:
            return [HandoffRow.from_row(r) for r in c.execute(q.order_by(h.id))]

    @staticmethod
    def record_failure(c: Connection, handoff: HandoffRow, *, attempts: int, next_attempt_at: datetime | None,
                       quarantine: bool, error_class: str, message: str, reason: str) -> None:
        values = {"attempts": attempts, "next_attempt_at": next_attempt_at, "error_class": error_class,
                  "last_error": message, "reason": reason}
        if quarantine:
            values.update(state=HandoffState.FAILED.value, resume_state=handoff.state)
        c.execute(update(s.handoffs).where(s.handoffs.c.id == handoff.id).values(**values))

    @staticmethod
    def release(c: Connection, handoff_id: int) -> bool:
        """`ledger retry handoff:ID`: back to where it stood (staged stays staged: never written twice)."""
        row = c.execute(select(s.handoffs).where(s.handoffs.c.id == handoff_id,
                                                 s.handoffs.c.state == HandoffState.FAILED.value)).first()
        if row is None:
            return False
        c.execute(update(s.handoffs).where(s.handoffs.c.id == handoff_id).values(
            state=row.resume_state or HandoffState.SENDING.value, resume_state=None, attempts=0,
            next_attempt_at=None, reason=None))
        return True

    def failed(self) -> list[FailedItem]:
        h = s.handoffs.c
        with self._ledger.read() as c:
            rows = c.execute(select(s.handoffs).where(h.state == HandoffState.FAILED.value).order_by(h.id)).all()
            orders = {}
            for r in rows:
                orders[r.id] = tuple(c.execute(select(s.changes.c.mall_order_id).where(
                    s.changes.c.handoff_id == r.id).order_by(s.changes.c.id)).scalars())
        return [FailedItem(ItemKind.HANDOFF, r.id, orders[r.id], f"hand-off {r.name} ({r.kind}) to the shop",
                           r.attempts, r.reason or r.last_error or "", r.error_class, None) for r in rows]
