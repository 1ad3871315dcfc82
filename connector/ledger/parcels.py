"""Ledger queries of the ``parcels`` table: the deliveries the connector watches for MALL (issue 15).

One row per shipped order: what the shop said about its delivery, which carrier tracks it, what the carrier
said, how often it was asked and when to ask again, and why a reported time was refused. ``ParcelsRepo`` is
``ledger.parcels``; as in the other repositories a write takes the caller's connection ``c`` (the feed hook
runs inside the poll's write), a read takes ``c`` or opens its own read transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from connector.ledger import schema as s
from connector.ledger.rows import chunks, update_many, utcnow
from connector.ledger.types import ParcelState

OPEN = ParcelState.OPEN
P = s.parcels
O = s.orders


@dataclass(frozen=True)
class ParcelRow:
    """A watched parcel joined with what the ledger knows of its order on MALL."""

    mall_order_id: int
    tracking_number: str | None
    feed_carrier: str | None
    carrier: str | None
    carrier_by: str | None
    shop_delivered_at: str | None
    shop_first_attempt: str | None
    carrier_outcome: str | None
    carrier_delivered_at: str | None
    carrier_first_attempt: str | None
    carrier_date_only: bool
    carrier_detail: str | None
    shipped_at: str | None
    state: str
    polls: int
    failures: int
    next_poll_at: datetime | None
    last_error: str | None
    refused: str | None
    change_id: int | None
    # from orders
    mall_status: str | None
    mdp: bool
    test: bool
    delivery_method: str | None
    snapshot: str | None

    @property
    def snapshot_shipped(self) -> str | None:
        """MALL's `shipped` datetime from the last order read, when that read saw it."""
        if not self.snapshot:
            return None
        try:
            return json.loads(self.snapshot).get("shipped")
        except ValueError:
            return None

    @property
    def snapshot_tracking(self) -> str | None:
        if not self.snapshot:
            return None
        try:
            return json.loads(self.snapshot).get("tracking_number")
        except ValueError:
            return None


_COLUMNS = [P.c[name] for name in ParcelRow.__dataclass_fields__ if name in P.c] + [
    O.c.mall_status, O.c.mdp, O.c.test, O.c.delivery_method, O.c.snapshot]


def _row(r: Any) -> ParcelRow:
    m = r._mapping
    return ParcelRow(**{f: m[f] for f in ParcelRow.__dataclass_fields__})


class ParcelsRepo:
    """``ledger.parcels``: the watched deliveries (issue 15)."""

    def __init__(self, ledger):
        self._ledger = ledger

    @staticmethod
    def record_shop_rows(c: Connection, rows: Iterable[dict[str, Any]]) -> None:
        """Remember the feed's tracking number, carrier and delivery dates per order (inside the poll's transaction).

        ``rows``: ``{mall_order_id, tracking_number, carrier, delivered_at, first_delivery_attempt}`` with MALL-format
        times. Only rows that carry a tracking number or a delivery date make a parcel. A changed tracking number or
        carrier makes the carrier be chosen again."""
        rows = [r for r in rows if r.get("tracking_number") or r.get("delivered_at")]
        if not rows:
            return
        now = utcnow()
        ids = [r["mall_order_id"] for r in rows]
        existing: dict[int, tuple] = {}
        shop_dates: dict[int, str | None] = {}
        for chunk in chunks(ids):
            for oid, number, carrier, shop_at in c.execute(
                    select(P.c.mall_order_id, P.c.tracking_number, P.c.feed_carrier, P.c.shop_delivered_at)
                    .where(P.c.mall_order_id.in_(chunk))):
                existing[oid] = (number, carrier)
                shop_dates[oid] = shop_at
        inserts, updates = [], []
        for r in rows:
            values = {"tracking_number": r.get("tracking_number"), "feed_carrier": r.get("carrier"),
                      "shop_delivered_at": r.get("delivered_at"), "shop_first_attempt": r.get("first_delivery_attempt")}
            oid = r["mall_order_id"]
            if oid not in existing:
                inserts.append({"mall_order_id": oid, **values, "state": OPEN, "polls": 0, "failures": 0,
                                "carrier_date_only": False, "created_at": now, "updated_at": now})
                continue
            if existing[oid] != (values["tracking_number"], values["feed_carrier"]):
                values.update(carrier=None, carrier_by=None, next_poll_at=None)
            if values["shop_delivered_at"] and values["shop_delivered_at"] != shop_dates[oid]:
                values["next_poll_at"] = None  # a new shop date: look at the parcel in the next pass
            updates.append({"_id": oid, "updated_at": now, **values})
        if inserts:
            c.execute(insert(P), inserts)
        update_many(c, P, P.c.mall_order_id, updates)  # one executemany per set of columns, as the poll does

    @staticmethod
    def shipped_without_parcel(c: Connection, limit: int) -> list[dict[str, Any]]:
        """Orders MALL has shipped (not MALL Delivery) with no parcel row yet, e.g. shipped in the portal, as parcel
        rows to insert (``adopt``). Their tracking number comes from the shop row or MALL's order. A read only."""
        q = (select(O.c.mall_order_id, O.c.shop_tracking_number, O.c.shop_carrier, O.c.snapshot)
             .select_from(O.outerjoin(P, P.c.mall_order_id == O.c.mall_order_id))
             .where(O.c.mall_status == "shipped", O.c.mdp.is_(False) | O.c.mdp.is_(None), P.c.mall_order_id.is_(None))
             .limit(limit))
        rows = []
        for oid, number, carrier, snapshot in c.execute(q):
            if not number and snapshot:
                try:
                    number = json.loads(snapshot).get("tracking_number")
                except ValueError:
                    number = None
            rows.append({"mall_order_id": oid, "tracking_number": number, "feed_carrier": carrier})
        return rows

    @staticmethod
    def adopt(c: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert the parcel rows ``shipped_without_parcel`` found (in a write transaction)."""
        if rows:
            now = utcnow()
            c.execute(insert(P), [{**r, "state": OPEN, "polls": 0, "failures": 0, "carrier_date_only": False,
                                   "created_at": now, "updated_at": now} for r in rows])

    @staticmethod
    def due(c: Connection, limit: int, now: datetime) -> list[ParcelRow]:
        """Open parcels of orders the ledger has as shipped on MALL (or already past it, or MALL Delivery: to close
        them), new ones and the most overdue first. Orders not shipped yet are left out, so they never crowd out
        the ones there is work for."""
        q = (select(*_COLUMNS).select_from(P.join(O, O.c.mall_order_id == P.c.mall_order_id))
             .where(P.c.state == OPEN, O.c.mall_status.in_(("shipped", "delivered", "returned", "cancelled", "lost"))
                    | O.c.mdp.is_(True))
             .order_by(P.c.next_poll_at.is_not(None), P.c.next_poll_at, P.c.mall_order_id)
             .limit(limit))
        return [_row(r) for r in c.execute(q)]

    @staticmethod
    def get(c: Connection, order_id: int) -> ParcelRow | None:
        r = c.execute(select(*_COLUMNS).select_from(P.join(O, O.c.mall_order_id == P.c.mall_order_id))
                      .where(P.c.mall_order_id == order_id)).first()
        return _row(r) if r else None

    @staticmethod
    def update(c: Connection, order_id: int, **values: Any) -> None:
        c.execute(update(P).where(P.c.mall_order_id == order_id).values(updated_at=utcnow(), **values))

    def call_stats(self) -> dict[str, Any]:
        """For `check` and metrics: parcels per state, calls made in all and the most made about one parcel."""
        with self._ledger.read() as c:
            return self._call_stats(c)

    @staticmethod
    def _call_stats(c: Connection) -> dict[str, Any]:
        per_state = dict(c.execute(select(P.c.state, func.count()).group_by(P.c.state)).all())
        total, most = c.execute(select(func.coalesce(func.sum(P.c.polls), 0), func.coalesce(func.max(P.c.polls), 0))).one()
        per_carrier = dict(c.execute(select(P.c.carrier, func.coalesce(func.sum(P.c.polls), 0))
                                     .where(P.c.carrier.is_not(None)).group_by(P.c.carrier)).all())
        return {"per_state": per_state, "calls": int(total), "most_calls_one_parcel": int(most), "per_carrier": per_carrier}

    def shipped_not_delivered(self) -> list[tuple[int, str | None, str | None, str | None]]:
        """(order id, MALL shipped datetime, tracking number, carrier) of orders MALL has shipped and not delivered
        (test orders left out: MALL pays nothing for them anyway)."""
        with self._ledger.read() as c:
            return self._shipped_not_delivered(c)

    @staticmethod
    def _shipped_not_delivered(c: Connection) -> list[tuple[int, str | None, str | None, str | None]]:
        q = (select(O.c.mall_order_id, P.c.shipped_at, O.c.snapshot, P.c.tracking_number, O.c.shop_tracking_number,
                    P.c.carrier, O.c.shop_carrier)
             .select_from(O.outerjoin(P, P.c.mall_order_id == O.c.mall_order_id))
             .where(O.c.mall_status == "shipped", O.c.test.is_(False) | O.c.test.is_(None))
             .order_by(O.c.mall_order_id))
        out = []
        for oid, shipped_at, snapshot, number, shop_number, carrier, shop_carrier in c.execute(q):
            if not shipped_at and snapshot:
                try:
                    shipped_at = json.loads(snapshot).get("shipped")
                except ValueError:
                    shipped_at = None
            out.append((oid, shipped_at, number or shop_number, carrier or shop_carrier))
        return out

    def auth_refused_per_carrier(self) -> dict[str, int]:
        """{carrier: open parcels whose last call was refused for the credentials} (the carrier_auth alert)."""
        with self._ledger.read() as c:
            return dict(c.execute(select(P.c.carrier, func.count()).where(
                P.c.state == OPEN, P.c.failures > 0, P.c.last_error.like("%: auth: %")).group_by(P.c.carrier)).all())
