"""FastCentrikAdapter: formats (XML, CSV, XLSX, auto), files and URLs, outbox, manual steps."""

from __future__ import annotations

import os
import shutil
import socket
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest

from adapters import make_adapter as make_configured_adapter
from adapters.base import FeedUnavailable, MallChange, NewOrder, NewOrderItem
from adapters.fastcentrik import FastCentrikAdapter, detect_format
from connector.config import ConfigError, FastCentrikConfig, FastCentrikFields, config_from_dict
from tests.unit.adapters.fastcentrik.conftest import FIXTURES, PRAGUE, make_adapter


def ids(feed) -> list[int]:
    return [r.mall_order_id for r in feed.rows]


# -- files and formats -------------------------------------------------------------------------------


def test_xml_file_by_suffix_with_fingerprint(tmp_path):
    adapter = make_adapter(FIXTURES / "orders_cz_utf8.xml", tmp_path)
    feed = adapter.read_feed()
    assert ids(feed) == [1000000101, 1000000102, 1000000103, 1000000105, 1000000106, 1000000107]
    assert adapter.last_non_mall_orders == 1
    assert feed.fingerprint and feed.fingerprint.startswith("file:")
    again = adapter.read_feed(previous_fingerprint=feed.fingerprint)
    assert again.unchanged and again.rows == [] and again.fingerprint == feed.fingerprint


def test_file_still_being_written_is_not_ready(tmp_path):
    path = tmp_path / "export.xml"
    shutil.copy(FIXTURES / "orders_cz_utf8.xml", path)
    os.utime(path, None)  # modified just now
    feed = make_adapter(path, tmp_path, settle_s=30).read_feed()
    assert feed.not_ready and feed.rows == []


def test_csv_cp1250_semicolons(tmp_path):
    adapter = make_adapter(FIXTURES / "orders_cz_cp1250.csv", tmp_path, encoding="cp1250")
    feed = adapter.read_feed()
    rows = {r.mall_order_id: r for r in feed.rows}
    assert sorted(rows) == [1000000201, 1000000202, 1000000204, 1000000205]
    assert rows[1000000201].status == "vyřizuje se"
    assert (rows[1000000202].carrier, rows[1000000202].tracking_number) == ("PPL", "40857241530")
    assert rows[1000000205].delivered_at == datetime(2025, 12, 31, 23, 59, tzinfo=PRAGUE)
    assert rows[1000000201].line == 2
    assert adapter.last_non_mall_orders == 1  # line 4: empty MALL_ORDER_ID
    (problem,) = feed.problems
    assert problem.line == 7 and "zítra" in problem.message


def test_csv_in_the_wrong_encoding_says_so(tmp_path):
    with pytest.raises(FeedUnavailable, match="cp1250"):
        make_adapter(FIXTURES / "orders_cz_cp1250.csv", tmp_path).read_feed()  # default utf-8


def write_xlsx(path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["MALL_ORDER_ID", "ORDER_ID", "Status", "CARRIER", "TRACKING_NUMBER", "DELIVERED_AT"])
    ws.append([1000000301, "FC-301", "Vybavuje sa", None, None, None])
    ws.append([1000000302.0, "FC-302", "Vybavená", "Packeta", "Z 123 456", datetime(2025, 3, 1, 12, 30)])
    ws.append([None, "FC-303", "Vybavená", None, None, None])  # the shop's own order
    ws.append(["", "", "", "", "", ""])  # a blank row a spreadsheet leaves behind
    ws.append(["1000000304", "FC-304", "Stornovaná", None, None, None])
    wb.save(path)


def test_xlsx_generated_with_openpyxl(tmp_path):
    path = tmp_path / "export.xlsx"
    write_xlsx(path)
    adapter = make_adapter(path, tmp_path)
    feed = adapter.read_feed()
    rows = {r.mall_order_id: r for r in feed.rows}
    assert sorted(rows) == [1000000301, 1000000302, 1000000304]
    assert rows[1000000302].status == "Vybavená" and rows[1000000302].tracking_number == "Z 123 456"
    assert rows[1000000302].delivered_at == datetime(2025, 3, 1, 12, 30, tzinfo=PRAGUE)
    assert rows[1000000304].status == "Stornovaná"
    assert feed.problems == []
    assert adapter.last_non_mall_orders == 1


@pytest.mark.parametrize("name, fmt", [("orders_cz_utf8.xml", "xml"), ("orders_sk_cp1250.xml", "xml"),
                                       ("orders_cz_cp1250.csv", "csv"), (None, "xlsx")])
def test_auto_format_by_content_when_the_name_says_nothing(tmp_path, name, fmt):
    path = tmp_path / "export"  # no suffix, like a downloaded export URL
    if name:
        shutil.copy(FIXTURES / name, path)
    else:
        write_xlsx(tmp_path / "x.xlsx")
        shutil.copy(tmp_path / "x.xlsx", path)
    assert detect_format(str(path), path.read_bytes()[:512]) == fmt
    feed = make_adapter(path, tmp_path, encoding="cp1250").read_feed()
    assert len(feed.rows) >= 3


def test_detect_format_order_suffix_content_type_bytes():
    assert detect_format("https://shop.cz/export.aspx?key=1", b"<?xml ") == "xml"
    assert detect_format("https://shop.cz/orders.csv?key=1", b"<?xml ") == "csv"  # the suffix wins
    assert detect_format("/data/ORDERS.XLSX", b"") == "xlsx"
    assert detect_format("https://shop.cz/e", b"a;b", "application/xml; charset=utf-8") == "xml"
    assert detect_format("https://shop.cz/e", b"<", "text/csv") == "csv"
    assert detect_format("https://shop.cz/e", b"",
                         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet") == "xlsx"
    assert detect_format("https://shop.cz/e", b"\xef\xbb\xbf\r\n  <ORDERS>") == "xml"
    assert detect_format("https://shop.cz/e", "<".encode("utf-16")) == "xml"
    assert detect_format("https://shop.cz/e", b"PK\x03\x04...") == "xlsx"
    assert detect_format("https://shop.cz/e", b"MALL_ORDER_ID;STATUS") == "csv"


def test_explicit_format_wins_over_the_suffix(tmp_path):
    path = tmp_path / "orders.txt.csv"
    shutil.copy(FIXTURES / "orders_cz_utf8.xml", path)
    assert len(make_adapter(path, tmp_path, format="xml").read_feed().rows) == 6
    with pytest.raises(FeedUnavailable, match="no column 'MALL_ORDER_ID'"):
        make_adapter(path, tmp_path, format="csv").read_feed()


def test_configured_field_names_apply_to_csv_too(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("Obj;MALL;Stav\n1;11;vyřízená\n2;;vyřízená\n", encoding="utf-8")
    fields = FastCentrikFields(shop_order_id="Obj", mall_order_id="mall", status="STAV")
    adapter = make_adapter(path, tmp_path, fields=fields)
    (row,) = adapter.read_feed().rows
    assert (row.mall_order_id, row.shop_order_id, row.status) == (11, "1", "vyřízená")
    assert adapter.last_non_mall_orders == 1


def test_missing_file_is_unavailable(tmp_path):
    with pytest.raises(FeedUnavailable, match="file not found"):
        make_adapter(tmp_path / "nothing.xml", tmp_path).read_feed()


def test_source_is_required():
    with pytest.raises(ConfigError, match="shop.fastcentrik.source: not set: the order export URL"):
        FastCentrikAdapter(FastCentrikConfig(), PRAGUE)


def test_make_adapter_builds_it_from_the_config_file(tmp_path):
    cfg = config_from_dict({"shop": {"adapter": "fastcentrik", "timezone": "Europe/Bratislava",
                                     "fastcentrik": {"source": "export.xml", "outbox": "fc-out",
                                                     "fields": {"order": "OBJEDNAVKA"}}}},
                           tmp_path / "config.toml")
    adapter = make_configured_adapter(cfg)
    assert isinstance(adapter, FastCentrikAdapter) and adapter.name == "fastcentrik"
    assert adapter.config.fields.order == "OBJEDNAVKA" and str(adapter.tz) == "Europe/Bratislava"
    assert adapter.config.source == str(tmp_path / "export.xml")


# -- over HTTP ----------------------------------------------------------------------------------------


def test_export_url_with_basic_auth(export_server, tmp_path):
    adapter = make_adapter(export_server.url, tmp_path, auth_user=export_server.user,
                           auth_password=export_server.password)
    feed = adapter.read_feed()
    assert len(feed.rows) == 6 and feed.fingerprint.startswith("sha256:")
    assert export_server.requests[0]["Authorization"].startswith("Basic ")
    assert adapter.read_feed(previous_fingerprint=feed.fingerprint).unchanged


def test_export_url_serving_cp1250_xml_and_csv(export_server, tmp_path):
    adapter = make_adapter(export_server.url, tmp_path, auth_user=export_server.user,
                           auth_password=export_server.password, encoding="cp1250")
    export_server.body = (FIXTURES / "orders_sk_cp1250.xml").read_bytes()
    assert [r.status for r in adapter.read_feed().rows][-1] == "Stornovaná"
    export_server.body = (FIXTURES / "orders_cz_cp1250.csv").read_bytes()
    export_server.content_type = "text/csv"
    assert len(adapter.read_feed().rows) == 4


def test_export_url_wrong_password(export_server, tmp_path):
    adapter = make_adapter(export_server.url, tmp_path, auth_user=export_server.user, auth_password="wrong")
    with pytest.raises(FeedUnavailable) as e:
        adapter.read_feed()
    assert "HTTP 401" in str(e.value) and "check auth_user / auth_password" in str(e.value)
    assert "k3y-0123" not in str(e.value)  # the export key in the query is redacted


def test_unreachable_url_is_unavailable(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    adapter = make_adapter(f"http://127.0.0.1:{port}/export.aspx?key=s3cr3t", tmp_path, timeout_s=1.0)
    with pytest.raises(FeedUnavailable) as e:  # refused connection: no wait (pytest's timeout guards a hang)
        adapter.read_feed()
    assert str(e.value).startswith(f"http://127.0.0.1:{port}/export.aspx?key=***: cannot download")
    assert "s3cr3t" not in str(e.value)


# -- outbox ---------------------------------------------------------------------------------------------

ORDER = NewOrder(
    mall_order_id=1000000401, purchase_id=77, status="open", shop_status="nevyřízená",
    created_at="2025-03-14 08:00:00", ship_date=None, delivery_date=None, customer_name="Jiří Dvořák",
    company="", street="Údolní 7", city="Brno", zip="60200", country="CZ", phone="+420 777 123 456",
    email="jiri@example.cz", delivery_method="ZASILKOVNA", branch_id=1234, payment_type="COD", cod=1299.9,
    delivery_price=79.0, currency="CZK",
    items=(NewOrderItem("A1", 5551, "Žluťoučký kůň", 1, 1220.9, 21.0),),
)


def change(status: str, shop_status: str = "", branch_id=None, note: str = "") -> MallChange:
    return MallChange(mall_order_id=1000000401, mall_status=status, shop_status=shop_status,
                      changed_at="2025-03-14 09:00:00", branch_id=branch_id, note=note)


def test_outbox_stage_then_publish(tmp_path):
    adapter = make_adapter(FIXTURES / "orders_cz_utf8.xml", tmp_path)
    outbox = tmp_path / "outbox"
    adapter.stage_handoff("orders-0001", "orders", [ORDER])
    assert [p.name for p in outbox.iterdir()] == [".orders-0001.csv.tmp"]
    assert adapter.publish_handoff("orders-0001") is True
    assert [p.name for p in outbox.iterdir()] == ["orders-0001.csv"]
    text = (outbox / "orders-0001.csv").read_text(encoding="utf-8")
    assert "1000000401" in text and "Žluťoučký kůň" in text and "nevyřízená" in text
    assert adapter.publish_handoff("orders-0001") is False  # already published
    adapter.stage_handoff("changes-0001", "changes", [change("cancelled", "stornováno")])
    assert adapter.publish_handoff("changes-0001")
    assert "stornováno" in (outbox / "changes-0001.csv").read_text(encoding="utf-8")


# -- manual steps ---------------------------------------------------------------------------------------


def test_manual_steps_wording(tmp_path):
    adapter = make_adapter(FIXTURES / "orders_cz_utf8.xml", tmp_path)
    steps = adapter.manual_steps
    assert steps(ORDER) == (f"New MALL order 1000000401: create it in FastCentrik as nevyřízená "
                            f"(see the outbox file in {tmp_path / 'outbox'})")
    from dataclasses import replace
    assert "create it in FastCentrik as Nevybavená" in steps(replace(ORDER, shop_status="Nevybavená"))
    assert "create it in FastCentrik as nevyřízená" in steps(replace(ORDER, shop_status=""))

    assert steps(change("cancelled", "stornováno", note="cancelled on MALL")) == (
        "MALL order 1000000401 was cancelled by the customer on MALL: set it to stornováno in FastCentrik "
        "and do not ship it")
    assert "set it to Stornovaná in FastCentrik" in steps(change("cancelled", "Stornovaná"))
    assert "set it to stornováno" in steps(change("cancelled"))  # no mapping: the CZ name

    delivered = steps(change("delivered", "vyřízená"))
    assert delivered.startswith("MALL order 1000000401 was delivered") and "make sure it is vyřízená" in delivered
    returned = steps(change("returned"))
    assert "coming back to you undelivered" in returned and "put the goods back in stock" in returned
    lost = steps(change("lost"))
    assert "lost by the MALL Delivery carrier" in lost and "do not send it again" in lost

    assert steps(change("shipping", "vyřizuje se", branch_id=4321,
                        note="pickup branch changed from 1234 to 4321")) == (
        "MALL order 1000000401: pickup branch changed to 4321: send the parcel to the new branch "
        "(print a new label if the old one is already printed)")
    assert steps(change("shipped", "vyřízená", branch_id=4321, note="shipped (set on MALL)")) == (
        "MALL order 1000000401 is now shipped on MALL: set it to vyřízená in FastCentrik")
    assert steps(change("shipping")) == "MALL order 1000000401 is now shipping on MALL: check the order in FastCentrik"
