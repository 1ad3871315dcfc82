"""The one state-transition function of a change, used by the engines and by `ledger retry/skip`.

A move is checked against ``ALLOWED`` and applied only if the change is still in the state it was
read in (``WHERE state = :from``), so two processes cannot both move it. Finishing states set
``done_at``; reopening clears it and the failure record.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection

from connector.ledger import schema as s
from connector.ledger.rows import dumps, utcnow
from connector.ledger.types import FINISHED_CHANGE_STATES, ChangeState as C

ALLOWED: dict[C, frozenset[C]] = {
    C.PENDING: frozenset({C.PENDING, C.SENDING, C.RETRY, C.DONE, C.SKIPPED, C.FAILED}),
    C.SENDING: frozenset({C.SENDING, C.PENDING, C.RETRY, C.DONE, C.SKIPPED, C.FAILED}),
    C.RETRY: frozenset({C.RETRY, C.PENDING, C.SENDING, C.DONE, C.SKIPPED, C.FAILED}),
    # A quarantined change comes back only by new data from the shop or a human (`ledger retry`), or is skipped.
    C.FAILED: frozenset({C.PENDING, C.SKIPPED}),
    C.SKIPPED: frozenset({C.PENDING}),  # `ledger retry` of a skipped change
    C.DONE: frozenset(),  # done is done: never sent again
}

REOPEN_CLEARS = {"next_attempt_at": None, "reason": None, "done_at": None, "error_class": None, "outcome": None,
                 "refused": None}


class IllegalTransition(ValueError):
    """A move the state machine does not allow (e.g. a done change back to pending)."""


def check(frm: str, to: str) -> None:
    if C(to) not in ALLOWED[C(frm)]:
        raise IllegalTransition(f"a change cannot go from {frm} to {to}")


def _values(frm: str, to: str, values: dict[str, Any], now) -> dict[str, Any]:
    check(frm, to)
    out = dict(values)
    if C(frm) in FINISHED_CHANGE_STATES and C(to) not in FINISHED_CHANGE_STATES:
        out = {**REOPEN_CLEARS, **out}
    if "payload" in out and not isinstance(out["payload"], str):
        out["payload"] = dumps(out["payload"])
    if C(to) in FINISHED_CHANGE_STATES:
        out.setdefault("done_at", now)
    out["state"] = C(to).value
    out["updated_at"] = now
    return out


def move(c: Connection, change_id: int, frm: str, to: str, **values: Any) -> bool:
    """Move one change from ``frm`` to ``to`` (setting ``values``). False when it was no longer in ``frm``."""
    v = _values(frm, to, values, utcnow())
    n = c.execute(update(s.changes).where(s.changes.c.id == change_id, s.changes.c.state == C(frm).value)
                  .values(**v)).rowcount
    return n == 1


def move_many(c: Connection, moves: Sequence[tuple[int, str, str, dict[str, Any]]]) -> None:
    """``move`` for many: ``[(change_id, from, to, values)]``, one executemany per set of columns."""
    now = utcnow()
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for cid, frm, to, values in moves:
        v = _values(frm, to, values, now)
        groups.setdefault(tuple(sorted(v)), []).append({"_id": cid, "_from": C(frm).value, **v})
    for cols, rows in groups.items():
        stmt = update(s.changes).where(s.changes.c.id == bindparam("_id"), s.changes.c.state == bindparam("_from")) \
            .values({name: bindparam(f"v_{name}", type_=s.changes.c[name].type) for name in cols})
        c.execute(stmt, [{"_id": r["_id"], "_from": r["_from"], **{f"v_{n}": r[n] for n in cols}} for r in rows])
