"""Alert state: one row per problem key (open / resolved), so an alert is sent once and repeated on a timer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from connector.ledger import schema as s

OPEN, RESOLVED = "open", "resolved"


class AlertsRepo:
    def __init__(self, ledger):
        self._ledger = ledger

    @staticmethod
    def get(c: Connection, key: str):
        """The problem's row (key, state, message, first_at, last_sent_at, resolved_at, count) or None."""
        return c.execute(select(s.alerts).where(s.alerts.c.key == key)).first()

    @staticmethod
    def open(c: Connection, key: str, message: str, now: datetime, *, exists: bool) -> None:
        """Open ``key`` as a new problem (first time, or back again after it was resolved)."""
        values = dict(state=OPEN, message=message, first_at=now, last_sent_at=None, resolved_at=None, count=1)
        if exists:
            c.execute(update(s.alerts).where(s.alerts.c.key == key).values(**values))
        else:
            c.execute(insert(s.alerts).values(key=key, **values))

    @staticmethod
    def repeat(c: Connection, key: str, message: str, count: int) -> None:
        c.execute(update(s.alerts).where(s.alerts.c.key == key).values(message=message, count=count))

    @staticmethod
    def mark_sent(c: Connection, key: str, state: str, now: datetime, *, only_unsent: bool = False) -> None:
        q = update(s.alerts).where(s.alerts.c.key == key, s.alerts.c.state == state)
        if only_unsent:
            q = q.where(s.alerts.c.last_sent_at.is_(None))
        c.execute(q.values(last_sent_at=now))

    @staticmethod
    def resolve(c: Connection, key: str, now: datetime, *, last_sent_at: datetime | None) -> None:
        c.execute(update(s.alerts).where(s.alerts.c.key == key).values(
            state=RESOLVED, resolved_at=now, last_sent_at=last_sent_at))

    def open_problems(self) -> list:
        with self._ledger.read() as c:
            return c.execute(select(s.alerts).where(s.alerts.c.state == OPEN)
                             .order_by(s.alerts.c.first_at, s.alerts.c.key)).all()
