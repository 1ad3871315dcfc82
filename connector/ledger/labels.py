"""Ledger queries for MALL Delivery labels and serial numbers (tables ``mdp_parcels``, ``mdp_labels``, ``mdp_serials``).

One focused repository, ``ledger.mdp`` (``MdpRepo``), like the core's: reads open their own transaction, writes
take the caller's connection ``c`` from ``with ledger.write() as c:``; never a transaction across an HTTP call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, and_, func, select

from connector.ledger import schema as s
from connector.ledger.rows import utcnow
from connector.ledger.types import ChangeState, LabelState, Origin, SerialState

CHUNK = 500


@dataclass(frozen=True)
class LabelRow:
    id: int
    mall_order_id: int
    parcel_count: int
    state: str  # pending | sending | done | refused | failed
    batch: str | None
    labels_type: str | None
    barcodes: list[str]
    file: str | None
    reason: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, r: Any) -> "LabelRow":
        m = dict(r._mapping)
        m["barcodes"] = json.loads(m["barcodes"]) if m["barcodes"] else []
        return cls(**{f: m[f] for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class LabelCandidate:
    """An MDP order the connector pushed to shipping, with the labels it has and the parcel count it needs."""

    mall_order_id: int
    mall_status: str | None
    parcel_count: int  # the shop's, 1 when the feed never said
    latest: LabelRow | None  # the newest label row
    last_done: LabelRow | None  # the newest label set MALL made


@dataclass(frozen=True)
class SerialRow:
    mall_order_id: int
    item_id: str
    wanted: list[str]
    sent: list[str] | None
    state: str  # pending | done | failed
    reason: str | None
    attempts: int


# -- parcel counts -------------------------------------------------------------------------------------------------

class MdpRepo:
    """Parcel counts, label sets and serial numbers of MALL Delivery orders."""

    def __init__(self, ledger):
        self._ledger = ledger

    def parcel_count_changes(self, counts: dict[int, int | None]) -> list[tuple[int, int | None, int]]:
        """``(order, before, now)`` for the feed's parcel counts that differ from the ledger's (a read: an unchanged
        feed writes nothing). None means the feed says nothing (1 parcel): only for an order that had a count."""
        changed: list[tuple[int, int | None, int]] = []
        ids = [oid for oid, n in counts.items() if n is not None]
        with self._ledger.read() as c:
            if len(ids) < len(counts):  # rows without a count only matter for orders that had one
                if c.execute(select(s.mdp_parcels.c.mall_order_id).limit(1)).first() is not None:
                    ids = list(counts)
            for i in range(0, len(ids), CHUNK):
                chunk = ids[i:i + CHUNK]
                known = dict(c.execute(select(s.mdp_parcels.c.mall_order_id, s.mdp_parcels.c.parcel_count)
                                       .where(s.mdp_parcels.c.mall_order_id.in_(chunk))).all())
                for oid in chunk:
                    want = counts[oid]
                    if want is None:
                        if oid not in known:
                            continue
                        want = 1
                    if known.get(oid) != want:
                        changed.append((oid, known.get(oid), want))
        return changed

    @staticmethod
    def store_parcel_counts(c: Connection, changed: Sequence[tuple[int, int | None, int]]) -> None:
        """Write what ``parcel_count_changes`` found, in the caller's transaction."""
        now = utcnow()
        inserts = [{"mall_order_id": oid, "parcel_count": n, "seen_at": now} for oid, old, n in changed if old is None]
        if inserts:
            c.execute(s.mdp_parcels.insert(), inserts)
        for oid, old, n in changed:
            if old is not None:
                c.execute(s.mdp_parcels.update().where(s.mdp_parcels.c.mall_order_id == oid)
                          .values(parcel_count=n, seen_at=now))

    # -- labels ----------------------------------------------------------------------------------------------------

    def label_candidates(self, order_ids: Iterable[int] | None = None) -> list[LabelCandidate]:
        """MDP orders the connector pushed to shipping (a done shop change to shipping) that MALL has in shipping
        or shipped, with their label rows and wanted parcel count. ``order_ids`` narrows it down."""
        o, ch, p, lb = s.orders, s.changes, s.mdp_parcels, s.mdp_labels
        pushed = (select(ch.c.mall_order_id)
                  .where(ch.c.origin == Origin.SHOP.value, ch.c.state == ChangeState.DONE.value,
                         ch.c.target_status == "shipping").distinct().subquery())
        q = (select(o.c.mall_order_id, o.c.mall_status, func.coalesce(p.c.parcel_count, 1).label("parcel_count"))
             .join(pushed, pushed.c.mall_order_id == o.c.mall_order_id)
             .outerjoin(p, p.c.mall_order_id == o.c.mall_order_id)
             .where(o.c.mdp.is_(True), o.c.mall_status.in_(("shipping", "shipped"))))
        if order_ids is not None:
            q = q.where(o.c.mall_order_id.in_(list(order_ids)))
        with self._ledger.read() as c:
            rows = c.execute(q).all()
            if not rows:
                return []
            ids = [r.mall_order_id for r in rows]
            by_order: dict[int, list[LabelRow]] = {}
            for i in range(0, len(ids), CHUNK):
                for r in c.execute(select(lb).where(lb.c.mall_order_id.in_(ids[i:i + CHUNK])).order_by(lb.c.id)):
                    by_order.setdefault(r.mall_order_id, []).append(LabelRow.from_row(r))
        out = []
        for r in rows:
            history = by_order.get(r.mall_order_id, [])
            done = [x for x in history if x.state == LabelState.DONE]
            out.append(LabelCandidate(r.mall_order_id, r.mall_status, int(r.parcel_count),
                                      history[-1] if history else None, done[-1] if done else None))
        return out

    @staticmethod
    def add_label_rows(c: Connection, rows: Sequence[dict]) -> None:
        """Insert label rows (``mall_order_id``, ``parcel_count``, ``state``, optional ``reason``)."""
        if not rows:
            return
        now = utcnow()
        c.execute(s.mdp_labels.insert(), [{"attempts": 0, "created_at": now, "updated_at": now, **r,
                                           "state": str(LabelState(r["state"]))} for r in rows])

    def labels_in(self, states: Sequence[LabelState]) -> list[LabelRow]:
        with self._ledger.read() as c:
            return [LabelRow.from_row(r) for r in c.execute(
                select(s.mdp_labels).where(s.mdp_labels.c.state.in_([str(x) for x in states]))
                .order_by(s.mdp_labels.c.id))]

    @staticmethod
    def update_labels(c: Connection, ids: Sequence[int], **values: Any) -> None:
        if not ids:
            return
        if "barcodes" in values and not isinstance(values["barcodes"], (str, type(None))):
            values["barcodes"] = json.dumps(list(values["barcodes"]))
        if "state" in values:
            values["state"] = str(LabelState(values["state"]))
        c.execute(s.mdp_labels.update().where(s.mdp_labels.c.id.in_(list(ids))).values(updated_at=utcnow(), **values))

    def labels_of(self, order_id: int) -> list[LabelRow]:
        """Every label row of an order, oldest first (for ``ledger show`` and ``labels``)."""
        with self._ledger.read() as c:
            return [LabelRow.from_row(r) for r in c.execute(
                select(s.mdp_labels).where(s.mdp_labels.c.mall_order_id == order_id).order_by(s.mdp_labels.c.id))]

    def label_lines(self, order_id: int, tz=None) -> list[str]:
        """Human lines for ``ledger show``: each label set with its state, parcels, barcodes and file; times in
        ``tz`` (the [shop] timezone, named once by the caller's header; UTC when None)."""
        from connector.timefmt import local

        lines = []
        for row in self.labels_of(order_id):
            text = f"{local(row.updated_at, tz)}  labels {row.state}: {row.parcel_count} parcel(s)"
            if row.barcodes:
                text += f", barcodes {', '.join(row.barcodes)}"
            if row.file:
                text += f", file {row.file}"
            if row.reason:
                text += f" ({row.reason})"
            lines.append(text)
        for row in self.serials_of(order_id):
            text = f"serial numbers of item {row.item_id} {row.state}: {', '.join(row.wanted) or '(none)'}"
            if row.reason:
                text += f" ({row.reason})"
            lines.append(text)
        return lines

    # -- serial numbers --------------------------------------------------------------------------------------------

    @staticmethod
    def record_serials(c: Connection, wanted: dict[tuple[int, str], list[str]]) -> int:
        """Store the serials source's lists in the caller's transaction; an item whose list differs from what was
        wanted before is pending again. Returns how many became pending."""
        keys = list(wanted)
        pending = 0
        now = utcnow()
        for i in range(0, len(keys), CHUNK):
            chunk = keys[i:i + CHUNK]
            orders = sorted({k[0] for k in chunk})
            known = {(r.mall_order_id, r.item_id): _serial(r) for r in c.execute(
                select(s.mdp_serials).where(s.mdp_serials.c.mall_order_id.in_(orders)))}
            inserts, updates = [], []
            for key in chunk:
                row = known.get(key)
                if row is None:
                    inserts.append({"mall_order_id": key[0], "item_id": key[1], "wanted": json.dumps(wanted[key]),
                                    "state": SerialState.PENDING.value, "attempts": 0, "updated_at": now})
                elif row.wanted != wanted[key]:
                    updates.append(key)
            if inserts:
                c.execute(s.mdp_serials.insert(), inserts)
            for oid, item in updates:
                c.execute(s.mdp_serials.update()
                          .where(and_(s.mdp_serials.c.mall_order_id == oid, s.mdp_serials.c.item_id == item))
                          .values(wanted=json.dumps(wanted[(oid, item)]), state=SerialState.PENDING.value, attempts=0,
                                  reason=None, updated_at=now))
            pending += len(inserts) + len(updates)
        return pending

    def serials_in(self, states: Sequence[SerialState], limit: int = 1000) -> list[SerialRow]:
        with self._ledger.read() as c:
            return [_serial(r) for r in c.execute(
                select(s.mdp_serials).where(s.mdp_serials.c.state.in_([str(x) for x in states]))
                .order_by(s.mdp_serials.c.mall_order_id, s.mdp_serials.c.item_id).limit(limit))]

    def serials_of(self, order_id: int) -> list[SerialRow]:
        with self._ledger.read() as c:
            return [_serial(r) for r in c.execute(
                select(s.mdp_serials).where(s.mdp_serials.c.mall_order_id == order_id)
                .order_by(s.mdp_serials.c.item_id))]

    @staticmethod
    def update_serial(c: Connection, order_id: int, item_id: str, **values: Any) -> None:
        for key in ("sent", "wanted"):
            if key in values and isinstance(values[key], list):
                values[key] = json.dumps(values[key])
        if "state" in values:
            values["state"] = str(SerialState(values["state"]))
        c.execute(s.mdp_serials.update()
                  .where(and_(s.mdp_serials.c.mall_order_id == order_id, s.mdp_serials.c.item_id == item_id))
                  .values(updated_at=utcnow(), **values))


def _serial(r: Any) -> SerialRow:
    return SerialRow(r.mall_order_id, r.item_id, json.loads(r.wanted), json.loads(r.sent) if r.sent else None,
                     r.state, r.reason, r.attempts)
