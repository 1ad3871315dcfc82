"""Alert state: one row per problem key (open / resolved), so an alert is sent once and repeated on a timer.

issue 14 added ``urgent`` and ``last_seen_at`` (migration 0004) and the digest's reads: the problems the
next digest owes (``owed``), many keys at once (``get_many``), the open keys (``open_keys``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from connector.ledger import schema as s

OPEN, RESOLVED = "open", "resolved"


class AlertsRepo:
    def __init__(self, ledger):
        self._ledger = ledger

    @staticmethod
    def get(c: Connection, key: str):
        """The problem's row (key, state, message, first_at, last_sent_at, resolved_at, count, urgent,
        last_seen_at) or None."""
        return c.execute(select(s.alerts).where(s.alerts.c.key == key)).first()

    @staticmethod
    def get_many(c: Connection, keys: Sequence[str]) -> dict:
        """{key: row} of the given keys that have a row."""
        out = {}
        keys = list(keys)
        for i in range(0, len(keys), 500):
            out.update({r.key: r for r in c.execute(select(s.alerts).where(s.alerts.c.key.in_(keys[i:i + 500])))})
        return out

    @staticmethod
    def open(c: Connection, key: str, message: str, now: datetime, *, exists: bool, urgent: bool = False) -> None:
        """Open ``key`` as a new problem (first time, or back again after it was resolved)."""
        values = dict(state=OPEN, message=message, first_at=now, last_sent_at=None, resolved_at=None, count=1,
                      urgent=urgent, last_seen_at=now)
        if exists:
            c.execute(update(s.alerts).where(s.alerts.c.key == key).values(**values))
        else:
            c.execute(insert(s.alerts).values(key=key, **values))

    @staticmethod
    def repeat(c: Connection, key: str, message: str, count: int, *, now: datetime | None = None) -> None:
        values = {"message": message, "count": count}
        if now is not None:
            values["last_seen_at"] = now
        c.execute(update(s.alerts).where(s.alerts.c.key == key).values(**values))

    @staticmethod
    def refresh(c: Connection, key: str, **values) -> None:
        """Update an open problem seen again (message, last_seen_at, count, urgent; last_sent_at=None to say
        it again at once)."""
        c.execute(update(s.alerts).where(s.alerts.c.key == key, s.alerts.c.state == OPEN).values(**values))

    @staticmethod
    def mark_sent(c: Connection, key: str, state: str, now: datetime, *, only_unsent: bool = False) -> None:
        q = update(s.alerts).where(s.alerts.c.key == key, s.alerts.c.state == state)
        if only_unsent:
            q = q.where(s.alerts.c.last_sent_at.is_(None))
        c.execute(q.values(last_sent_at=now))

    @staticmethod
    def resolve(c: Connection, key: str, now: datetime, *, last_sent_at: datetime | None,
                message: str | None = None) -> None:
        values = dict(state=RESOLVED, resolved_at=now, last_sent_at=last_sent_at)
        if message is not None:
            values["message"] = message
        c.execute(update(s.alerts).where(s.alerts.c.key == key).values(**values))

    def open_problems(self) -> list:
        with self._ledger.read() as c:
            return c.execute(select(s.alerts).where(s.alerts.c.state == OPEN)
                             .order_by(s.alerts.c.first_at, s.alerts.c.key)).all()

    def open_keys(self, prefix: str = "") -> set[str]:
        """Keys of the open problems starting with ``prefix``."""
        with self._ledger.read() as c:
            q = select(s.alerts.c.key).where(s.alerts.c.state == OPEN)
            if prefix:
                q = q.where(s.alerts.c.key.startswith(prefix, autoescape=True))
            return set(c.execute(q).scalars())

    def owed(self, now: datetime, repeat_after: timedelta) -> list:
        """What the next digest owes, oldest first: open problems never sent or due for a repeat, and resolved
        ones whose "resolved" message is still owed (by index ix_alerts_state_last_sent_at)."""
        a = s.alerts.c
        with self._ledger.read() as c:
            return c.execute(select(s.alerts).where(
                ((a.state == OPEN) & (a.last_sent_at.is_(None) | (a.last_sent_at <= now - repeat_after)))
                | ((a.state == RESOLVED) & a.last_sent_at.is_(None))
            ).order_by(a.first_at, a.key)).all()
