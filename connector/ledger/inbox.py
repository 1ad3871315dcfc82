"""The webhook inbox: MALL order ids waiting to be read, with their attempts and quarantine."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from connector.ledger import schema as s
from connector.ledger.db import LedgerError
from connector.ledger.dialect import insert_ignoring_duplicates
from connector.ledger.rows import FailedItem, chunks, utcnow
from connector.ledger.types import InboxState, ItemKind

# Statements of the webhook path, built once: constructing a statement costs more than running it.
_INBOX_WAITING = select(s.inbox.c.mall_order_id).where(s.inbox.c.mall_order_id.in_(bindparam("ids", expanding=True)))
_INBOX_INSERT = insert(s.inbox)


class _SqliteInbox:
    """The webhook path's two statements straight on the sqlite3 cursor, inside the ledger's own write
    transaction (its lock, BEGIN IMMEDIATE and COMMIT are unchanged, so durability is too).

    Issue 17: SQLAlchemy's execute machinery cost about as much CPU per delivery as the rest of the
    receiver. SQLite only (pysqlite); every other dialect takes the SQLAlchemy Core statements above.
    Values go through each column's own bind processor, so the stored text is what Core would store;
    scalar Python-side column defaults are filled in as Core does; a column with any other kind of
    default not given in the rows makes ``insert`` answer False (the caller then uses Core)."""

    _statements: dict[tuple, tuple | None] = {}

    @staticmethod
    def usable(c: Connection) -> bool:
        return c.dialect.name == "sqlite" and c.dialect.driver == "pysqlite"

    @staticmethod
    def waiting(c: Connection, ids: list[int]) -> list[int]:
        cur = c.connection.driver_connection.cursor()
        try:
            cur.execute(f"SELECT mall_order_id FROM inbox WHERE mall_order_id IN ({', '.join('?' * len(ids))})", ids)
            return [row[0] for row in cur.fetchall()]
        finally:
            cur.close()

    @classmethod
    def insert(cls, c: Connection, rows: list[dict]) -> bool:
        keys = tuple(rows[0])
        prepared = cls._statements.get(keys)
        if prepared is None and keys not in cls._statements:
            prepared = cls._statements[keys] = cls._prepare(c, keys)
        if prepared is None:
            return False
        sql, procs, extra = prepared
        values = [tuple(p(v) if p else v for p, v in zip(procs, (*(r[k] for k in keys), *extra))) for r in rows]
        cur = c.connection.driver_connection.cursor()
        try:
            cur.executemany(sql, values)
        finally:
            cur.close()
        return True

    @staticmethod
    def _prepare(c: Connection, keys: tuple) -> tuple | None:
        extra_cols, extra = [], []
        for col in s.inbox.columns:
            if col.key in keys or col.default is None:
                continue
            if not col.default.is_scalar:
                return None
            extra_cols.append(col.key)
            extra.append(col.default.arg)
        cols = [s.inbox.c[k] for k in (*keys, *extra_cols)]
        q = c.dialect.identifier_preparer
        sql = (f"INSERT INTO {q.format_table(s.inbox)} ({', '.join(q.format_column(col) for col in cols)}) "
               f"VALUES ({', '.join('?' * len(cols))})")
        procs = [col.type._cached_bind_processor(c.dialect) for col in cols]
        return sql, procs, tuple(extra)


@dataclass(eq=False)
class _InboxRequest:
    """One caller's ids waiting for the next group commit of the inbox (see ``InboxRepo.enqueue``)."""

    ids: list[int]
    source: str
    added: int = 0
    account: str = s.DEFAULT_ACCOUNT  # issue 18: the account whose webhook token (or sweep) named the ids
    done: bool = False
    error: BaseException | None = field(default=None, repr=False)


class InboxRepo:
    def __init__(self, ledger):
        self._ledger = ledger
        self._pending: list[_InboxRequest] = []
        self._pending_lock = threading.Lock()
        # Waiters learn that their ids were committed from the condition, all at once: before, each one passed
        # through the leader lock in turn, and the next leader started only after that convoy, with a batch
        # of ~2 whatever the concurrency (issue 17: measured 2.0 deliveries per commit with 8 writers).
        self._turn = threading.Condition(self._pending_lock)
        self._writing = False
        self._leader = threading.Lock()  # held while a batch is written (tests hold it to stage a commit in flight)

    def enqueue(self, ids: Iterable[int], source: str = "webhook", account: str = s.DEFAULT_ACCOUNT) -> int:
        """Queue order ids for the inbound worker; an id already in the inbox (waiting or quarantined) is not
        added twice. Returns how many ids were new.

        The one write that owns its transaction: it is committed (durably) before it returns, so before the
        receiver answers MALL. Group commit: callers that arrive while another caller's transaction is
        committing wait for it, and the next one to get the turn writes everything queued meanwhile in one
        transaction. Each caller still returns only after its own ids are committed, and gets the error when
        that transaction failed; concurrent deliveries share one commit (one fsync) instead of one each."""
        unique = sorted(set(int(i) for i in ids))
        if not unique:
            return 0
        mine = _InboxRequest(unique, source, account=account)
        with self._turn:
            self._pending.append(mine)
            while self._writing and not mine.done:  # a commit is in flight: it may not have taken mine
                self._turn.wait()
            lead = not mine.done
            if lead:
                self._writing = True
        if lead:  # nobody took it along: write it, with whatever else is waiting by the time the turn comes
            try:
                with self._leader:
                    with self._turn:
                        batch, self._pending = self._pending, []
                    self._write(batch)
            finally:
                with self._turn:
                    self._writing = False
                    self._turn.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.added

    def _write(self, batch: list[_InboxRequest]) -> None:
        """One transaction for the requests of ``batch``, in order; each is marked done, and failed unless committed."""
        now = utcnow()
        committed = False
        try:
            with self._ledger.write() as c:
                wanted = sorted({i for r in batch for i in r.ids})
                fast = _SqliteInbox.usable(c)
                seen: set[int] = set()
                for chunk in chunks(wanted):
                    if fast:
                        seen.update(_SqliteInbox.waiting(c, list(chunk)))
                    else:
                        seen.update(c.execute(_INBOX_WAITING, {"ids": list(chunk)}).scalars())
                rows = []
                for r in batch:
                    new = [i for i in r.ids if i not in seen]
                    seen.update(new)
                    r.added = len(new)
                    rows += [{"mall_order_id": i, "source": r.source, "received_at": now, "attempts": 0,
                              "state": InboxState.WAITING.value, "account": r.account} for i in new]
                # receivers of several replicas may race for one id (PostgreSQL): the second insert is skipped
                if rows and not (fast and _SqliteInbox.insert(c, rows)):
                    c.execute(_INBOX_INSERT if c.dialect.name == "sqlite" else insert_ignoring_duplicates(s.inbox, c), rows)
            committed = True
        except Exception as e:  # every caller of the batch learns that nothing was stored, and raises it
            for r in batch:
                r.error = e
        finally:
            for r in batch:
                if not committed:
                    r.added = 0
                    r.error = r.error or LedgerError("the inbox transaction was interrupted; nothing was stored")
                r.done = True

    def due(self, limit: int, now: datetime | None = None, *, due_anyway: bool = False,
            account: str | None = None) -> list[int]:
        """Waiting ids whose next attempt is due (``due_anyway``: backing off too), oldest first; quarantined
        ids never are. ``account``: only that MALL account's (issue 18)."""
        now = now or utcnow()
        i = s.inbox.c
        cond = [i.state == InboxState.WAITING.value]
        if account is not None:
            cond.append(i.account == account)
        if not due_anyway:
            cond.append(or_(i.next_attempt_at.is_(None), i.next_attempt_at <= now))
        with self._ledger.read() as c:
            q = select(i.mall_order_id).where(*cond).order_by(i.received_at, i.mall_order_id).limit(limit)
            return list(c.execute(q).scalars())

    def waiting_among(self, ids: Iterable[int]) -> set[int]:
        """Those of ``ids`` with an id waiting in the inbox (not quarantined): MALL told of a change not read yet."""
        out: set[int] = set()
        i = s.inbox.c
        with self._ledger.read() as c:
            for chunk in chunks(sorted(set(ids))):
                out.update(c.execute(select(i.mall_order_id).where(
                    i.mall_order_id.in_(list(chunk)), i.state == InboxState.WAITING.value)).scalars())
        return out

    def depth(self) -> int:
        """Ids in the inbox, waiting or quarantined."""
        with self._ledger.read() as c:
            return c.execute(select(func.count()).select_from(s.inbox)).scalar_one()

    def attempts(self, order_id: int) -> int:
        with self._ledger.read() as c:
            return c.execute(select(s.inbox.c.attempts).where(s.inbox.c.mall_order_id == order_id)).scalar() or 0

    @staticmethod
    def remove(c: Connection, order_id: int) -> None:
        c.execute(delete(s.inbox).where(s.inbox.c.mall_order_id == order_id))

    @staticmethod
    def record_failure(c: Connection, order_id: int, *, attempts: int, next_attempt_at: datetime | None,
                       quarantine: bool, error_class: str, message: str, reason: str) -> None:
        """An attempt failed: count it, keep the error, and either schedule the next one or quarantine the id."""
        c.execute(update(s.inbox).where(s.inbox.c.mall_order_id == order_id).values(
            attempts=attempts, next_attempt_at=next_attempt_at, last_error=message, error_class=error_class,
            reason=reason, state=(InboxState.FAILED if quarantine else InboxState.WAITING).value))

    @staticmethod
    def release(c: Connection, order_id: int) -> bool:
        """`ledger retry inbox:ID`: a quarantined id waits again, with a fresh count of attempts."""
        return c.execute(update(s.inbox).where(s.inbox.c.mall_order_id == order_id,
                                               s.inbox.c.state == InboxState.FAILED.value)
                         .values(state=InboxState.WAITING.value, attempts=0, next_attempt_at=None,
                                 reason=None)).rowcount == 1

    def failed(self) -> list[FailedItem]:
        i = s.inbox.c
        with self._ledger.read() as c:
            rows = c.execute(select(s.inbox).where(i.state == InboxState.FAILED.value)
                             .order_by(i.received_at, i.mall_order_id)).all()
        return [FailedItem(ItemKind.INBOX, r.mall_order_id, (r.mall_order_id,), "inbox id: MALL → shop",
                           r.attempts, r.reason or r.last_error or "", r.error_class, None) for r in rows]
