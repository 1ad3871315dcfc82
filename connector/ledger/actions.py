"""Needs-action items: what a human must do, opened once per key, alerted, cleared by `ledger done`."""

from __future__ import annotations

from sqlalchemy import or_, insert, select, update
from sqlalchemy.engine import Connection

from connector.ledger import schema as s
from connector.ledger.rows import utcnow


class ActionsRepo:
    def __init__(self, ledger):
        self._ledger = ledger

    @staticmethod
    def add(c: Connection, *, key: str, order_id: int | None, kind: str, message: str) -> int | None:
        """Open a needs-action item unless one with this key exists (open or done). Returns the new id."""
        if c.execute(select(s.actions.c.id).where(s.actions.c.key == key)).first() is not None:
            return None
        res = c.execute(insert(s.actions).values(key=key, mall_order_id=order_id, kind=str(kind), message=message,
                                                 created_at=utcnow()))
        return int(res.inserted_primary_key[0])

    @staticmethod
    def exists(c: Connection, key: str) -> bool:
        """An item with this key was ever opened (open or done): ``add`` would do nothing (issue 15)."""
        return c.execute(select(s.actions.c.id).where(s.actions.c.key == key)).first() is not None

    def open(self) -> list[dict]:
        with self._ledger.read() as c:
            q = select(s.actions).where(s.actions.c.done_at.is_(None)).order_by(s.actions.c.id)
            return [dict(r._mapping) for r in c.execute(q)]

    @staticmethod
    def order_of(c: Connection, action_id: int) -> int | None:
        """The MALL order a needs-action item is about (None: none, or no such item)."""
        return c.execute(select(s.actions.c.mall_order_id).where(s.actions.c.id == action_id)).scalar()

    @staticmethod
    def done(c: Connection, action_id: int, note: str | None = None) -> bool:
        n = c.execute(update(s.actions).where(s.actions.c.id == action_id, s.actions.c.done_at.is_(None))
                      .values(done_at=utcnow(), done_note=note, closed_by="hand")).rowcount
        return n == 1

    @staticmethod
    def pick_open(c: Connection, *, ids=(), kind: str | None = None, every: bool = False) -> list[int]:
        """Open items by id, by kind (``done 3 4 --kind credit_note``: items 3 and 4 and every credit note), or all."""
        a = s.actions.c
        conds = [a.done_at.is_(None)]
        if not every:
            picks = []
            if ids:
                picks.append(a.id.in_(list(ids)))
            if kind:
                picks.append(a.kind == str(kind))
            if not picks:
                return []
            conds.append(or_(*picks))
        return [r[0] for r in c.execute(select(a.id).where(*conds).order_by(a.id)).all()]

    @staticmethod
    def close(c: Connection, order_id: int, kind: str, note: str) -> int:
        """Close open items of one kind for an order (the condition cleared by itself)."""
        return c.execute(update(s.actions).where(s.actions.c.mall_order_id == order_id, s.actions.c.kind == str(kind),
                                                 s.actions.c.done_at.is_(None))
                         .values(done_at=utcnow(), done_note=note)).rowcount
