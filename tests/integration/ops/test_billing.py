"""`mall-connector export billing`: the period boundary, exact money, sheets read back cell by cell."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from connector.exports.billing import build_billing
from tests.integration.ops.conftest import dec

HEADER = ["Order ID", "COD amount", "Purchase ID", "Delivered at", "Currency", "Item ID", "Article ID", "Title",
          "Quantity", "Unit price", "VAT %", "Commission %", "Line total", "Delivery price", "COD fee", "Discount",
          "Order total"]


def D(x) -> Decimal:  # noqa: N802 - a wire number as the exact amount MALL meant
    return Decimal(str(x if x is not None else 0))


@pytest.fixture
def period(mall, ledger):
    """Orders around the period 2026-11-01 .. 2026-11-15, moved over HTTP and recorded like the daemon does."""
    last_second = mall.create_currency("CZK", "cod")
    first_second = mall.create_currency("EUR")
    next_day = mall.create(1)[0]
    day_before = mall.create(1)[0]
    cancelled, returned, test = mall.create(1)[0], mall.create(1)[0], mall.create(1, "test")[0]
    pushed, pushed_late, missing = mall.create(3)

    mall.to_delivered(last_second, "2026-11-15 23:59:59")
    mall.to_delivered(first_second, "2026-11-01 00:00:00")
    mall.to_delivered(next_day, "2026-11-16 00:00:00")
    mall.to_delivered(day_before, "2026-10-31 23:59:59")
    mall.to_delivered(test, "2026-11-05 10:00:00")
    mall.put(cancelled, confirmed=True, status="cancelled")
    mall.to_shipped(returned)
    mall.put(returned, status="returned")
    mall.record(last_second, first_second, next_day, day_before, test, cancelled, returned)

    # The shop set these delivered through the connector: the ledger took MALL's "OK" for the status
    # but has no newer snapshot (MALL sends no webhook for the partner's own change).
    pushed_at = {pushed: "2026-11-05 08:00:00", pushed_late: "2026-11-16 00:00:00", missing: "2026-11-06 08:00:00"}
    for oid in pushed_at:
        mall.to_shipped(oid)
        mall.record(oid)
        mall.put(oid, status="delivered", delivered_at=pushed_at[oid])
    with ledger.write() as c:
        for oid in (pushed, pushed_late):
            ledger.changes.insert(c, key=f"shop:{oid}:delivered", order_id=oid, origin="shop", kind="status",
                                 target_status="delivered", state="done", reason="accepted by MALL",
                                 payload={"delivered_at": pushed_at[oid]})
        for oid in pushed_at:
            ledger.orders.ensure(c, oid, mall_status="delivered")
    return {"billed": [first_second, pushed, last_second], "missing": missing,
            "out": [next_day, day_before, cancelled, returned, test, pushed_late],
            "delivered_at": {first_second: "2026-11-01 00:00:00", pushed: "2026-11-05 08:00:00",
                             last_second: "2026-11-15 23:59:59"}}


def expected_order(wire: dict) -> dict:
    lines = [D(it["price"]) * it["quantity"] for it in wire["items"]]
    items = sum(lines, Decimal(0))
    total = items + D(wire.get("delivery_price")) + D(wire.get("cod_price")) - D(wire.get("discount"))
    return {"lines": lines, "items": items, "total": total, "cod": D(wire.get("cod"))}


def test_boundary_and_exclusions(period, ledger):
    b = build_billing(ledger, date(2026, 11, 1), date(2026, 11, 15))
    assert [x.order.id for x in b.orders] == period["billed"]
    assert [x.delivered_at for x in b.orders] == [period["delivered_at"][i] for i in period["billed"]]
    assert [x.mall_order_id for x in b.check] == [period["missing"]]
    assert not {x.order.id for x in b.orders} & set(period["out"])


def test_xlsx_cell_by_cell(period, mall, cli, tmp_path):
    out = tmp_path / "billing.xlsx"

    result = cli("export", "billing", "--from", "2026-11-01", "--to", "2026-11-15", "-o", str(out))

    assert result.exit_code == 0, result.output
    assert "3 order(s) delivered 2026-11-01 to 2026-11-15" in result.stdout
    assert "1 delivered order(s) without a known delivery time" in result.stderr
    wb = load_workbook(out)
    assert wb.sheetnames == ["Billing", "Summary", "Check"]
    for ws in wb:
        assert ws.freeze_panes == "A2"
        assert all(c.font.b for c in ws[1] if c.value is not None)
    ws = wb["Billing"]
    assert [c.value for c in ws[1]] == HEADER
    assert ws.column_dimensions["H"].width == 40

    rows = list(ws.iter_rows(min_row=2))
    per_currency = defaultdict(lambda: defaultdict(Decimal))
    r = 0
    for oid in period["billed"]:
        wire = mall.wire(oid)
        exp = expected_order(wire)
        cur = wire["currency"]
        for n, it in enumerate(wire["items"]):
            v = [c.value for c in rows[r]]
            assert v[0] == oid and v[4] == cur
            assert v[5:10] == [it["id"], it["article_id"], it["title"], it["quantity"], float(D(it["price"]))]
            assert (D(v[10]), D(v[11])) == (D(it["vat"]), D(it["commission"]))
            assert v[12] == float(exp["lines"][n])  # exact: no float drift in the written value
            for c in (rows[r][1], rows[r][9], rows[r][12]):
                if c.value is not None:
                    assert c.number_format == "#,##0.00" and isinstance(c.value, (int, float))
            if n == 0:
                assert v[1] == float(exp["cod"]) and v[2] == wire["purchase_id"]
                assert v[3] == period["delivered_at"][oid]
                assert [dec(x) for x in v[13:17]] == [dec(wire.get(k, 0)) for k in
                                                      ("delivery_price", "cod_price", "discount")] + [exp["total"]]
                assert v[16] == float(exp["total"])
            else:
                assert v[1] is None and v[2] is None and v[3] is None and v[13:17] == [None] * 4
            r += 1
        t = per_currency[cur]
        t["orders"] += 1
        t["cod_orders"] += 1 if exp["cod"] else 0
        t["items"] += exp["items"]
        t["delivery"] += D(wire.get("delivery_price"))
        t["cod_fees"] += D(wire.get("cod_price"))
        t["discounts"] += D(wire.get("discount"))
        t["total"] += exp["total"]
        t["cod"] += exp["cod"]
    assert [c.value for c in rows[r]] == [None] * len(HEADER)
    totals = [[c.value for c in row] for row in rows[r + 1:]]
    assert [t[0] for t in totals] == [f"Total {cur}" for cur in sorted(per_currency)] == ["Total CZK", "Total EUR"]
    for t in totals:
        e = per_currency[t[4]]
        assert t[1] == float(e["cod"])
        assert t[7] == f"{e['orders']} order(s)"
        assert t[12:17] == [float(e[k]) for k in ("items", "delivery", "cod_fees", "discounts", "total")]
    assert per_currency["CZK"]["cod_orders"] == 1  # the COD order is marked by a non-zero COD amount

    summary = [[c.value for c in row] for row in wb["Summary"].iter_rows()]
    assert summary[0] == ["Currency", "Orders", "COD orders", "Items", "Delivery", "COD fees", "Discounts",
                          "Order total", "COD amount"]
    for row, cur in zip(summary[1:3], ("CZK", "EUR")):
        e = per_currency[cur]
        assert row == [cur, e["orders"], e["cod_orders"]] + [float(e[k]) for k in
                                                            ("items", "delivery", "cod_fees", "discounts", "total",
                                                             "cod")]
    assert summary[4][:2] == ["All currencies", 3]
    assert summary[5][:2] == ["Period", "2026-11-01 to 2026-11-15"]
    assert summary[7][:2] == ["To check", 1]

    check = [[c.value for c in row] for row in wb["Check"].iter_rows()]
    assert check[0] == ["Order ID", "MALL status", "Problem", "What to do"]
    assert len(check) == 2 and check[1][:2] == [period["missing"], "delivered"]
    assert "delivered_at" in check[1][2]


def test_a_one_day_period_and_an_empty_one(period, cli, tmp_path):
    out = tmp_path / "day.xlsx"
    assert cli("export", "billing", "--from", "2026-11-16", "--to", "2026-11-16", "-o", str(out)).exit_code == 0
    rows = list(load_workbook(out)["Billing"].iter_rows(min_row=2, values_only=True))
    assert rows[0][3] == "2026-11-16 00:00:00"  # 00:00:00 is the first second of its day

    empty = tmp_path / "empty.xlsx"
    result = cli("export", "billing", "--from", "2025-01-01", "--to", "2025-01-31", "-o", str(empty))
    assert result.exit_code == 0 and "nothing delivered" in result.stdout
    wb = load_workbook(empty)
    assert [r for r in wb["Billing"].iter_rows(min_row=2, values_only=True)] == []
    assert [c.value for c in wb["Check"]["A"]][1:] == [period["missing"]]  # still unplaceable


def test_money_is_exact_decimal():
    """0.1 + 0.2 style amounts: floats would write 0.30000000000000004."""
    from connector.exports.billing import Billing, BilledOrder
    from connector.mall.models import Order

    order = Order.model_validate(json.loads(json.dumps({
        "id": 1, "status": "delivered", "currency": "EUR", "delivery_price": 0.1, "cod_price": 0.2, "cod": 0,
        "items": [{"id": "X", "quantity": 3, "price": 47.9}, {"id": "Y", "quantity": 1, "price": 0.1}],
    })))
    b = Billing(date(2026, 1, 1), date(2026, 1, 1),
                orders=[BilledOrder(order, "2026-01-01 10:00:00")])
    assert b.totals["EUR"].total == Decimal("144.10")
    assert 47.9 * 3 + 0.1 + 0.1 + 0.2 != 144.1  # the float way drifts
    assert b.totals["EUR"].items == Decimal("143.80")


def test_bad_input(cli, tmp_path):
    cases = [
        (("--from", "2026-11-15", "--to", "2026-11-01"), "Invalid value for '--to': 2026-11-01 is before --from"),
        (("--from", "2026-11-31", "--to", "2026-12-01"), "--from"),
        (("--from", "1.11.2026", "--to", "2026-12-01"), "--from"),
        (("--from", "2026-11-01", "--to", "2026-11-15", "-o", str(tmp_path / "b.csv")), "must end in .xlsx"),
        (("--from", "2026-11-01", "--to", "2026-11-15", "-o", str(tmp_path / "no" / "b.xlsx")), "does not exist"),
        (("--from", "2026-11-01", "-o", str(tmp_path / "b.xlsx")), "Missing option '--to'"),
    ]
    for args, needle in cases:
        if "-o" not in args:
            args = (*args, "-o", str(tmp_path / "b.xlsx"))
        result = cli("export", "billing", *args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
    assert not list(tmp_path.glob("b.*")) and not list(tmp_path.glob(".b.*"))
