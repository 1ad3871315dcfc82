"""The ledger: one object passed around, its focused repositories as attributes.

    ledger.orders    orders, snapshots and each order's history   (orders.py)
    ledger.changes   changes and their one state machine          (changes.py, transitions.py)
    ledger.inbox     webhook inbox                                 (inbox.py)
    ledger.handoffs  outbox batches                                (handoffs.py)
    ledger.confirms  failed confirmations                          (confirms.py)
    ledger.actions   needs-action items                            (actions.py)
    ledger.alerts    alert state                                   (alerts.py)
    ledger.kv        small named values                            (kv.py)
    ledger.reports   read-only queries of the exports               (reports.py)
    ledger.parcels   watched deliveries (issue 15)                 (parcels.py)

One transaction convention: a repository method that writes takes the caller's connection ``c`` first
(``with ledger.write() as c: ...``), so one unit of work is one transaction whatever it touches; a read
opens its own read transaction (some take ``c`` to read inside a write). The only write that owns its
transaction is ``inbox.enqueue``: its group commit is the point (it is durable before the receiver
answers MALL). Writes use BEGIN IMMEDIATE (see db.py); none is held across an HTTP call.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from connector.ledger import schema as s
from connector.ledger.actions import ActionsRepo
from connector.ledger.alerts import AlertsRepo
from connector.ledger.changes import ChangesRepo
from connector.ledger.confirms import ConfirmsRepo
from connector.ledger.db import READ_ONLY, LedgerError, make_engine, migrate
from connector.ledger.handoffs import HandoffsRepo
from connector.ledger.inbox import InboxRepo
from connector.ledger.kv import KvRepo
from connector.ledger.labels import MdpRepo
from connector.ledger.orders import OrdersRepo
from connector.ledger.reports import ReportsRepo
from connector.ledger.rows import ChangeRow, FailedItem, HandoffRow, OrderRow, utcnow  # noqa: F401 - re-exported
from connector.ledger.types import OPEN_CHANGE_STATES, ChangeState, InboxState

log = logging.getLogger(__name__)

class Ledger:
    """All durable state of the connector; the repositories are its attributes."""

    def __init__(self, engine: Engine, *, busy_timeout_s: float = 15.0):
        self.engine = engine
        self.busy_timeout_s = busy_timeout_s
        # Writers of this process queue here instead of in SQLite's busy handler, which polls with sleeps of
        # 1..100 ms: under concurrent webhooks that polling, not the work, set the latency. Other processes
        # (CLI commands) still meet at SQLite's lock and busy_timeout.
        self._write_lock = threading.RLock()
        self.orders = OrdersRepo(self)
        self.changes = ChangesRepo(self)
        self.inbox = InboxRepo(self)
        self.handoffs = HandoffsRepo(self)
        self.confirms = ConfirmsRepo(self)
        self.actions = ActionsRepo(self)
        self.alerts = AlertsRepo(self)
        self.kv = KvRepo(self)
        self.reports = ReportsRepo(self)
        from connector.ledger.parcels import ParcelsRepo  # issue 15

        self.parcels = ParcelsRepo(self)
        self.mdp = MdpRepo(self)  # MALL Delivery labels and serial numbers (issue 21)
        from connector.ledger.accounts import AccountsRepo  # issue 18: which account owns each order

        self.accounts = AccountsRepo(self)
        from connector.ledger.leases import LeasesRepo  # replicas on PostgreSQL (issue 18)

        self.leases = LeasesRepo(self)
        from connector.ledger.quota import CallsRepo, VerificationsRepo  # issue 17 (quota)

        self.verifications = VerificationsRepo(self)
        self.calls = CallsRepo(self)

    # -- transactions -------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[Connection]:
        if not self._write_lock.acquire(timeout=self.busy_timeout_s):
            from connector.ledger.dialect import describe

            where = describe(self.engine.url)
            raise LedgerError(f"ledger {where} is locked: another thread of this process held it for more than "
                              f"{self.busy_timeout_s:g} s")
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as e:
            raise LedgerError(_describe_db_error(e, self.engine)) from e
        finally:
            self._write_lock.release()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                with conn.begin():
                    yield conn
        except OperationalError as e:
            raise LedgerError(_describe_db_error(e, self.engine)) from e

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.read() as c:
            c.execute(text("SELECT 1"))

    # -- across repositories ----------------------------------------------------------------------
    def failed_items(self) -> list[FailedItem]:
        """Every quarantined item, whatever it is (changes, inbox ids, hand-offs, confirmations)."""
        return [*self.changes.failed(), *self.inbox.failed(), *self.handoffs.failed(), *self.confirms.failed()]

    def quarantined_count(self) -> int:
        """Quarantined inbox ids, hand-offs and confirmations (failed changes are counted by ``changes.count``)."""
        with self.read() as c:
            return sum(c.execute(select(func.count()).select_from(t).where(t.c.state == ChangeState.FAILED.value)).scalar_one()
                       for t in (s.inbox, s.handoffs, s.confirms))

    def health(self) -> dict[str, Any]:
        """Cheap numbers for /readyz and metrics."""
        with self.read() as c:
            failed = c.execute(select(func.count()).select_from(s.changes).where(
                s.changes.c.state == ChangeState.FAILED.value)).scalar_one()
            depth = c.execute(select(func.count()).select_from(s.inbox)).scalar_one()
            waiting = c.execute(select(func.count()).select_from(s.changes).where(
                s.changes.c.state.in_([x.value for x in OPEN_CHANGE_STATES]))).scalar_one()
            actions = c.execute(select(func.count()).select_from(s.actions).where(s.actions.c.done_at.is_(None))).scalar_one()
            quarantined = c.execute(select(func.count()).select_from(s.inbox).where(
                s.inbox.c.state == InboxState.FAILED.value)).scalar_one()
        return {"failed_changes": failed, "inbox_depth": depth, "open_changes": waiting, "open_actions": actions,
                "quarantined_inbox": quarantined,
                "jobs": {k: v.isoformat() for k, v in self.kv.job_ok_times().items()}}


def _describe_db_error(e: SQLAlchemyError, engine: Engine) -> str:
    from connector.ledger.dialect import describe
    from connector.logs import redact

    where = describe(engine.url)
    msg = redact(str(getattr(e, "orig", e)).strip())
    if "locked" in msg:
        return f"ledger {where} is locked by another process (waited for busy_timeout): {msg}"
    if "disk" in msg and "full" in msg or "database or disk is full" in msg:
        return f"ledger {where}: the disk is full; nothing was half-applied (the transaction rolled back)"
    if "readonly" in msg or "read-only" in msg:
        return f"ledger {where} is read-only: check the file's owner and permissions"
    if "unable to open" in msg:
        return f"ledger {where} cannot be opened: check the folder exists and is writable"
    return f"ledger {where}: {msg}"


def open_ledger(url: str, *, migrate_schema: bool = True, busy_timeout_ms: int = 15000) -> Ledger:
    """Open (and migrate) the ledger at a SQLAlchemy URL. Raises LedgerError with a clear message."""
    engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
    try:
        if migrate_schema and migrate(engine):
            log.info("ledger schema migrated to the newest version")
    except SQLAlchemyError as e:
        raise LedgerError(_describe_db_error(e, engine)) from e
    return Ledger(engine, busy_timeout_s=busy_timeout_ms / 1000)
