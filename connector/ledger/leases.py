"""Replicas on one PostgreSQL ledger (docs/scaling.md): the leader lease and the one-pass-at-a-time lock.

* ``hold(name, holder, lease_s)``: take or renew a lease row; True while ``holder`` has it. A holder that
  stops renewing (SIGKILL, a lost network) loses it ``lease_s`` after its last renewal, measured on the
  database server's clock, so replicas' clocks need not agree.
* ``turn(name)``: a session advisory lock held while a sync pass runs, so two replicas never run passes at
  the same time (the exactly-once reasoning of one process stays valid). The server releases it the
  moment the holder's connection ends: a SIGKILLed replica's turn passes on at once.

On SQLite there is one process: the lease is trivially held and the turn always granted.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Iterator

from sqlalchemy import delete, func, insert, select, update

from connector.ledger import dialect
from connector.ledger import schema as s
from connector.ledger.rows import utcnow

log = logging.getLogger(__name__)

LEADER = "leader"


def _lock_key(name: str) -> int:
    """A stable int4 for a lock name (the second key; the first is dialect.LOCK_CLASS)."""
    import zlib

    return (zlib.crc32(name.encode()) & 0x3FFFFFFF) | 0x100  # never dialect.WRITE_LOCK


class LeasesRepo:
    def __init__(self, ledger):
        self._ledger = ledger

    @property
    def shared(self) -> bool:
        """True when several processes may share this ledger (PostgreSQL)."""
        return dialect.is_postgres(self._ledger.engine)

    def _db_now(self, c) -> datetime:
        if c.dialect.name == "postgresql":
            return c.execute(select(func.timezone("UTC", func.now()))).scalar_one()
        return utcnow()

    def hold(self, name: str, holder: str, lease_s: float) -> bool:
        """Take the lease if free or expired, renew it if ours. True when ``holder`` holds it now."""
        if not self.shared:
            return True
        t = s.leases.c
        with self._ledger.write() as c:
            now = self._db_now(c)
            until = now + timedelta(seconds=lease_s)
            row = c.execute(dialect.for_claim(select(s.leases).where(t.name == name), c)).first()
            if row is None:
                c.execute(insert(s.leases).values(name=name, holder=holder, acquired_at=now, expires_at=until))
                return True
            if row.holder == holder:
                c.execute(update(s.leases).where(t.name == name).values(expires_at=until))
                return True
            if row.expires_at <= now:
                c.execute(update(s.leases).where(t.name == name).values(holder=holder, acquired_at=now,
                                                                         expires_at=until))
                log.info("took the %s lease over from %s (it expired at %s)", name, row.holder, row.expires_at)
                return True
            return False

    def release(self, name: str, holder: str) -> None:
        """Give the lease up (a clean stop): another replica takes it at its next try, not after lease_s."""
        if self.shared:
            with self._ledger.write() as c:
                c.execute(delete(s.leases).where(s.leases.c.name == name, s.leases.c.holder == holder))

    def current(self, name: str = LEADER) -> tuple[str, datetime] | None:
        """(holder, expires_at) of a lease, for `check` and the tests."""
        with self._ledger.read() as c:
            row = c.execute(select(s.leases.c.holder, s.leases.c.expires_at).where(s.leases.c.name == name)).first()
        return (row.holder, row.expires_at) if row else None

    @contextmanager
    def turn(self, name: str) -> Iterator[bool]:
        """Yield True when this process may run ``name`` now (no other replica is running it), else False.
        The lock lives on its own connection, outside any transaction, for as long as the block runs."""
        if not self.shared:
            yield True
            return
        from connector.ledger.db import LedgerError

        key = _lock_key(name)
        try:
            raw = self._ledger.engine.raw_connection()
        except Exception as e:  # noqa: BLE001 - the server is unreachable: no turn, a contained error
            raise LedgerError(f"ledger {dialect.describe(self._ledger.engine.url)} unreachable: "
                              f"{type(e).__name__}") from None
        try:
            conn = raw.driver_connection
            try:
                conn.autocommit = True  # a session lock, not a transaction: the pass commits as it goes
                got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (dialect.LOCK_CLASS, key)).fetchone()[0]
                conn.autocommit = False  # as SQLAlchemy expects its pooled connections
            except Exception as e:  # noqa: BLE001
                raw.invalidate()
                raise LedgerError(f"ledger {dialect.describe(self._ledger.engine.url)}: cannot take the {name} "
                                  f"turn: {type(e).__name__}") from None
            try:
                yield bool(got)
            finally:
                if got:
                    try:
                        conn.autocommit = True
                        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (dialect.LOCK_CLASS, key))
                        conn.autocommit = False
                    except Exception:  # noqa: BLE001 - connection gone: the server dropped the lock with it
                        raw.invalidate()
        finally:
            try:
                raw.close()
            except Exception:  # noqa: BLE001
                pass
