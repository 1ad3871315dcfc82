"""`mall-connector export picking`: XLSX and CSV read back cell by cell."""

from __future__ import annotations

import csv
import io
from collections import defaultdict

import pytest
from openpyxl import load_workbook

from connector.exports.common import natural_key

PICK_HEADER = ["Location", "Item ID", "Article ID", "Title", "Quantity", "Orders"]
PACK_HEADER = ["Order ID", "Ship date", "Customer", "Delivery", "Branch", "Item ID", "Title", "Quantity"]


@pytest.fixture
def warehouse(mall, ledger):
    """Orders to pick (open and shipping, some with feed locations), others that must stay out."""
    a, b, c = mall.create(3)
    pickup = mall.create(1, "pickup")[0]
    cod = mall.create(1, "cod")[0]
    shipped = mall.create(1)[0]
    test = mall.create(1, "test")[0]
    mall.to_shipping(b)
    mall.to_shipped(shipped)
    mall.record(a, b, c, pickup, cod, shipped, test)
    with ledger.write() as c_:
        ledger.orders.ensure(c_, a, shop_location="B-10", ship_date="2026-12-03")
    with ledger.write() as c_:
        ledger.orders.ensure(c_, c, shop_location="A-2", ship_date="2026-12-01")
    with ledger.write() as c_:
        ledger.orders.ensure(c_, pickup, shop_location="A-10", ship_date="2026-12-02")
    with ledger.write() as c_:
        ledger.orders.ensure(c_, b, ship_date="2026-12-01")
    with ledger.write() as c_:
        ledger.orders.ensure(c_, cod, ship_date="2026-12-01")
    # Seen in the shop feed, never fetched from MALL: no items known.
    with ledger.write() as c_:
        ledger.orders.ensure(c_, 99900000102, mall_status="open", shop_status="new")
    picked = [a, b, c, pickup, cod]
    return {"picked": picked, "shipped": shipped, "test": test, "no_snapshot": 99900000102,
            "locations": {a: "B-10", c: "A-2", pickup: "A-10"}}


def expected_lines(mall, order_ids, locations):
    """Per product: article, title, total, {order: qty}, first location; from MALL's own data."""
    out = {}
    for oid in order_ids:
        for it in mall.wire(oid)["items"]:
            e = out.setdefault(it["id"], {"article": it["article_id"], "title": it["title"], "qty": 0,
                                          "orders": defaultdict(int), "locs": []})
            e["qty"] += it["quantity"]
            e["orders"][oid] += it["quantity"]
            if oid in locations:
                e["locs"].append(locations[oid])
    return out


def check_picking_rows(rows, mall, w):
    exp = expected_lines(mall, w["picked"], w["locations"])
    assert len(rows) == len(exp)
    for loc, item_id, article, title, qty, orders in rows:
        e = exp[item_id]
        assert (int(article), title, int(qty)) == (e["article"], e["title"], e["qty"])
        pairs = dict(p.split("×") for p in orders.split(", "))
        assert {int(k): int(v) for k, v in pairs.items()} == dict(e["orders"])
        # A product needed at several locations is picked at the first one on the walk.
        assert (loc or None) == (min(e["locs"], key=natural_key) if e["locs"] else None)
    # Walk order: located products first, A-2 < A-10 < B-10, then the rest by item id.
    order = [(r[0] or None, r[1]) for r in rows]
    located = [loc for loc, _ in order if loc]
    assert located == sorted(located, key=lambda x: ("A-2", "A-10", "B-10").index(x))
    assert all(loc for loc, _ in order[:len(located)])
    rest = [item for loc, item in order if not loc]
    assert rest == sorted(rest, key=natural_key)


def test_xlsx_cell_by_cell(mall, cli, warehouse, tmp_path):
    w = warehouse
    out = tmp_path / "picking.xlsx"

    result = cli("export", "picking", "-o", str(out))

    assert result.exit_code == 0, result.output
    assert f"order {w['no_snapshot']} (open) is NOT in this list" in result.stderr
    wb = load_workbook(out)
    assert wb.sheetnames == ["Picking", "Packing"]
    pick, pack = wb["Picking"], wb["Packing"]
    for ws, header in ((pick, PICK_HEADER), (pack, PACK_HEADER)):
        assert [c.value for c in ws[1]] == header
        assert all(c.font.b for c in ws[1])
        assert ws.freeze_panes == "A2"
        assert ws.column_dimensions["D"].width >= 14
    assert pick.column_dimensions["D"].width == 48  # the title column is wide

    values = list(pick.iter_rows(min_row=2, values_only=True))
    blank = values.index((None,) * 6)
    check_picking_rows(values[:blank], mall, w)
    assert values[blank + 1][0] == "Warning"
    assert str(w["no_snapshot"]) in values[blank + 1][1]
    assert pick.cell(row=blank + 3, column=1).font.b

    packed = list(pack.iter_rows(min_row=2, values_only=True))
    # By ship date then id: b, c, cod (all 2026-12-01), pickup (12-02), a (12-03).
    a, b, c, pickup, cod = w["picked"]
    seen = list(dict.fromkeys(r[0] for r in packed))
    assert seen == sorted([b, c, cod]) + [pickup, a]
    for oid in w["picked"]:
        wire = mall.wire(oid)
        mine = [r for r in packed if r[0] == oid]
        assert [(r[5], r[7]) for r in mine] == [(it["id"], it["quantity"]) for it in wire["items"]]
        assert {(r[2], r[3], r[4]) for r in mine} == {(wire["address"]["name"], wire["delivery_method"],
                                                       wire.get("branch_id"))}
    assert w["shipped"] not in seen and w["test"] not in seen


def test_csv_sections_bom_and_semicolons(mall, cli, warehouse, tmp_path):
    w = warehouse
    out = tmp_path / "picking.csv"

    result = cli("export", "picking", "-o", str(out))

    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert "×" in text and "\r\n" in text
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0] == ["Picking"] and rows[1] == PICK_HEADER
    gap = rows.index([])
    check_picking_rows(rows[2:gap], mall, w)
    assert rows[gap + 1] == ["Packing"] and rows[gap + 2] == PACK_HEADER
    gap2 = rows.index([], gap + 1)
    packing = rows[gap + 3:gap2]
    assert sum(int(r[7]) for r in packing) == sum(int(r[4]) for r in rows[2:gap])
    assert rows[gap2 + 1] == ["Warnings"]
    assert str(w["no_snapshot"]) in rows[gap2 + 2][0]


def test_orders_option_picks_exactly_those(mall, cli, warehouse, tmp_path):
    w = warehouse
    out = tmp_path / "few.xlsx"
    wanted = [w["shipped"], w["picked"][0]]

    result = cli("export", "picking", "--orders", f"{wanted[0]}, {wanted[1]},12345", "-o", str(out))

    assert result.exit_code == 0, result.output
    assert "order 12345 is not in the ledger" in result.stderr
    packed = {r[0] for r in load_workbook(out)["Packing"].iter_rows(min_row=2, values_only=True)}
    assert packed == set(wanted)  # a shipped order too: --orders ignores the status


def test_status_filter_and_test_flag(mall, cli, warehouse, tmp_path):
    w = warehouse
    out = tmp_path / "p.xlsx"
    assert cli("export", "picking", "--status", "shipped", "--test", "-o", str(out)).exit_code == 0
    assert {r[0] for r in load_workbook(out)["Packing"].iter_rows(min_row=2, values_only=True)} == {w["shipped"]}
    assert cli("export", "picking", "--status", "open", "--test", "-o", str(out)).exit_code == 0
    packed = {r[0] for r in load_workbook(out)["Packing"].iter_rows(min_row=2, values_only=True)}
    assert w["test"] in packed and w["picked"][1] not in packed  # b is shipping


def test_bad_input(cli, tmp_path):
    cases = [
        (("export", "picking", "-o", str(tmp_path / "p.pdf")), "must end in .xlsx or .csv"),
        (("export", "picking", "-o", str(tmp_path / "missing" / "p.xlsx")), "does not exist"),
        (("export", "picking", "-o", str(tmp_path)), "is a folder"),
        (("export", "picking", "-o", str(tmp_path / "feed.csv" / "p.csv")), "is a file, not a folder"),
        (("export", "picking", "--status", "packed", "-o", str(tmp_path / "p.xlsx")), "'packed' is not a MALL status"),
        (("export", "picking", "--orders", "12a", "-o", str(tmp_path / "p.xlsx")), "'12a' is not a MALL order id"),
        (("export", "picking", "--orders", "1", "--status", "open", "-o", str(tmp_path / "p.xlsx")), "not both"),
        (("export", "picking",), "Missing option '-o'"),
    ]
    for args, needle in cases:
        result = cli(*args)
        assert result.exit_code == 2, args
        assert needle in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
    assert not list(tmp_path.glob("*.xlsx")) and not list(tmp_path.glob(".*tmp"))


def test_natural_key():
    assert sorted(["A-10", "B-1", "A-2", "a-3"], key=natural_key) == ["A-2", "a-3", "A-10", "B-1"]
    assert sorted(["PL-4-174", "104570", "F192621", "99"], key=natural_key) == ["99", "104570", "F192621", "PL-4-174"]
