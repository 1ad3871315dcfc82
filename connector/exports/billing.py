"""The manual-billing file: orders delivered in a period, for the partner's invoice to MALL.

MALL buys the goods only once an order is ``delivered``, so only delivered orders are billed, by
``delivered_at`` (Prague local time; both ends of the period inclusive). Returned, cancelled and
lost orders never are. An order MALL says is delivered but whose delivery time the ledger does not
know cannot be placed in a period: it goes to the "Check" sheet instead of being silently dropped.

All money is Decimal and rounded to cents once per line, so the totals add up exactly.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

from connector.exports.common import EXPORT_MODE, MONEY_FORMAT, Column, add_sheet, money, write_atomically
from connector.exports.orders import snapshot_order
from connector.ledger import Ledger
from connector.mall.models import Order
from connector.mall.statuses import Status

DELIVERED = Status.DELIVERED.value

BILLING_COLUMNS = (
    Column("Order ID", 14), Column("COD amount", 12, MONEY_FORMAT), Column("Purchase ID", 12),
    Column("Delivered at", 19), Column("Currency", 9), Column("Item ID", 14), Column("Article ID", 15),
    Column("Title", 40), Column("Quantity", 9), Column("Unit price", 12, MONEY_FORMAT), Column("VAT %", 7, "0.##"),
    Column("Commission %", 13, "0.##"), Column("Line total", 12, MONEY_FORMAT),
    Column("Delivery price", 13, MONEY_FORMAT), Column("COD fee", 10, MONEY_FORMAT),
    Column("Discount", 10, MONEY_FORMAT), Column("Order total", 13, MONEY_FORMAT),
)
SUMMARY_COLUMNS = (
    Column("Currency", 16), Column("Orders", 9), Column("COD orders", 11), Column("Items", 14, MONEY_FORMAT),
    Column("Delivery", 13, MONEY_FORMAT), Column("COD fees", 12, MONEY_FORMAT), Column("Discounts", 12, MONEY_FORMAT),
    Column("Order total", 14, MONEY_FORMAT), Column("COD amount", 14, MONEY_FORMAT),
)
CHECK_COLUMNS = (Column("Order ID", 14), Column("MALL status", 12), Column("Problem", 60), Column("What to do", 70))


@dataclass(frozen=True)
class BilledOrder:
    order: Order
    delivered_at: str  # "YYYY-MM-DD HH:MM:SS" Prague
    account: str = "default"  # issue 18: the MALL account that bills it

    @property
    def cod(self) -> Decimal:
        return money(self.order.cod)

    @property
    def total(self) -> Decimal:
        o = self.order
        return self.items_total + money(o.delivery_price) + money(o.cod_price) - money(o.discount)

    @property
    def items_total(self) -> Decimal:
        return sum((money(i.price * i.quantity) for i in self.order.items), Decimal(0))


@dataclass
class CurrencyTotals:
    orders: int = 0
    cod_orders: int = 0
    items: Decimal = Decimal(0)
    delivery: Decimal = Decimal(0)
    cod_fees: Decimal = Decimal(0)
    discounts: Decimal = Decimal(0)
    total: Decimal = Decimal(0)
    cod: Decimal = Decimal(0)

    def add(self, b: BilledOrder) -> None:
        o = b.order
        self.orders += 1
        self.cod_orders += 1 if b.cod else 0
        self.items += b.items_total
        self.delivery += money(o.delivery_price)
        self.cod_fees += money(o.cod_price)
        self.discounts += money(o.discount)
        self.total += b.total
        self.cod += b.cod


@dataclass(frozen=True)
class CheckItem:
    mall_order_id: int
    status: str
    problem: str
    todo: str
    account: str = "default"  # issue 18


@dataclass
class Billing:
    date_from: date
    date_to: date
    orders: list[BilledOrder] = field(default_factory=list)
    check: list[CheckItem] = field(default_factory=list)
    with_account: bool = False  # issue 18: an Account column first on Billing and Check, totals per account

    @property
    def totals(self) -> dict[str, CurrencyTotals]:
        out: dict[str, CurrencyTotals] = defaultdict(CurrencyTotals)
        for b in self.orders:
            out[b.order.currency or "?"].add(b)
        return dict(sorted(out.items()))

    def totals_of(self, account: str) -> dict[str, CurrencyTotals]:
        """issue 18: the totals of one MALL account (each account is billed by MALL on its own)."""
        out: dict[str, CurrencyTotals] = defaultdict(CurrencyTotals)
        for b in self.orders:
            if b.account == account:
                out[b.order.currency or "?"].add(b)
        return dict(sorted(out.items()))


def period_bounds(date_from: date, date_to: date) -> tuple[str, str]:
    """[start, end) as MALL-format Prague local times: the whole of both days is inside."""
    return f"{date_from.isoformat()} 00:00:00", f"{(date_to + timedelta(days=1)).isoformat()} 00:00:00"


def build_billing(ledger: Ledger, date_from: date, date_to: date, *, account: str | None = None,
                  with_account: bool = False) -> Billing:
    """Delivered orders of the period, plus the delivered ones that cannot be placed (Check).

    Test orders are never billed. When the ledger's delivery time is missing because the shop set
    ``delivered`` through the connector (MALL sends no webhook for the partner's own change, so the
    snapshot can be from before), the delivered_at MALL accepted in that PUT is used.

    ``account``: only that MALL account's orders (issue 18); ``with_account``: name the account in every row.
    """
    start, end = period_bounds(date_from, date_to)
    rows = ledger.reports.delivered_between(DELIVERED, start, end)
    if account is not None:
        rows = [r for r in rows if r.account == account]
    unknown = [r.mall_order_id for r in rows if r.mall_delivered_at is None]
    pushed: dict[int, str] = {}
    if unknown:
        for oid, payload in ledger.reports.pushed_payloads(unknown, DELIVERED):
            at = _payload_delivered_at(payload)
            if at:
                pushed[oid] = at
    billing = Billing(date_from, date_to, with_account=with_account)
    for r in rows:
        delivered_at = r.mall_delivered_at or pushed.get(r.mall_order_id)
        if delivered_at is None:
            billing.check.append(CheckItem(
                r.mall_order_id, DELIVERED, "delivered on MALL, but the ledger does not know when (no delivered_at)",
                "Look the order up in the MALL portal; if it was delivered in this period, add it to the billing "
                "file by hand.", r.account))
            continue
        if not start <= delivered_at < end:
            continue
        order = snapshot_order(r.snapshot, r.mall_order_id)
        if order is None or not order.items:
            billing.check.append(CheckItem(
                r.mall_order_id, DELIVERED, f"delivered {delivered_at}, but the ledger has no items for it",
                "Look the order up in the MALL portal and add it to the billing file by hand.", r.account))
            continue
        billing.orders.append(BilledOrder(order, delivered_at, r.account))
    shipped = _shipped_not_delivered(ledger, start, end)  # issue 15
    if shipped:
        owners = ledger.accounts.of_orders([x.mall_order_id for x in shipped])
        shipped = [dataclasses.replace(x, account=owners.get(x.mall_order_id, x.account)) for x in shipped]
        if account is not None:
            shipped = [x for x in shipped if x.account == account]
    billing.check.extend(shipped)
    billing.orders.sort(key=lambda b: (b.delivered_at, b.order.id))
    billing.check.sort(key=lambda x: x.mall_order_id)
    return billing


def _shipped_not_delivered(ledger: Ledger, start: str, end: str, today: date | None = None) -> list[CheckItem]:
    """Orders MALL has had shipped since a day of the period and not delivered: MALL pays nothing for them yet
    (issue 15). The days since shipping say which parcel to chase first."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    today = today or datetime.now(ZoneInfo("Europe/Prague")).date()
    out = []
    for oid, shipped_at, number, carrier in ledger.parcels.shipped_not_delivered():
        if not shipped_at or not start <= shipped_at[:19] < end:
            continue
        days = (today - date.fromisoformat(shipped_at[:10])).days
        parcel = f"parcel {number}" + (f" ({carrier})" if carrier else "") if number else "the parcel"
        out.append(CheckItem(
            oid, "shipped", f"shipped {shipped_at[:19]}, {days} days since shipping, not delivered: MALL pays only "
                            "after delivered",
            f"Check {parcel} with the carrier; once delivered, the shop feed's delivered_at (or the carrier "
            "tracking) sets it delivered and it is billed in the period of its delivery."))
    return out


def _payload_delivered_at(payload: str | None) -> str | None:
    try:
        value = json.loads(payload or "{}").get("delivered_at")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and len(value) == 19 else None


def billing_rows(b: Billing) -> list[list]:
    """One row per item; the order-level amounts (COD, delivery, fees, total) only on an order's first
    row, so every money column adds up to the right total."""
    rows = []
    for bo in b.orders:
        o = bo.order
        for n, item in enumerate(o.items):
            first = n == 0
            rows.append([
                o.id, bo.cod if first else None, o.purchase_id if first else None, bo.delivered_at if first else None,
                o.currency, item.id, item.article_id, item.title, item.quantity, money(item.price),
                item.vat, item.commission, money(item.price * item.quantity),
                money(o.delivery_price) if first else None, money(o.cod_price) if first else None,
                money(o.discount) if first else None, bo.total if first else None,
            ])
            if b.with_account:
                rows[-1].insert(0, bo.account)
    return rows


def write_billing(b: Billing, path: Path, *, mode: int = EXPORT_MODE) -> None:
    write_atomically(path, lambda f: _write_xlsx(b, f), mode=mode)


def _write_xlsx(b: Billing, path: Path | BinaryIO) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    totals = b.totals
    tail = [[f"Total {cur}", t.cod, None, None, cur, None, None, f"{t.orders} order(s)", None, None, None, None,
             t.items, t.delivery, t.cod_fees, t.discounts, t.total] for cur, t in totals.items()]
    columns = BILLING_COLUMNS
    if b.with_account:  # issue 18: the account first; a total per account and currency, then the grand totals
        columns = (Column("Account", 10), *BILLING_COLUMNS)
        per_account = [[acct, f"Total {cur}", t.cod, None, None, cur, None, None, f"{t.orders} order(s)", None,
                        None, None, None, t.items, t.delivery, t.cod_fees, t.discounts, t.total]
                       for acct in sorted({bo.account for bo in b.orders}) for cur, t in b.totals_of(acct).items()]
        tail = per_account + [["all", *row] for row in tail]
    add_sheet(wb, "Billing", columns, billing_rows(b), tail=tail)

    period = f"{b.date_from.isoformat()} to {b.date_to.isoformat()}"
    summary = [[cur, t.orders, t.cod_orders, t.items, t.delivery, t.cod_fees, t.discounts, t.total, t.cod]
               for cur, t in totals.items()]
    add_sheet(wb, "Summary", SUMMARY_COLUMNS, summary, tail=[
        ["All currencies", len(b.orders)],
        ["Period", period],
        ["Delivered at", "Europe/Prague local time, both days inclusive"],
        ["To check", len(b.check)],
    ])
    add_sheet(wb, "Check", (Column("Account", 10), *CHECK_COLUMNS) if b.with_account else CHECK_COLUMNS,
              [([x.account] if b.with_account else []) + [x.mall_order_id, x.status, x.problem, x.todo]
               for x in b.check])
    wb.save(path)
