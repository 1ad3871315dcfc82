"""issue 17 (quota): confirmations still to verify, and MALL calls per day and kind.

Writes take the caller's connection (``with ledger.write() as c:``). Portable SQL only (SQLite and
PostgreSQL): the call counts are added with update-then-insert, never a dialect-only upsert.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from connector.ledger import schema as s
from connector.ledger.rows import chunks

DEFAULT_ACCOUNT = "default"


class VerificationsRepo:
    """Orders confirmed without a re-read, waiting for one batched check against MALL's order list."""

    def __init__(self, ledger):
        self._ledger = ledger

    @staticmethod
    def add(c: Connection, order_id: int, confirmed_at: datetime, account: str = DEFAULT_ACCOUNT) -> None:
        v = s.verifications.c
        if not c.execute(update(s.verifications).where(v.mall_order_id == order_id)
                         .values(confirmed_at=confirmed_at)).rowcount:
            c.execute(insert(s.verifications).values(mall_order_id=order_id, confirmed_at=confirmed_at,
                                                     account=account))

    @staticmethod
    def done(c: Connection, order_ids: list[int]) -> int:
        """The orders are verified (listed, or read again since their confirmation): forget them."""
        n = 0
        for chunk in chunks(sorted(set(order_ids))):
            n += c.execute(delete(s.verifications).where(s.verifications.c.mall_order_id.in_(list(chunk)))).rowcount
        return n

    @staticmethod
    def confirmed_at_of(c: Connection, order_id: int) -> datetime | None:
        v = s.verifications.c
        return c.execute(select(v.confirmed_at).where(v.mall_order_id == order_id)).scalar()

    def oldest(self) -> datetime | None:
        with self._ledger.read() as c:
            return c.execute(select(func.min(s.verifications.c.confirmed_at))).scalar()

    def pending(self, limit: int) -> list[int]:
        """Order ids waiting, oldest confirmation first."""
        v = s.verifications.c
        with self._ledger.read() as c:
            q = select(v.mall_order_id).order_by(v.confirmed_at, v.mall_order_id).limit(limit)
            return list(c.execute(q).scalars())

    def count(self) -> int:
        with self._ledger.read() as c:
            return c.execute(select(func.count()).select_from(s.verifications)).scalar_one()


class CallsRepo:
    """MALL calls per day and kind (``mall-connector stats``)."""

    def __init__(self, ledger):
        self._ledger = ledger

    @staticmethod
    def add(c: Connection, counts: dict[tuple[str, str], tuple[int, int]], account: str = DEFAULT_ACCOUNT) -> None:
        """Add ``{(day, kind): (calls, errors)}``: one UPDATE per key, an INSERT for a key not seen yet."""
        t = s.mall_calls.c
        for (day, kind), (calls, errors) in sorted(counts.items()):
            where = (t.account == account) & (t.day == day) & (t.kind == kind)
            bumped = update(s.mall_calls).where(where).values(calls=t.calls + calls, errors=t.errors + errors)
            if c.execute(bumped).rowcount:
                continue
            try:
                with c.begin_nested():  # another writer may insert the same key first (PostgreSQL replicas)
                    c.execute(insert(s.mall_calls).values(account=account, day=day, kind=kind, calls=calls,
                                                          errors=errors))
            except IntegrityError:
                c.execute(bumped)

    def per_day(self, since_day: str, account: str | None = None) -> list[tuple[str, str, int, int]]:
        """(day, kind, calls, errors) from ``since_day`` (YYYY-MM-DD) on, newest day first."""
        t = s.mall_calls.c
        q = select(t.day, t.kind, func.sum(t.calls), func.sum(t.errors)).where(t.day >= since_day)
        if account is not None:
            q = q.where(t.account == account)
        q = q.group_by(t.day, t.kind).order_by(t.day.desc(), t.kind)
        with self._ledger.read() as c:
            return [(d, k, int(n or 0), int(e or 0)) for d, k, n, e in c.execute(q)]
