"""Needs-action items that close themselves when the evidence appears, and bulk ``ledger done``.

Every item gets a typed ``closes_on`` (how it will close) the first time it is looked at:

==================  =============================================================  =====================
closes_on           evidence                                                       items
==================  =============================================================  =====================
feed_lists_order    the shop feed lists that MALL order id                         "create it in the shop"
feed_cancelled      the feed shows, for that order, a status mapped to cancelled    "set it to stornováno"
next_status_change  the order's next status change (shop or MALL) after the item    "send the parcel to the
                                                                                   new branch"
order_moves         the order moves on MALL or in the shop (sync/deadlines.py)      24-hour limit
hand                nothing: only ``ledger done`` (e.g. a credit note)               everything else
==================  =============================================================  =====================

An item that closed itself has ``closed_by = "itself"`` and a note saying what closed it, which
``ledger show`` prints; ``ledger done`` sets ``closed_by = "hand"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import exists, func, or_, select, update

from connector.ledger import schema as s
from connector.ledger.repo import utcnow

FEED_LISTS_ORDER = "feed_lists_order"
FEED_CANCELLED = "feed_cancelled"
NEXT_STATUS_CHANGE = "next_status_change"
ORDER_MOVES = "order_moves"
HAND = "hand"
BY_HAND = "only by hand: mall-connector ledger done ID"

#: closes_on -> how the item will close, in the words `ledger list --needs-action` and alerts use.
CLOSES_ON = {
    FEED_LISTS_ORDER: "by itself when the shop feed lists the order",
    FEED_CANCELLED: "by itself when the shop feed shows it cancelled",
    NEXT_STATUS_CHANGE: "by itself on the order's next status change",
    ORDER_MOVES: "by itself when the order moves on MALL or in the shop",
    HAND: BY_HAND,
}


@dataclass(frozen=True)
class Item:
    id: int
    mall_order_id: int | None
    kind: str
    message: str
    created_at: datetime
    closes_on: str | None
    done_at: datetime | None = None
    done_note: str | None = None
    closed_by: str | None = None

    @property
    def how_it_closes(self) -> str:
        return CLOSES_ON.get(self.closes_on or HAND, BY_HAND)


def _item(r) -> Item:
    return Item(id=r.id, mall_order_id=r.mall_order_id, kind=r.kind, message=r.message, created_at=r.created_at,
                closes_on=r.closes_on, done_at=r.done_at, done_note=r.done_note, closed_by=r.closed_by)


def classify(ledger) -> int:
    """Give open items without ``closes_on`` theirs. Returns how many were classified.

    A shop_action item was opened for one MALL-side change; its key is ``shop_action:`` + that change's
    key (sync/inbound.py), so the change says what it is about (a new order, a cancel, ...)."""
    a, ch = s.actions.c, s.changes.c
    prefix = "shop_action:"
    # changes.key = the item's key without the prefix: a lookup by the unique index, not a scan of changes.
    change_key = func.substr(a.key, len(prefix) + 1)
    with ledger.read() as c:
        rows = c.execute(select(a.id, a.kind, ch.kind.label("change_kind"), ch.target_status)
                         .select_from(s.actions.outerjoin(s.changes, (ch.key == change_key)
                                                          & a.key.startswith(prefix)))
                         .where(a.done_at.is_(None), a.closes_on.is_(None))).all()
    if not rows:
        return 0
    values = []
    for r in rows:
        if r.kind == "branch_change":
            rule = NEXT_STATUS_CHANGE
        elif r.kind == "deadline":
            rule = ORDER_MOVES
        elif r.kind == "shop_action" and r.change_kind == "new_order":
            rule = FEED_LISTS_ORDER
        elif r.kind == "shop_action" and r.change_kind == "status" and r.target_status == "cancelled":
            rule = FEED_CANCELLED
        else:
            rule = HAND
        values.append((r.id, rule))
    with ledger.write() as c:
        for item_id, rule in values:
            c.execute(update(s.actions).where(s.actions.c.id == item_id, s.actions.c.closes_on.is_(None))
                      .values(closes_on=rule))
    return len(values)


def open_items(ledger, *, kind: str | None = None) -> list[Item]:
    classify(ledger)
    q = select(s.actions).where(s.actions.c.done_at.is_(None))
    if kind:
        q = q.where(s.actions.c.kind == kind)
    with ledger.read() as c:
        return [_item(r) for r in c.execute(q.order_by(s.actions.c.id))]


def items_for_order(ledger, order_id: int) -> list[Item]:
    """Every item of one order, open or closed, oldest first (for ``ledger show``)."""
    with ledger.read() as c:
        return [_item(r) for r in c.execute(select(s.actions).where(s.actions.c.mall_order_id == order_id)
                                            .order_by(s.actions.c.id))]


def close_by_evidence(ledger, mapping) -> list[tuple[int, str]]:
    """Close every open item whose evidence has appeared. Returns [(item id, note)].

    ``mapping`` is the one in force: "shows it cancelled" means a shop status it maps to cancelled."""
    classify(ledger)
    a, o, ch = s.actions.c, s.orders.c, s.changes.c
    closing: list[tuple[int, int | None, str]] = []
    with ledger.read() as c:
        listed = c.execute(select(a.id, a.mall_order_id).select_from(
            s.actions.join(s.orders, o.mall_order_id == a.mall_order_id))
            .where(a.done_at.is_(None), a.closes_on == FEED_LISTS_ORDER, o.shop_seen_at.is_not(None))).all()
        closing += [(i, oid, f"closed by itself: the shop feed lists order {oid}") for i, oid in listed]

        cancel = c.execute(select(a.id, a.mall_order_id, o.shop_status).select_from(
            s.actions.join(s.orders, o.mall_order_id == a.mall_order_id))
            .where(a.done_at.is_(None), a.closes_on == FEED_CANCELLED, o.shop_status.is_not(None))).all()
        for i, oid, status in cancel:
            hit = mapping.lookup(status)
            if hit.kind == "mapped" and getattr(hit.target, "value", hit.target) == "cancelled":
                closing.append((i, oid, f"closed by itself: the shop feed shows order {oid} as {status!r} "
                                        "(cancelled)"))

        later = exists().where(ch.mall_order_id == a.mall_order_id, ch.kind == "status",
                               ch.created_at > a.created_at)
        moved = c.execute(select(a.id, a.mall_order_id).where(
            a.done_at.is_(None), a.closes_on == NEXT_STATUS_CHANGE, later)).all()
        closing += [(i, oid, f"closed by itself: order {oid} changed status since") for i, oid in moved]
    if not closing:
        return []
    now = utcnow()
    done = []
    with ledger.write() as c:
        for item_id, oid, note in closing:
            n = c.execute(update(s.actions).where(s.actions.c.id == item_id, s.actions.c.done_at.is_(None))
                          .values(done_at=now, done_note=note, closed_by="itself")).rowcount
            if n and oid is not None:
                ledger.orders.add_event(c, oid, "action", f"needs-action item {item_id} {note}")
            if n:
                done.append((item_id, note))
    return done
