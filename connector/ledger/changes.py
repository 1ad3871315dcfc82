"""Changes: one row per fact to pass on (shop → MALL status, MALL → shop order or change), keyed once."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from connector.ledger import schema as s
from connector.ledger import transitions
from connector.ledger.dialect import for_claim
from connector.ledger.rows import ChangeRow, FailedItem, chunks, dumps, utcnow
from connector.ledger.types import FINISHED_CHANGE_STATES, OPEN_CHANGE_STATES, ChangeState, ItemKind, Origin

_OPEN = [x.value for x in OPEN_CHANGE_STATES]


def _row_values(r: dict[str, Any], now: datetime) -> dict[str, Any]:
    state = ChangeState(r.get("state", ChangeState.PENDING))
    return {
        "key": r["key"], "mall_order_id": r["order_id"], "origin": str(r["origin"]), "kind": str(r["kind"]),
        "shop_status": r.get("shop_status"), "target_status": r.get("target_status"),
        "payload": dumps(r.get("payload")), "state": state.value, "reason": r.get("reason"), "attempts": 0,
        "created_at": now, "updated_at": now, "done_at": now if state in FINISHED_CHANGE_STATES else None,
    }


class ChangesRepo:
    def __init__(self, ledger):
        self._ledger = ledger

    # -- writes (in the caller's transaction) -----------------------------------------------------
    @staticmethod
    def insert(c: Connection, *, key: str, order_id: int, origin: str, kind: str, state: str = ChangeState.PENDING,
               shop_status: str | None = None, target_status: str | None = None, payload: dict | None = None,
               reason: str | None = None) -> int | None:
        """Insert a change unless its key exists. Returns the new id, or None when it existed."""
        if c.execute(select(s.changes.c.id).where(s.changes.c.key == key)).first() is not None:
            return None
        res = c.execute(insert(s.changes).values(**_row_values(
            {"key": key, "order_id": order_id, "origin": origin, "kind": kind, "state": state,
             "shop_status": shop_status, "target_status": target_status, "payload": payload, "reason": reason},
            utcnow())))
        return int(res.inserted_primary_key[0])

    @staticmethod
    def insert_many(c: Connection, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
        """Insert changes whose keys are known not to exist (checked in the same transaction). Each row has
        ``key, order_id, origin, kind`` and optionally ``state, shop_status, target_status, payload, reason``.
        Returns {key: new id}."""
        if not rows:
            return {}
        now = utcnow()
        values = [_row_values(r, now) for r in rows]
        c.execute(insert(s.changes), values)
        ids: dict[str, int] = {}
        for chunk in chunks([v["key"] for v in values]):
            ids.update(c.execute(select(s.changes.c.key, s.changes.c.id).where(s.changes.c.key.in_(chunk))).all())
        return ids

    # The one way a change's state moves (engines and `ledger retry/skip` alike): see transitions.py.
    move = staticmethod(transitions.move)
    move_many = staticmethod(transitions.move_many)

    @staticmethod
    def set_payload(c: Connection, change: ChangeRow, payload: dict) -> None:
        """New data from the shop for a change still open (its state does not move)."""
        transitions.move(c, change.id, change.state, change.state, payload=payload)

    @staticmethod
    def claim(c: Connection, changes: Sequence[ChangeRow]) -> set[int]:
        """Mark changes ``sending`` (attempts + 1) if still in the state they were read in; commit before the PUTs.

        A crash after the commit leaves them ``sending``, so each is re-read from MALL like any interrupted push;
        ``release`` hands back the ones a pass did not get to. Returns the claimed ids."""
        if not changes:
            return set()
        current: dict[int, str] = {}
        for chunk in chunks([ch.id for ch in changes]):
            # FOR UPDATE SKIP LOCKED on PostgreSQL: a row another replica is claiming is left to it
            current.update(c.execute(for_claim(select(s.changes.c.id, s.changes.c.state)
                                               .where(s.changes.c.id.in_(chunk)), c)).all())
        claim = [ch for ch in changes if current.get(ch.id) == ch.state]
        for ch in claim:
            transitions.check(ch.state, ChangeState.SENDING)
        if claim:
            c.execute(update(s.changes).where(s.changes.c.id == bindparam("_id"))
                      .values(state=ChangeState.SENDING.value, attempts=s.changes.c.attempts + 1, updated_at=utcnow()),
                      [{"_id": ch.id} for ch in claim])
        return {ch.id for ch in claim}

    @staticmethod
    def release(c: Connection, changes: Sequence[ChangeRow]) -> None:
        """Undo ``claim`` for changes whose PUT was never sent: back to the state and attempts they had."""
        if changes:
            c.execute(update(s.changes)
                      .where(s.changes.c.id == bindparam("_id"), s.changes.c.state == ChangeState.SENDING.value)
                      .values(state=bindparam("_state"), attempts=bindparam("_attempts"), updated_at=utcnow()),
                      [{"_id": ch.id, "_state": ch.state, "_attempts": ch.attempts} for ch in changes])

    # -- reads --------------------------------------------------------------------------------
    @staticmethod
    def by_key(c: Connection, key: str) -> ChangeRow | None:
        r = c.execute(select(s.changes).where(s.changes.c.key == key)).first()
        return ChangeRow.from_row(r) if r else None

    @staticmethod
    def by_keys(c: Connection, keys: Sequence[str]) -> dict[str, ChangeRow]:
        out: dict[str, ChangeRow] = {}
        for chunk in chunks(list(keys)):
            for r in c.execute(select(s.changes).where(s.changes.c.key.in_(chunk))):
                out[r.key] = ChangeRow.from_row(r)
        return out

    def get(self, change_id: int) -> ChangeRow | None:
        with self._ledger.read() as c:
            r = c.execute(select(s.changes).where(s.changes.c.id == change_id)).first()
        return ChangeRow.from_row(r) if r else None

    def due(self, origin: str, limit: int, *, include_not_due: bool = False, now: datetime | None = None,
            after_id: int = 0, account: str | None = None) -> list[ChangeRow]:
        """Open changes to work on, oldest first: pending, sending (interrupted) and retries that are due;
        ``account``: only that MALL account's (issue 18: one account's pass never waits on another's)."""
        now = now or utcnow()
        ch = s.changes.c
        cond = [ch.origin == str(origin), ch.id > after_id]
        if account is not None:
            cond.append(ch.account == account)
        if include_not_due:
            cond.append(ch.state.in_(_OPEN))
        else:
            cond.append(or_(ch.state.in_((ChangeState.PENDING.value, ChangeState.SENDING.value)),
                            and_(ch.state == ChangeState.RETRY.value, ch.next_attempt_at <= now)))
        with self._ledger.read() as c:
            q = select(s.changes).where(*cond).order_by(ch.id).limit(limit)
            return [ChangeRow.from_row(r) for r in c.execute(q)]

    def list(self, *, states: Sequence[str] | None = None, order_id: int | None = None, origin: str | None = None,
             limit: int | None = None) -> list[ChangeRow]:
        q = select(s.changes)
        if states:
            q = q.where(s.changes.c.state.in_([str(x) for x in states]))
        if order_id is not None:
            q = q.where(s.changes.c.mall_order_id == order_id)
        if origin is not None:
            q = q.where(s.changes.c.origin == str(origin))
        q = q.order_by(s.changes.c.id)
        if limit:
            q = q.limit(limit)
        with self._ledger.read() as c:
            return [ChangeRow.from_row(r) for r in c.execute(q)]

    def count(self, states: Sequence[str] | None = None) -> dict[str, int]:
        """Changes per state; with ``states``, only those (an index range each, not a scan of the whole table)."""
        q = select(s.changes.c.state, func.count()).group_by(s.changes.c.state)
        if states is not None:
            q = q.where(s.changes.c.state.in_([str(x) for x in states]))
        with self._ledger.read() as c:
            rows = c.execute(q).all()
        return {state: n for state, n in rows}

    def oldest_open(self, origin: str, order_ids: Sequence[int]) -> dict[int, int]:
        """{order id: id of its oldest open change of ``origin``} (the ordering rule "older change first")."""
        out: dict[int, int] = {}
        ch = s.changes.c
        with self._ledger.read() as c:
            for chunk in chunks(sorted(set(order_ids))):
                out.update(c.execute(select(ch.mall_order_id, func.min(ch.id))
                                     .where(ch.origin == str(origin), ch.state.in_(_OPEN), ch.mall_order_id.in_(chunk))
                                     .group_by(ch.mall_order_id)).all())
        return out

    @staticmethod
    def failed_with_target(c: Connection, origin: str, order_ids: Sequence[int]) -> list[ChangeRow]:
        """Failed changes with a target status of the given orders (given another go when new data arrives)."""
        out: list[ChangeRow] = []
        ch = s.changes.c
        for chunk in chunks(list(order_ids)):
            out += [ChangeRow.from_row(r) for r in c.execute(select(s.changes).where(
                ch.origin == str(origin), ch.state == ChangeState.FAILED.value, ch.target_status.is_not(None),
                ch.mall_order_id.in_(chunk)))]
        return out

    def of_handoff(self, handoff_id: int) -> list[ChangeRow]:
        with self._ledger.read() as c:
            q = select(s.changes).where(s.changes.c.handoff_id == handoff_id).order_by(s.changes.c.id)
            return [ChangeRow.from_row(r) for r in c.execute(q)]

    def open_of_order(self, order_id: int, origin: str) -> int:
        """How many open changes of ``origin`` the order has."""
        ch = s.changes.c
        with self._ledger.read() as c:
            return c.execute(select(func.count()).select_from(s.changes).where(
                ch.mall_order_id == order_id, ch.origin == str(origin), ch.state.in_(_OPEN))).scalar_one()

    def failed(self) -> list[FailedItem]:
        out = []
        for ch in self.list(states=(ChangeState.FAILED,)):
            if ch.origin == Origin.SHOP:
                what = f"change: shop {ch.shop_status!r} → MALL {ch.target_status or '-'}"
            else:
                what = f"change: MALL {ch.kind} {ch.target_status or ''} → shop".replace("  ", " ")
            out.append(FailedItem(ItemKind.CHANGE, ch.id, (ch.mall_order_id,), what, ch.attempts,
                                  ch.reason or ch.last_error or "", ch.error_class, ch.done_at))
        return out
