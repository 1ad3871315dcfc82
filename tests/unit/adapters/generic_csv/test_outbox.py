"""The outbox: hidden temp file, atomic publish, idempotence, exact columns, formula guard."""

from __future__ import annotations

import csv
import os

import pytest

from adapters.base import HandoffError, MallChange, NewOrder, NewOrderItem
from adapters.shared.outbox import CHANGE_COLUMNS, ORDER_COLUMNS, Outbox, safe_cell

ORDER_HEADER = ("mall_order_id,purchase_id,status,shop_status,created_at,ship_date,delivery_date,customer_name,"
                "company,street,city,zip,country,phone,email,delivery_method,branch_id,payment_type,cod,"
                "delivery_price,currency,item_id,article_id,title,quantity,price,vat")
CHANGE_HEADER = "mall_order_id,mall_status,shop_status,changed_at,branch_id,note"


def order(**kw) -> NewOrder:
    base = dict(
        mall_order_id=1001, purchase_id=555, status="open", shop_status="new", created_at="2026-11-26 10:00:00",
        ship_date="2026-11-27", delivery_date=None, customer_name="Jana Nováková", company="", street="Dlouhá 1",
        city="Praha", zip="110 00", country="CZ", phone="+420 777 123 456", email="jana@example.cz",
        delivery_method="PPL", branch_id=None, payment_type="cod", cod=1299.9, delivery_price=79.0, currency="CZK",
        items=(NewOrderItem("A1", 42, "Hrnek, modrý", 2, 199.5, 21.0), NewOrderItem("B2", None, "Talíř", 1, 900.9, 21.0)),
    )
    base.update(kw)
    return NewOrder(**base)


def read_rows(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_columns_are_the_contract():
    assert ",".join(ORDER_COLUMNS) == ORDER_HEADER
    assert ",".join(CHANGE_COLUMNS) == CHANGE_HEADER


def test_stage_writes_hidden_temp_then_publish_renames(tmp_path):
    box = Outbox(tmp_path / "outbox")  # created on first stage
    name = "orders-20261126T101500Z-000042"
    temp = box.stage(name, "orders", [order()])
    assert temp == tmp_path / "outbox" / f".{name}.csv.tmp"
    assert os.listdir(tmp_path / "outbox") == [f".{name}.csv.tmp"]  # invisible to a *.csv importer
    assert box.publish(name) is True
    assert os.listdir(tmp_path / "outbox") == [f"{name}.csv"]
    assert box.publish(name) is False  # already published: nothing to do
    assert os.listdir(tmp_path / "outbox") == [f"{name}.csv"]


def test_restage_overwrites_temp(tmp_path):
    box = Outbox(tmp_path)
    box.stage("changes-1", "changes", [MallChange(1, "cancelled", "", "2026-11-26 10:00:00", None, "a")])
    box.stage("changes-1", "changes", [MallChange(2, "cancelled", "", "2026-11-26 10:00:00", None, "b")])
    assert box.publish("changes-1")
    assert [r[0] for r in read_rows(tmp_path / "changes-1.csv")] == ["mall_order_id", "2"]


def test_orders_file_one_row_per_item(tmp_path):
    box = Outbox(tmp_path)
    box.stage("orders-1", "orders", [order(), order(mall_order_id=1002, items=())])
    box.publish("orders-1")
    raw = (tmp_path / "orders-1.csv").read_bytes()
    assert raw.startswith(ORDER_HEADER.encode() + b"\r\n")
    rows = read_rows(tmp_path / "orders-1.csv")
    assert len(rows) == 1 + 2 + 1  # header, two items, one item-less order
    first = dict(zip(rows[0], rows[1]))
    assert first["mall_order_id"] == "1001" and first["purchase_id"] == "555"
    assert first["customer_name"] == "Jana Nováková" and first["branch_id"] == "" and first["delivery_date"] == ""
    assert first["cod"] == "1299.9" and first["delivery_price"] == "79"
    assert (first["item_id"], first["article_id"], first["title"], first["quantity"], first["price"], first["vat"]) == \
        ("A1", "42", "Hrnek, modrý", "2", "199.5", "21")
    second = dict(zip(rows[0], rows[2]))
    assert second["item_id"] == "B2" and second["article_id"] == "" and second["price"] == "900.9"
    assert second["mall_order_id"] == "1001"
    lone = dict(zip(rows[0], rows[3]))
    assert lone["mall_order_id"] == "1002" and lone["item_id"] == "" and lone["title"] == ""


def test_changes_file(tmp_path):
    box = Outbox(tmp_path)
    box.stage("changes-7", "changes", [MallChange(1001, "cancelled", "Stornována", "2026-11-26 10:00:00", 12, "cancelled on MALL")])
    box.publish("changes-7")
    assert read_rows(tmp_path / "changes-7.csv") == [
        CHANGE_HEADER.split(","),
        ["1001", "cancelled", "Stornována", "2026-11-26 10:00:00", "12", "cancelled on MALL"],
    ]


@pytest.mark.parametrize("value,expected", [
    ("=HYPERLINK(\"http://evil\")", "'=HYPERLINK(\"http://evil\")"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("@SUM(1+1)", "'@SUM(1+1)"),
    ("\t=1+1", "'\t=1+1"),
    ("+420 777 123 456", "+420 777 123 456"),  # a phone number stays a phone number
    ("-50", "-50"),
    ("Nováková = hvězda", "Nováková = hvězda"),
    (None, ""),
])
def test_formula_injection_guard(value, expected):
    assert safe_cell(value) == expected


def test_formula_guard_applied_to_text_fields_in_file(tmp_path):
    box = Outbox(tmp_path)
    evil = order(customer_name="=cmd|' /C calc'!A0", items=(NewOrderItem("@x", 1, "+SUM(A1)", 1, 10.0, 21.0),))
    box.stage("orders-2", "orders", [evil])
    box.publish("orders-2")
    rows = read_rows(tmp_path / "orders-2.csv")
    row = dict(zip(rows[0], rows[1]))
    assert row["customer_name"] == "'=cmd|' /C calc'!A0"
    assert row["item_id"] == "'@x" and row["title"] == "'+SUM(A1)"
    assert row["phone"] == "+420 777 123 456"


def test_wrong_record_kind_and_bad_names_rejected(tmp_path):
    box = Outbox(tmp_path)
    with pytest.raises(ValueError):
        box.stage("x", "orders", [MallChange(1, "cancelled", "", "", None, "")])
    with pytest.raises(ValueError):
        box.stage("x", "refunds", [])
    for bad in ("../escape", ".hidden", "a/b", ""):
        with pytest.raises(ValueError):
            box.stage(bad, "changes", [])


def test_unwritable_outbox_is_handoff_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(HandoffError, match="cannot write"):
        Outbox(blocker / "outbox").stage("orders-1", "orders", [order()])


def test_stage_and_publish_fsync_file_and_folder(tmp_path, monkeypatch):
    """After "staged" the temp file must survive a crash (else a restart takes its absence for
    "already published"), and after "done" the rename must: both need the folder fsynced."""
    import stat

    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    box = Outbox(tmp_path)
    box.stage("orders-3", "orders", [order()])
    assert synced == ["file", "dir"]
    box.publish("orders-3")
    assert synced == ["file", "dir", "dir"]
