"""Typed rows the repositories return, and the small helpers they share (no queries of their own)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import groupby
from typing import Any, Iterator, Sequence

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection

from connector.ledger.types import ItemKind

IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's variable limit


def utcnow() -> datetime:
    """Naive UTC (the ledger stores naive UTC datetimes, portable across backends)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def chunks(seq: Sequence, n: int = IN_CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def dumps(payload: Any) -> str:
    return json.dumps(payload or {}, ensure_ascii=False, default=str)


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
    error_class: str | None = None
    outcome: str | None = None  # connector.sync.policy.Kind of the last failure
    refused: bool | None = None  # MALL refused the last PUT outright (it certainly did not apply it)
    account: str = "default"  # issue 18: the MALL account of its order

    @classmethod
    def from_row(cls, r: Any) -> "ChangeRow":
        m = r._mapping
        return cls(
            id=m["id"], key=m["key"], mall_order_id=m["mall_order_id"], origin=m["origin"], kind=m["kind"],
            shop_status=m["shop_status"], target_status=m["target_status"],
            payload=json.loads(m["payload"]) if m["payload"] else {}, state=m["state"], reason=m["reason"],
            attempts=m["attempts"], next_attempt_at=m["next_attempt_at"], last_error=m["last_error"],
            handoff_id=m["handoff_id"], created_at=m["created_at"], updated_at=m["updated_at"], done_at=m["done_at"],
            error_class=m.get("error_class"), outcome=m.get("outcome"), refused=m.get("refused"),
            account=m.get("account", "default"),
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
    account: str = "default"  # issue 18: the MALL account the order belongs to

    @classmethod
    def from_row(cls, r: Any) -> "OrderRow":
        m = r._mapping
        return cls(**{f: m[f] for f in cls.__dataclass_fields__ if f in m})


@dataclass(frozen=True)
class HandoffRow:
    id: int
    name: str
    kind: str
    state: str
    attempts: int = 0
    next_attempt_at: datetime | None = None
    resume_state: str | None = None

    # The first release returned (id, name, kind, state) tuples from open_handoffs: keep unpacking working.
    def __iter__(self):
        return iter((self.id, self.name, self.kind, self.state))

    def __getitem__(self, i):
        return (self.id, self.name, self.kind, self.state)[i]

    @classmethod
    def from_row(cls, r: Any) -> "HandoffRow":
        m = r._mapping
        return cls(id=m["id"], name=m["name"], kind=m["kind"], state=m["state"], attempts=m["attempts"] or 0,
                   next_attempt_at=m["next_attempt_at"], resume_state=m["resume_state"])


@dataclass(frozen=True)
class FailedItem:
    """One quarantined item, whatever it is: what `ledger list --state failed` shows and `ledger retry` takes."""

    kind: ItemKind
    id: int
    mall_order_ids: tuple[int, ...]
    what: str  # what failed, e.g. "reading the order from MALL"
    attempts: int
    reason: str
    error_class: str | None
    failed_at: datetime | None

    @property
    def ref(self) -> str:
        from connector.ledger.types import item_ref

        return item_ref(self.kind, self.id)


def by_columns(rows: Sequence[dict[str, Any]]) -> Iterator[tuple[tuple[str, ...], list[dict[str, Any]]]]:
    """Rows grouped by their set of columns (an executemany needs the same columns in every row)."""
    keyed = sorted(((tuple(sorted(r)), r) for r in rows), key=lambda kr: kr[0])
    for cols, group in groupby(keyed, key=lambda kr: kr[0]):
        yield cols, [r for _, r in group]


def update_many(c: Connection, table, key_column, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE ``table`` SET ... WHERE key = :_id for each row, one executemany per set of columns."""
    for cols, group in by_columns(rows):
        names = [col for col in cols if col != "_id"]
        stmt = update(table).where(key_column == bindparam("_id")).values(
            {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in names})
        c.execute(stmt, [{"_id": r["_id"], **{f"v_{n}": r[n] for n in names}} for r in group])
