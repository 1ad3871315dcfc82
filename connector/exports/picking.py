"""The warehouse picking list: what to take off the shelves for a set of orders, then how to pack them.

Like the portal's "Export for warehouse order picking": one line per product with the total quantity
and which orders need how many (so a picker walks the warehouse once), then a packing section per
order. Products are sorted by the shop feed's warehouse location when the feed gives one
(``orders.shop_location``), else by item id. An order the ledger has no MALL data for (not fetched
yet) cannot be listed item by item; it is named in a warning instead of silently left out.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from connector.exports.common import Column, add_sheet, natural_key, write_atomically
from connector.exports.orders import snapshot_order
from connector.ledger import Ledger

TIMES = "\u00d7"  # "10085339302×2"
CSV_DELIMITER = ";"  # what Excel expects in Czech/Slovak locales (the comma is their decimal mark)

PICKING_COLUMNS = (
    Column("Location", 12), Column("Item ID", 16), Column("Article ID", 15), Column("Title", 48),
    Column("Quantity", 9), Column("Orders", 48),
)
PACKING_COLUMNS = (
    Column("Order ID", 14), Column("Ship date", 11), Column("Customer", 26), Column("Delivery", 14),
    Column("Branch", 10), Column("Item ID", 16), Column("Title", 48), Column("Quantity", 9),
)


@dataclass
class PickLine:
    item_id: str
    article_id: int | None
    title: str
    quantity: int = 0
    per_order: dict[int, int] = field(default_factory=dict)  # order id -> pieces, in order of appearance
    location: str | None = None

    @property
    def orders_text(self) -> str:
        return ", ".join(f"{oid}{TIMES}{n}" for oid, n in self.per_order.items())


@dataclass(frozen=True)
class PackItem:
    item_id: str
    title: str
    quantity: int


@dataclass(frozen=True)
class PackOrder:
    mall_order_id: int
    ship_date: str | None
    customer: str | None
    delivery_method: str | None
    branch_id: int | None
    items: tuple[PackItem, ...]


@dataclass
class PickingList:
    lines: list[PickLine]
    orders: list[PackOrder]
    warnings: list[str]


def select_orders(ledger: Ledger, *, statuses: Iterable[str] | None = None, order_ids: Sequence[int] | None = None,
                  include_test: bool = False) -> tuple[list, list[str]]:
    """Ledger rows for the picking list: the given ids (any status), else the orders in ``statuses``."""
    warnings: list[str] = []
    if order_ids is not None:
        found = ledger.reports.orders_by_ids(order_ids)
        rows = []
        for oid in dict.fromkeys(order_ids):
            if oid in found:
                rows.append(found[oid])
            else:
                warnings.append(f"order {oid} is not in the ledger (check the id; the connector has not seen it)")
        return rows, warnings
    return ledger.reports.orders_in(tuple(statuses or ()), include_test=include_test), warnings


def build_picking(ledger: Ledger, *, statuses: Iterable[str] | None = None, order_ids: Sequence[int] | None = None,
                  include_test: bool = False) -> PickingList:
    rows, warnings = select_orders(ledger, statuses=statuses, order_ids=order_ids, include_test=include_test)
    rows.sort(key=lambda r: (r.ship_date is None, r.ship_date or "", r.mall_order_id))
    lines: dict[str, PickLine] = {}
    packs: list[PackOrder] = []
    for r in rows:
        order = snapshot_order(r.snapshot, r.mall_order_id)
        if order is None:
            warnings.append(f"order {r.mall_order_id} ({r.mall_status or 'status unknown'}) is NOT in this list: "
                            "the ledger has no MALL data for it yet (run `mall-connector orders list --refresh`)")
            continue
        if not order.items:
            warnings.append(f"order {r.mall_order_id}: MALL's data for it lists no items")
            continue
        per_item: dict[str, PackItem] = {}
        for item in order.items:
            line = lines.get(item.id)
            if line is None:
                line = lines[item.id] = PickLine(item.id, item.article_id, item.title or "")
            line.quantity += item.quantity
            line.per_order[r.mall_order_id] = line.per_order.get(r.mall_order_id, 0) + item.quantity
            location = (r.shop_location or "").strip() or None
            if location and (line.location is None or natural_key(location) < natural_key(line.location)):
                line.location = location  # the first stop on the walk where this product is needed
            prev = per_item.get(item.id)
            per_item[item.id] = PackItem(item.id, item.title or "", item.quantity + (prev.quantity if prev else 0))
        packs.append(PackOrder(r.mall_order_id, r.ship_date, r.customer, r.delivery_method, r.branch_id,
                               tuple(per_item.values())))
    ordered = sorted(lines.values(), key=lambda ln: (ln.location is None, natural_key(ln.location),
                                                     natural_key(ln.item_id), ln.item_id))
    return PickingList(ordered, packs, warnings)


def _picking_rows(pl: PickingList) -> list[list]:
    return [[ln.location or "", ln.item_id, ln.article_id, ln.title, ln.quantity, ln.orders_text] for ln in pl.lines]


def _packing_rows(pl: PickingList) -> list[list]:
    return [[o.mall_order_id, o.ship_date or "", o.customer or "", o.delivery_method or "", o.branch_id,
             it.item_id, it.title, it.quantity] for o in pl.orders for it in o.items]


def write_picking(pl: PickingList, path: Path, kind: str) -> None:
    """Write ``path`` as ``kind`` ("xlsx" or "csv"), atomically."""
    write_atomically(path, lambda tmp: (_write_xlsx if kind == "xlsx" else _write_csv)(pl, tmp))


def _write_xlsx(pl: PickingList, path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    tail = [["Warning", w] for w in pl.warnings]
    add_sheet(wb, "Picking", PICKING_COLUMNS, _picking_rows(pl), tail=tail)
    add_sheet(wb, "Packing", PACKING_COLUMNS, _packing_rows(pl))
    wb.save(path)


def _write_csv(pl: PickingList, path: Path) -> None:
    """Both sections in one file, each under a title row, separated by a blank line; UTF-8 with a BOM
    so Excel shows Czech and Slovak letters right."""
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f, delimiter=CSV_DELIMITER)
        w.writerow(["Picking"])
        w.writerow([c.header for c in PICKING_COLUMNS])
        w.writerows(_picking_rows(pl))
        w.writerow([])
        w.writerow(["Packing"])
        w.writerow([c.header for c in PACKING_COLUMNS])
        w.writerows(_packing_rows(pl))
        if pl.warnings:
            w.writerow([])
            w.writerow(["Warnings"])
            w.writerows([[msg] for msg in pl.warnings])
