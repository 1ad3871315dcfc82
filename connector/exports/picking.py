"""The warehouse picking list: what to take off the shelves for a set of orders, then how to pack them.

Like the portal's "Export for warehouse order picking": one line per product with the total quantity
and which orders need how many (so a picker walks the warehouse once), then a packing section per
order. Products are sorted by the shop feed's warehouse location when the feed gives one
(``orders.shop_location``), else by item id. An order the ledger has no MALL data for (not fetched
yet) cannot be listed item by item; it is named in a warning instead of silently left out.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Sequence

from connector.exports.common import EXPORT_MODE, Column, add_sheet, natural_key, write_atomically
from connector.exports.orders import snapshot_order
from connector.ledger import Ledger
from connector.safety import cell_value

TIMES = "\u00d7"  # "10085339302×2"
CSV_DELIMITER = ";"  # what Excel expects in Czech/Slovak locales (the comma is their decimal mark)

PICKING_COLUMNS = (
    Column("Location", 12), Column("Item ID", 16), Column("Article ID", 15), Column("Title", 48),
    Column("Quantity", 9), Column("Orders", 48),
)
ACCOUNT_COLUMN = Column("Account", 10)  # issue 18: first column when the config has several MALL accounts
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
    accounts: set[str] = field(default_factory=set)  # issue 18: the MALL accounts of those orders

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
    account: str = "default"  # issue 18


@dataclass
class PickingList:
    lines: list[PickLine]
    orders: list[PackOrder]
    warnings: list[str]
    with_account: bool = False  # issue 18: an Account column first in both sections


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
                  include_test: bool = False, account: str | None = None, with_account: bool = False) -> PickingList:
    """``account``: only that MALL account's orders (issue 18); ``with_account``: name the account in every row."""
    rows, warnings = select_orders(ledger, statuses=statuses, order_ids=order_ids, include_test=include_test)
    if account is not None:
        other = [r.mall_order_id for r in rows if r.account != account]
        if order_ids is not None:
            warnings += [f"order {oid} is not in account {account!r}: left out" for oid in other]
        rows = [r for r in rows if r.account == account]
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
            line.accounts.add(r.account)
            line.per_order[r.mall_order_id] = line.per_order.get(r.mall_order_id, 0) + item.quantity
            location = (r.shop_location or "").strip() or None
            if location and (line.location is None or natural_key(location) < natural_key(line.location)):
                line.location = location  # the first stop on the walk where this product is needed
            prev = per_item.get(item.id)
            per_item[item.id] = PackItem(item.id, item.title or "", item.quantity + (prev.quantity if prev else 0))
        packs.append(PackOrder(r.mall_order_id, r.ship_date, r.customer, r.delivery_method, r.branch_id,
                               tuple(per_item.values()), r.account))
    ordered = sorted(lines.values(), key=lambda ln: (ln.location is None, natural_key(ln.location),
                                                     natural_key(ln.item_id), ln.item_id))
    return PickingList(ordered, packs, warnings, with_account)


def _picking_rows(pl: PickingList) -> list[list]:
    rows = [[ln.location or "", ln.item_id, ln.article_id, ln.title, ln.quantity, ln.orders_text] for ln in pl.lines]
    if pl.with_account:
        rows = [[", ".join(sorted(ln.accounts)), *row] for ln, row in zip(pl.lines, rows)]
    return rows


def _packing_rows(pl: PickingList) -> list[list]:
    return [([o.account] if pl.with_account else []) + [
            o.mall_order_id, o.ship_date or "", o.customer or "", o.delivery_method or "", o.branch_id,
            it.item_id, it.title, it.quantity] for o in pl.orders for it in o.items]


def _columns(pl: PickingList, columns: tuple) -> tuple:
    return (ACCOUNT_COLUMN, *columns) if pl.with_account else columns


def write_picking(pl: PickingList, path: Path, kind: str, *, mode: int = EXPORT_MODE) -> None:
    """Write ``path`` as ``kind`` ("xlsx" or "csv"), atomically, with ``mode`` (0600 by default)."""
    write_atomically(path, lambda f: (_write_xlsx if kind == "xlsx" else _write_csv)(pl, f), mode=mode)


def _write_xlsx(pl: PickingList, path: Path | BinaryIO) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    tail = [["Warning", w] for w in pl.warnings]
    add_sheet(wb, "Picking", _columns(pl, PICKING_COLUMNS), _picking_rows(pl), tail=tail)
    add_sheet(wb, "Packing", _columns(pl, PACKING_COLUMNS), _packing_rows(pl))
    wb.save(path)


def _write_csv(pl: PickingList, out: BinaryIO) -> None:
    """Both sections in one file, each under a title row, separated by a blank line; UTF-8 with a BOM
    so Excel shows Czech and Slovak letters right. Every text cell goes through ``formula_safe``."""
    f = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=True)
    try:
        w = _SafeWriter(csv.writer(f, delimiter=CSV_DELIMITER))
        w.writerow(["Picking"])
        w.writerow([c.header for c in _columns(pl, PICKING_COLUMNS)])
        w.writerows(_picking_rows(pl))
        w.writerow([])
        w.writerow(["Packing"])
        w.writerow([c.header for c in _columns(pl, PACKING_COLUMNS)])
        w.writerows(_packing_rows(pl))
        if pl.warnings:
            w.writerow([])
            w.writerow(["Warnings"])
            w.writerows([[msg] for msg in pl.warnings])
        f.flush()
    finally:
        f.detach()  # the caller closes the binary file


class _SafeWriter:
    """A csv writer whose every cell passes ``cell_value`` (text made formula-safe, numbers kept)."""

    def __init__(self, writer):
        self._w = writer

    def writerow(self, row) -> None:
        self._w.writerow([cell_value(v) for v in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)
