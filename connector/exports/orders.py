"""The orders overview (what the portal's Orders page shows), read from the ledger, and its refresh.

The ledger already has every order the connector has seen, so the overview costs no MALL calls.
``refresh`` re-reads only the statuses asked for, never the closed ones: MALL asks partners not to
re-list closed orders, and there is nothing left to do on them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timezone
from decimal import Decimal
from typing import Iterable, Sequence

from connector.exports.common import money, prague_date
from connector.ledger import Ledger
from connector.ledger.types import Origin
from connector.mall.errors import MallNotFound
from connector.mall.models import Order
from connector.mall.statuses import FINAL_STATUSES, Status
from connector.sync.snapshot import order_from_snapshot, store_snapshot

log = logging.getLogger("mall_connector.exports")

#: The statuses still being worked on: the default of `orders list` and of its refresh.
ACTIVE_STATUSES: tuple[str, ...] = (Status.OPEN.value, Status.SHIPPING.value, Status.SHIPPED.value)


@dataclass(frozen=True)
class OrderLine:
    """One line of the overview."""

    mall_order_id: int
    status: str | None
    confirmed: bool | None
    ship_date: str | None
    delivery_method: str | None
    branch_id: int | None
    customer: str | None
    total: Decimal | None
    currency: str | None
    shop_status: str | None
    last_sync: str
    created: date | None
    test: bool
    account: str = "default"  # issue 18: the MALL account of the order


def snapshot_order(snapshot: str | None, order_id: int) -> Order | None:
    """The stored MALL order, or None when there is none or it cannot be read (logged, not fatal)."""
    if not snapshot:
        return None
    try:
        return order_from_snapshot(snapshot)
    except ValueError as e:
        log.warning("order %s: the stored MALL data cannot be read (%s)", order_id, e.__class__.__name__)
        return None


def last_sync(ledger: Ledger, order_ids: Sequence[int]) -> dict[int, str]:
    """For each order, its newest change as "target state: reason" (what the connector last did with it)."""
    out: dict[int, str] = {}
    for r in ledger.reports.newest_changes(order_ids):
        what = r.target_status or r.kind
        where = "to MALL" if r.origin == Origin.SHOP else "to the shop"
        why = r.reason or r.last_error or ""
        out[r.mall_order_id] = f"{what} {where} {r.state}" + (f": {why}" if why else "")
    return out


def _delivery_label(order, code):
    from connector.exports.delivery import delivery_label

    return delivery_label(order, code)


def overview(ledger: Ledger, *, statuses: Iterable[str] | None, since: date | None = None,
             include_test: bool = False, account: str | None = None) -> list[OrderLine]:
    """Orders in ``statuses`` (None: all), created on/after ``since`` (Prague date), by ship date then id;
    ``account``: only that MALL account's (issue 18)."""
    rows = ledger.reports.orders_in(statuses, include_test=include_test)
    if account is not None:
        rows = [r for r in rows if r.account == account]
    syncs = last_sync(ledger, [r.mall_order_id for r in rows])
    lines = []
    for r in rows:
        order = snapshot_order(r.snapshot, r.mall_order_id)
        created = None
        if order is not None:
            created = prague_date(order.blocked or order.open)
        if created is None and r.created_at is not None:  # not fetched yet: when the connector first saw it
            created = prague_date(r.created_at.replace(tzinfo=timezone.utc))
        if since is not None and (created is None or created < since):
            continue
        lines.append(OrderLine(
            mall_order_id=r.mall_order_id, status=r.mall_status, confirmed=r.mall_confirmed, ship_date=r.ship_date,
            delivery_method=_delivery_label(order, r.delivery_method), branch_id=r.branch_id, customer=r.customer,
            total=money(order.total) if order is not None else None,
            currency=order.currency if order is not None else None, shop_status=r.shop_status,
            last_sync=syncs.get(r.mall_order_id, ""), created=created, test=bool(r.test), account=r.account,
        ))
    lines.sort(key=lambda o: (o.ship_date is None, o.ship_date or "", o.mall_order_id))
    return lines


@dataclass
class RefreshResult:
    listed: int = 0  # orders MALL listed in the statuses asked for
    moved: int = 0  # orders the ledger had in those statuses that MALL no longer lists there
    stored: int = 0
    not_found: list[int] = field(default_factory=list)
    skipped_final: list[str] = field(default_factory=list)


def refresh(ledger: Ledger, client, *, statuses: Sequence[str], include_test: bool = False,
            page_size: int = 100) -> RefreshResult:
    """Re-read from MALL the orders in ``statuses`` and store their snapshots, one write per page.

    Final statuses are left out (never list closed orders). Orders the ledger still has in the
    statuses but MALL no longer lists there have moved on (a missed webhook): they are read one by
    one so the ledger stops showing them wrongly. A MALL error other than "not found" stops the refresh;
    pages already stored stay stored. No write transaction is open during an HTTP call.
    """
    result = RefreshResult()
    live = [st for st in statuses if Status(st) not in FINAL_STATUSES]
    result.skipped_final = [st for st in statuses if Status(st) in FINAL_STATUSES]
    if not live:
        return result
    seen: set[int] = set()
    page: list[int] = []
    for oid in client.iter_orders(status=live, include_test=include_test, basic=False, page_size=page_size):
        if oid in seen:
            continue
        seen.add(oid)
        result.listed += 1
        page.append(oid)
        if len(page) >= page_size:
            _store_page(ledger, client, page, result)
            page = []
    _store_page(ledger, client, page, result)

    stale = sorted(ledger.reports.order_ids_in(live, include_test=include_test) - seen)
    result.moved = len(stale)
    for i in range(0, len(stale), page_size):
        _store_page(ledger, client, stale[i:i + page_size], result)
    return result


def _store_page(ledger: Ledger, client, ids: Sequence[int], result: RefreshResult) -> None:
    orders = []
    for oid in ids:
        try:
            orders.append(client.get_order(oid))
        except MallNotFound:
            result.not_found.append(oid)
    if not orders:
        return
    with ledger.write() as c:
        for order in orders:
            store_snapshot(ledger, c, order)
    result.stored += len(orders)
