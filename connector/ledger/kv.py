"""Small named values: feed fingerprint, feed failure count, job heartbeats."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from connector.ledger import schema as s
from connector.ledger.rows import utcnow

JOB_OK_PREFIX = "job_ok:"


class KvRepo:
    def __init__(self, ledger):
        self._ledger = ledger

    def get(self, key: str) -> str | None:
        with self._ledger.read() as c:
            return c.execute(select(s.kv.c.value).where(s.kv.c.key == key)).scalar()

    @staticmethod
    def set(c: Connection, key: str, value: str | None) -> None:
        n = c.execute(update(s.kv).where(s.kv.c.key == key).values(value=value, updated_at=utcnow())).rowcount
        if not n:
            c.execute(insert(s.kv).values(key=key, value=value, updated_at=utcnow()))

    def mark_job_ok(self, c: Connection, job: str) -> None:
        self.set(c, JOB_OK_PREFIX + job, utcnow().isoformat())

    def job_ok_times(self) -> dict[str, datetime]:
        with self._ledger.read() as c:
            rows = c.execute(select(s.kv.c.key, s.kv.c.value).where(s.kv.c.key.like(JOB_OK_PREFIX + "%"))).all()
        return {k.split(":", 1)[1]: datetime.fromisoformat(v) for k, v in rows if v}
