"""Ledger operations. Every method is one short transaction; none is held across an HTTP call.

Writes use BEGIN IMMEDIATE (see db.py). Reads that feed a later write are re-checked inside the
write (e.g. a change's state), so two processes cannot both take the same change.
"""

from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import groupby
from typing import Any, Iterable, Iterator, Sequence

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from connector.ledger import schema as s
from connector.ledger.db import READ_ONLY, LedgerError, make_engine, migrate

log = logging.getLogger(__name__)

CHANGE_STATES = ("pending", "sending", "retry", "done", "skipped", "failed")
OPEN_STATES = ("pending", "sending", "retry")
OPEN_HANDOFF_STATES = ("sending", "staged")  # a batch's states: sending -> staged -> done
IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's variable limit

# Statements of the webhook path, built once: constructing a statement costs more than running it.
_INBOX_WAITING = select(s.inbox.c.mall_order_id).where(s.inbox.c.mall_order_id.in_(bindparam("ids", expanding=True)))
_INBOX_INSERT = insert(s.inbox)


def utcnow() -> datetime:
    """Naive UTC (the ledger stores naive UTC datetimes, portable across backends)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _chunks(seq: Sequence, n: int = IN_CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


@dataclass(frozen=True)
class ChangeRow:
    id: int
    key: str
    mall_order_id: int
    origin: str
    kind: str
    shop_status: str | None
    target_status: str | None
    payload: dict
    state: str
    reason: str | None
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    handoff_id: int | None
    created_at: datetime
    updated_at: datetime
    done_at: datetime | None

    @classmethod
    def from_row(cls, r: Any) -> "ChangeRow":
        m = r._mapping
        return cls(
            id=m["id"], key=m["key"], mall_order_id=m["mall_order_id"], origin=m["origin"], kind=m["kind"],
            shop_status=m["shop_status"], target_status=m["target_status"],
            payload=json.loads(m["payload"]) if m["payload"] else {}, state=m["state"], reason=m["reason"],
            attempts=m["attempts"], next_attempt_at=m["next_attempt_at"], last_error=m["last_error"],
            handoff_id=m["handoff_id"], created_at=m["created_at"], updated_at=m["updated_at"], done_at=m["done_at"],
        )


@dataclass(frozen=True)
class OrderRow:
    mall_order_id: int
    shop_order_id: str | None
    mall_status: str | None
    mall_confirmed: bool | None
    mall_read_at: datetime | None
    mdp: bool
    test: bool
    shop_status: str | None
    shop_fingerprint: str | None
    handed_at: datetime | None
    handed_status: str | None
    handed_branch_id: int | None
    branch_id: int | None
    needs_confirm: bool
    snapshot: str | None

    @classmethod
    def from_row(cls, r: Any) -> "OrderRow":
        m = r._mapping
        return cls(**{f: m[f] for f in cls.__dataclass_fields__})


@dataclass(eq=False)
class _InboxRequest:
    """One caller's ids waiting for the next group commit of the inbox (see ``Ledger.enqueue_inbox``)."""

    ids: list[int]
    source: str
    added: int = 0
    done: bool = False
    error: BaseException | None = field(default=None, repr=False)


class Ledger:
    """All durable state of the connector."""

    def __init__(self, engine: Engine, *, busy_timeout_s: float = 15.0):
        self.engine = engine
        self.busy_timeout_s = busy_timeout_s
        # Writers of this process queue here instead of in SQLite's busy handler, which polls with sleeps of
        # 1..100 ms: under concurrent webhooks that polling, not the work, set the latency. Other processes
        # (CLI commands) still meet at SQLite's lock and busy_timeout.
        self._write_lock = threading.RLock()
        self._inbox_pending: list[_InboxRequest] = []
        self._inbox_pending_lock = threading.Lock()
        self._inbox_leader = threading.Lock()

    # -- transactions -------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[Connection]:
        if not self._write_lock.acquire(timeout=self.busy_timeout_s):
            where = self.engine.url.database or "ledger"
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

    # -- kv -----------------------------------------------------------------------------------
    def get_kv(self, key: str) -> str | None:
        with self.read() as c:
            return c.execute(select(s.kv.c.value).where(s.kv.c.key == key)).scalar()

    def set_kv(self, key: str, value: str | None, conn: Connection | None = None) -> None:
        def _do(c: Connection) -> None:
            n = c.execute(update(s.kv).where(s.kv.c.key == key).values(value=value, updated_at=utcnow())).rowcount
            if not n:
                c.execute(insert(s.kv).values(key=key, value=value, updated_at=utcnow()))

        if conn is not None:
            _do(conn)
        else:
            with self.write() as c:
                _do(c)

    def mark_job_ok(self, job: str) -> None:
        self.set_kv(f"job_ok:{job}", utcnow().isoformat())

    def job_ok_times(self) -> dict[str, datetime]:
        with self.read() as c:
            rows = c.execute(select(s.kv.c.key, s.kv.c.value).where(s.kv.c.key.like("job_ok:%"))).all()
        return {k.split(":", 1)[1]: datetime.fromisoformat(v) for k, v in rows if v}

    # -- inbox (webhooks, sweep) --------------------------------------------------------------
    def enqueue_inbox(self, ids: Iterable[int], source: str = "webhook") -> int:
        """Queue order ids for the inbound worker; an id already waiting is not added twice.

        Returns how many ids were new. Committed (durably) before it returns, so before the receiver answers MALL.

        Group commit: callers that arrive while another caller's transaction is committing wait for it, and
        the next one to get the turn writes everything queued meanwhile in one transaction. Each caller still
        returns only after its own ids are committed, and gets the error when that transaction failed; but
        concurrent deliveries share one commit (one fsync) instead of queueing for one each."""
        unique = sorted(set(int(i) for i in ids))
        if not unique:
            return 0
        mine = _InboxRequest(unique, source)
        with self._inbox_pending_lock:
            self._inbox_pending.append(mine)
        with self._inbox_leader:
            if not mine.done:  # nobody took it along yet: write it, with whatever else is waiting
                with self._inbox_pending_lock:
                    batch, self._inbox_pending = self._inbox_pending, []
                self._write_inbox(batch)
        if mine.error is not None:
            raise mine.error
        return mine.added

    def _write_inbox(self, batch: list[_InboxRequest]) -> None:
        """One transaction for the requests of ``batch``, in order; each is marked done, and failed unless committed."""
        now = utcnow()
        committed = False
        try:
            with self.write() as c:
                wanted = sorted({i for r in batch for i in r.ids})
                seen: set[int] = set()
                for chunk in _chunks(wanted):
                    seen.update(c.execute(_INBOX_WAITING, {"ids": list(chunk)}).scalars())
                rows = []
                for r in batch:
                    new = [i for i in r.ids if i not in seen]
                    seen.update(new)
                    r.added = len(new)
                    rows += [{"mall_order_id": i, "source": r.source, "received_at": now, "attempts": 0} for i in new]
                if rows:
                    c.execute(_INBOX_INSERT, rows)
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

    def due_inbox(self, limit: int, now: datetime | None = None) -> list[int]:
        now = now or utcnow()
        with self.read() as c:
            q = (
                select(s.inbox.c.mall_order_id)
                .where(or_(s.inbox.c.next_attempt_at.is_(None), s.inbox.c.next_attempt_at <= now))
                .order_by(s.inbox.c.received_at, s.inbox.c.mall_order_id)
                .limit(limit)
            )
            return list(c.execute(q).scalars())

    def inbox_depth(self) -> int:
        with self.read() as c:
            return c.execute(select(func.count()).select_from(s.inbox)).scalar_one()

    def inbox_attempts(self, order_id: int) -> int:
        with self.read() as c:
            return c.execute(select(s.inbox.c.attempts).where(s.inbox.c.mall_order_id == order_id)).scalar() or 0

    def inbox_retry(self, order_id: int, at: datetime, error: str) -> None:
        with self.write() as c:
            c.execute(
                update(s.inbox).where(s.inbox.c.mall_order_id == order_id)
                .values(attempts=s.inbox.c.attempts + 1, next_attempt_at=at, last_error=error[:2000])
            )

    def inbox_remove(self, order_id: int, conn: Connection | None = None) -> None:
        if conn is not None:
            conn.execute(delete(s.inbox).where(s.inbox.c.mall_order_id == order_id))
            return
        with self.write() as c:
            c.execute(delete(s.inbox).where(s.inbox.c.mall_order_id == order_id))

    # -- orders -------------------------------------------------------------------------------
    def get_orders(self, ids: Sequence[int]) -> dict[int, OrderRow]:
        out: dict[int, OrderRow] = {}
        ids = list(ids)
        with self.read() as c:
            for chunk in _chunks(ids):
                for r in c.execute(select(s.orders).where(s.orders.c.mall_order_id.in_(chunk))):
                    out[r.mall_order_id] = OrderRow.from_row(r)
        return out

    def get_order(self, order_id: int) -> OrderRow | None:
        return self.get_orders([order_id]).get(order_id)

    def shop_fingerprints(self, ids: Sequence[int]) -> dict[int, str | None]:
        """{order id: fingerprint of the shop row last seen} for the known ones among ``ids`` (two columns
        only: comparing a feed with the ledger must not drag every order's snapshot along)."""
        out: dict[int, str | None] = {}
        with self.read() as c:
            for chunk in _chunks(list(ids)):
                out.update(c.execute(select(s.orders.c.mall_order_id, s.orders.c.shop_fingerprint)
                                     .where(s.orders.c.mall_order_id.in_(chunk))).all())
        return out

    def order_count(self) -> int:
        with self.read() as c:
            return c.execute(select(func.count()).select_from(s.orders)).scalar_one()

    @staticmethod
    def ensure_order(c: Connection, order_id: int, **values: Any) -> None:
        """Insert the order row if missing, then set ``values`` on it."""
        now = utcnow()
        exists = c.execute(select(s.orders.c.mall_order_id).where(s.orders.c.mall_order_id == order_id)).first()
        if exists is None:
            base = {"mall_order_id": order_id, "mdp": False, "test": False, "needs_confirm": False,
                    "created_at": now, "updated_at": now}
            base.update(values)
            c.execute(insert(s.orders).values(**base))
        elif values:
            c.execute(update(s.orders).where(s.orders.c.mall_order_id == order_id).values(updated_at=now, **values))

    def set_order(self, order_id: int, conn: Connection | None = None, **values: Any) -> None:
        if conn is not None:
            self.ensure_order(conn, order_id, **values)
            return
        with self.write() as c:
            self.ensure_order(c, order_id, **values)

    # -- changes ------------------------------------------------------------------------------
    def insert_change(
        self, c: Connection, *, key: str, order_id: int, origin: str, kind: str, state: str = "pending",
        shop_status: str | None = None, target_status: str | None = None, payload: dict | None = None,
        reason: str | None = None,
    ) -> int | None:
        """Insert a change unless its key exists. Returns the new id, or None when it existed."""
        if c.execute(select(s.changes.c.id).where(s.changes.c.key == key)).first() is not None:
            return None
        now = utcnow()
        res = c.execute(
            insert(s.changes).values(
                key=key, mall_order_id=order_id, origin=origin, kind=kind, shop_status=shop_status,
                target_status=target_status, payload=json.dumps(payload or {}, ensure_ascii=False, default=str),
                state=state, reason=reason, attempts=0, created_at=now, updated_at=now,
                done_at=now if state in ("done", "skipped") else None,
            )
        )
        return int(res.inserted_primary_key[0])

    def get_change_by_key(self, c: Connection, key: str) -> ChangeRow | None:
        r = c.execute(select(s.changes).where(s.changes.c.key == key)).first()
        return ChangeRow.from_row(r) if r else None

    def get_change(self, change_id: int) -> ChangeRow | None:
        with self.read() as c:
            r = c.execute(select(s.changes).where(s.changes.c.id == change_id)).first()
        return ChangeRow.from_row(r) if r else None

    def due_changes(self, origin: str, limit: int, *, include_not_due: bool = False, now: datetime | None = None,
                    after_id: int = 0) -> list[ChangeRow]:
        """Open changes to work on, oldest first: pending, sending (interrupted) and retries that are due."""
        now = now or utcnow()
        cond = [s.changes.c.origin == origin, s.changes.c.id > after_id]
        if include_not_due:
            cond.append(s.changes.c.state.in_(OPEN_STATES))
        else:
            cond.append(
                or_(
                    s.changes.c.state.in_(("pending", "sending")),
                    and_(s.changes.c.state == "retry", s.changes.c.next_attempt_at <= now),
                )
            )
        with self.read() as c:
            q = select(s.changes).where(*cond).order_by(s.changes.c.id).limit(limit)
            return [ChangeRow.from_row(r) for r in c.execute(q)]

    def update_change(self, change_id: int, conn: Connection | None = None, **values: Any) -> None:
        values.setdefault("updated_at", utcnow())
        if "payload" in values and not isinstance(values["payload"], str):
            values["payload"] = json.dumps(values["payload"], ensure_ascii=False, default=str)
        if values.get("state") in ("done", "skipped", "failed") and "done_at" not in values:
            values["done_at"] = utcnow()
        if conn is not None:
            conn.execute(update(s.changes).where(s.changes.c.id == change_id).values(**values))
            return
        with self.write() as c:
            c.execute(update(s.changes).where(s.changes.c.id == change_id).values(**values))

    def claim_for_sending(self, change_id: int, expected_states: Sequence[str]) -> bool:
        """Mark a change ``sending`` (attempts + 1) if it is still in one of ``expected_states``.

        Committed before the PUT, so a crash after it is detected as an unknown outcome."""
        with self.write() as c:
            n = c.execute(
                update(s.changes)
                .where(s.changes.c.id == change_id, s.changes.c.state.in_(tuple(expected_states)))
                .values(state="sending", attempts=s.changes.c.attempts + 1, updated_at=utcnow())
            ).rowcount
        return n == 1

    def list_changes(self, *, states: Sequence[str] | None = None, order_id: int | None = None,
                     limit: int | None = None) -> list[ChangeRow]:
        q = select(s.changes)
        if states:
            q = q.where(s.changes.c.state.in_(tuple(states)))
        if order_id is not None:
            q = q.where(s.changes.c.mall_order_id == order_id)
        q = q.order_by(s.changes.c.id)
        if limit:
            q = q.limit(limit)
        with self.read() as c:
            return [ChangeRow.from_row(r) for r in c.execute(q)]

    def count_changes(self, states: Sequence[str] | None = None) -> dict[str, int]:
        """Changes per state; with ``states``, only those (an index range each, not a scan of the whole table)."""
        q = select(s.changes.c.state, func.count()).group_by(s.changes.c.state)
        if states is not None:
            q = q.where(s.changes.c.state.in_(tuple(states)))
        with self.read() as c:
            rows = c.execute(q).all()
        return {state: n for state, n in rows}

    # -- bulk forms (one statement for many rows; used by the sync engines' batches) ------------
    @staticmethod
    def existing_order_ids(c: Connection, ids: Sequence[int]) -> set[int]:
        out: set[int] = set()
        for chunk in _chunks(list(ids)):
            out.update(c.execute(select(s.orders.c.mall_order_id).where(s.orders.c.mall_order_id.in_(chunk))).scalars())
        return out

    @staticmethod
    def insert_orders(c: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert new order rows (``mall_order_id`` plus values); one executemany per set of columns."""
        now = utcnow()
        full = [{"mdp": False, "test": False, "needs_confirm": False, "created_at": now, "updated_at": now, **r}
                for r in rows]
        for _, group in _by_columns(full):
            c.execute(insert(s.orders), group)

    @staticmethod
    def update_orders(c: Connection, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Set values on existing orders: ``[(order_id, {column: value})]``, one executemany per set of columns."""
        now = utcnow()
        rows = [{"updated_at": now, **values, "_id": oid} for oid, values in updates]
        _update_many(c, s.orders, s.orders.c.mall_order_id, rows)

    @staticmethod
    def changes_by_keys(c: Connection, keys: Sequence[str]) -> dict[str, ChangeRow]:
        out: dict[str, ChangeRow] = {}
        for chunk in _chunks(list(keys)):
            for r in c.execute(select(s.changes).where(s.changes.c.key.in_(chunk))):
                out[r.key] = ChangeRow.from_row(r)
        return out

    @staticmethod
    def insert_changes(c: Connection, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
        """Insert changes whose keys are known not to exist (checked in the same transaction). Each row has
        ``key, order_id, origin, kind`` and optionally ``state, shop_status, target_status, payload, reason``.
        Returns {key: new id}."""
        if not rows:
            return {}
        now = utcnow()
        values = []
        for r in rows:
            state = r.get("state", "pending")
            values.append({
                "key": r["key"], "mall_order_id": r["order_id"], "origin": r["origin"], "kind": r["kind"],
                "shop_status": r.get("shop_status"), "target_status": r.get("target_status"),
                "payload": json.dumps(r.get("payload") or {}, ensure_ascii=False, default=str), "state": state,
                "reason": r.get("reason"), "attempts": 0, "created_at": now, "updated_at": now,
                "done_at": now if state in ("done", "skipped") else None,
            })
        c.execute(insert(s.changes), values)
        ids: dict[str, int] = {}
        for chunk in _chunks([v["key"] for v in values]):
            ids.update(c.execute(select(s.changes.c.key, s.changes.c.id).where(s.changes.c.key.in_(chunk))).all())
        return ids

    @staticmethod
    def update_changes(c: Connection, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """``update_change`` for many: ``[(change_id, {column: value})]``, one executemany per set of columns."""
        now = utcnow()
        rows = []
        for cid, values in updates:
            values = {"updated_at": now, **values}
            if "payload" in values and not isinstance(values["payload"], str):
                values["payload"] = json.dumps(values["payload"], ensure_ascii=False, default=str)
            if values.get("state") in ("done", "skipped", "failed") and "done_at" not in values:
                values["done_at"] = now
            rows.append({**values, "_id": cid})
        _update_many(c, s.changes, s.changes.c.id, rows)

    @staticmethod
    def add_events(c: Connection, events: Sequence[tuple[int, str, str]]) -> None:
        """``add_event`` for many: ``[(order_id, kind, message)]`` in one executemany."""
        if events:
            now = utcnow()
            c.execute(insert(s.events), [{"mall_order_id": oid, "at": now, "kind": kind, "message": message[:4000]}
                                         for oid, kind, message in events])

    def claim_many(self, changes: Sequence[ChangeRow]) -> set[int]:
        """``claim_for_sending`` for a batch, in one transaction (one commit) before any of their PUTs.

        A change is claimed only if it is still in the state it was read in. Returns the claimed ids. A crash
        before a claimed change's PUT leaves it ``sending``, so it is re-read from MALL like any interrupted
        push; ``release_claims`` hands back the ones a pass did not get to."""
        if not changes:
            return set()
        with self.write() as c:
            current: dict[int, str] = {}
            for chunk in _chunks([ch.id for ch in changes]):
                current.update(c.execute(select(s.changes.c.id, s.changes.c.state)
                                         .where(s.changes.c.id.in_(chunk))).all())
            claim = [ch for ch in changes if current.get(ch.id) == ch.state]
            if claim:
                now = utcnow()
                c.execute(update(s.changes).where(s.changes.c.id == bindparam("_id"))
                          .values(state="sending", attempts=s.changes.c.attempts + 1, updated_at=now),
                          [{"_id": ch.id} for ch in claim])
        return {ch.id for ch in claim}

    def release_claims(self, changes: Sequence[ChangeRow]) -> None:
        """Undo ``claim_many`` for changes whose PUT was never sent: back to the state and attempts they had."""
        if not changes:
            return
        with self.write() as c:
            c.execute(update(s.changes)
                      .where(s.changes.c.id == bindparam("_id"), s.changes.c.state == "sending")
                      .values(state=bindparam("_state"), attempts=bindparam("_attempts"), updated_at=utcnow()),
                      [{"_id": ch.id, "_state": ch.state, "_attempts": ch.attempts} for ch in changes])

    # -- handoffs (outbox batches) ------------------------------------------------------------
    def create_handoff(self, kind: str, change_ids: Sequence[int], *, stamp: str | None = None) -> tuple[int, str]:
        """Record a batch and its final name before anything is written (state ``sending``).

        ``stamp`` is the name's time part (connector.timefmt.file_stamp: [shop] timezone, zone named)."""
        now = utcnow()
        with self.write() as c:
            res = c.execute(insert(s.handoffs).values(name=f"tmp-{kind}-{now.timestamp()}", kind=kind,
                                                      state="sending", created_at=now))
            hid = int(res.inserted_primary_key[0])
            name = f"{kind}-{stamp or now.strftime('%Y%m%dT%H%M%SZ')}-{hid:06d}"
            c.execute(update(s.handoffs).where(s.handoffs.c.id == hid).values(name=name))
            for chunk in _chunks(list(change_ids)):
                c.execute(update(s.changes).where(s.changes.c.id.in_(chunk))
                          .values(handoff_id=hid, state="sending", updated_at=now))
        return hid, name

    def set_handoff_state(self, handoff_id: int, state: str) -> None:
        with self.write() as c:
            c.execute(update(s.handoffs).where(s.handoffs.c.id == handoff_id).values(state=state))

    def open_handoffs(self) -> list[tuple[int, str, str, str]]:
        """(id, name, kind, state) of batches not yet done, oldest first."""
        with self.read() as c:
            # IN (the open states), not != "done": that can use ix_handoffs_state instead of reading every
            # batch ever handed over, and it runs on every drain and after every job.
            q = select(s.handoffs.c.id, s.handoffs.c.name, s.handoffs.c.kind, s.handoffs.c.state).where(
                s.handoffs.c.state.in_(OPEN_HANDOFF_STATES)).order_by(s.handoffs.c.id)
            return [tuple(r) for r in c.execute(q)]

    def handoff_changes(self, handoff_id: int) -> list[ChangeRow]:
        with self.read() as c:
            q = select(s.changes).where(s.changes.c.handoff_id == handoff_id).order_by(s.changes.c.id)
            return [ChangeRow.from_row(r) for r in c.execute(q)]

    # -- events (per-order history) -----------------------------------------------------------
    @staticmethod
    def add_event(c: Connection, order_id: int, kind: str, message: str) -> None:
        c.execute(insert(s.events).values(mall_order_id=order_id, at=utcnow(), kind=kind, message=message[:4000]))

    def events_for(self, order_id: int) -> list[tuple[datetime, str, str]]:
        with self.read() as c:
            q = select(s.events.c.at, s.events.c.kind, s.events.c.message).where(
                s.events.c.mall_order_id == order_id).order_by(s.events.c.id)
            return [tuple(r) for r in c.execute(q)]

    # -- needs-action items -------------------------------------------------------------------
    def add_action(self, c: Connection, *, key: str, order_id: int | None, kind: str, message: str) -> int | None:
        """Open a needs-action item unless one with this key exists (open or done). Returns the new id."""
        if c.execute(select(s.actions.c.id).where(s.actions.c.key == key)).first() is not None:
            return None
        res = c.execute(insert(s.actions).values(key=key, mall_order_id=order_id, kind=kind, message=message,
                                                 created_at=utcnow()))
        return int(res.inserted_primary_key[0])

    def open_actions(self) -> list[dict]:
        with self.read() as c:
            q = select(s.actions).where(s.actions.c.done_at.is_(None)).order_by(s.actions.c.id)
            return [dict(r._mapping) for r in c.execute(q)]

    def unalerted_actions(self) -> list[dict]:
        with self.read() as c:
            q = select(s.actions).where(s.actions.c.done_at.is_(None), s.actions.c.alerted_at.is_(None)).order_by(s.actions.c.id)
            return [dict(r._mapping) for r in c.execute(q)]

    def mark_action_alerted(self, action_id: int) -> None:
        with self.write() as c:
            c.execute(update(s.actions).where(s.actions.c.id == action_id).values(alerted_at=utcnow()))

    def action_done(self, action_id: int, note: str | None = None) -> bool:
        with self.write() as c:
            n = c.execute(update(s.actions).where(s.actions.c.id == action_id, s.actions.c.done_at.is_(None))
                          .values(done_at=utcnow(), done_note=note)).rowcount
        return n == 1

    def close_actions(self, order_id: int, kind: str, note: str) -> int:
        """Close open items of one kind for an order (the condition cleared by itself)."""
        with self.write() as c:
            return c.execute(update(s.actions).where(s.actions.c.mall_order_id == order_id, s.actions.c.kind == kind,
                                                     s.actions.c.done_at.is_(None))
                             .values(done_at=utcnow(), done_note=note)).rowcount

    # -- health -------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Cheap numbers for /readyz and metrics."""
        with self.read() as c:
            failed = c.execute(select(func.count()).select_from(s.changes).where(s.changes.c.state == "failed")).scalar_one()
            depth = c.execute(select(func.count()).select_from(s.inbox)).scalar_one()
            waiting = c.execute(select(func.count()).select_from(s.changes).where(s.changes.c.state.in_(OPEN_STATES))).scalar_one()
            actions = c.execute(select(func.count()).select_from(s.actions).where(s.actions.c.done_at.is_(None))).scalar_one()
        return {"failed_changes": failed, "inbox_depth": depth, "open_changes": waiting, "open_actions": actions,
                "jobs": {k: v.isoformat() for k, v in self.job_ok_times().items()}}


def _by_columns(rows: Sequence[dict[str, Any]]) -> Iterator[tuple[tuple[str, ...], list[dict[str, Any]]]]:
    """Rows grouped by their set of columns (an executemany needs the same columns in every row)."""
    keyed = sorted(((tuple(sorted(r)), r) for r in rows), key=lambda kr: kr[0])
    for cols, group in groupby(keyed, key=lambda kr: kr[0]):
        yield cols, [r for _, r in group]


def _update_many(c: Connection, table, key_column, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE ``table`` SET ... WHERE key = :_id for each row, one executemany per set of columns."""
    for cols, group in _by_columns(rows):
        names = [col for col in cols if col != "_id"]
        stmt = update(table).where(key_column == bindparam("_id")).values(
            {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in names})
        c.execute(stmt, [{"_id": r["_id"], **{f"v_{n}": r[n] for n in names}} for r in group])


def _describe_db_error(e: SQLAlchemyError, engine: Engine) -> str:
    where = engine.url.database or str(engine.url.render_as_string(hide_password=True))
    msg = str(getattr(e, "orig", e))
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
