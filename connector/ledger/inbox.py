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
        self._leader = threading.Lock()

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
        with self._pending_lock:
            self._pending.append(mine)
        with self._leader:
            if not mine.done:  # nobody took it along yet: write it, with whatever else is waiting
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._write(batch)
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
                seen: set[int] = set()
                for chunk in chunks(wanted):
                    seen.update(c.execute(_INBOX_WAITING, {"ids": list(chunk)}).scalars())
                rows = []
                for r in batch:
                    new = [i for i in r.ids if i not in seen]
                    seen.update(new)
                    r.added = len(new)
                    rows += [{"mall_order_id": i, "source": r.source, "received_at": now, "attempts": 0,
                              "state": InboxState.WAITING.value, "account": r.account} for i in new]
                if rows:  # receivers of several replicas may race for one id: the second insert is skipped
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
