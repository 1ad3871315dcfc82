"""The XML order export parsed into ShopOrderState rows: CZ/SK names, encodings, fields, errors."""

from __future__ import annotations

import io
from datetime import datetime

import pytest

from adapters.base import FeedUnavailable, ShopOrderState
from adapters.fastcentrik import parse_orders_xml
from connector.config import FastCentrikFields
from tests.unit.adapters.fastcentrik.conftest import BRATISLAVA, FIXTURES, PRAGUE


def parse(data: bytes | str, *, fields: FastCentrikFields = FastCentrikFields(), tz=PRAGUE, encoding=None):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return parse_orders_xml(io.BytesIO(data), source="export.xml", fields=fields, tz=tz, encoding=encoding)


def test_czech_utf8_export_end_to_end():
    with open(FIXTURES / "orders_cz_utf8.xml", "rb") as f:
        parsed = parse_orders_xml(f, source="orders_cz_utf8.xml", fields=FastCentrikFields(), tz=PRAGUE)
    assert parsed.read.rows == [
        ShopOrderState(1000000101, "nevyřízená", shop_order_id="2025000101", line=1),
        ShopOrderState(1000000102, "Vyřizuje se", shop_order_id="2025000102", location="Regál B-12", line=2),
        ShopOrderState(1000000103, "vyřízená", shop_order_id="2025000103", carrier="Zásilkovna",
                       tracking_number="Z1234567890", tracking_url=None, line=3),
        # order 4 is the shop's own (empty MALL_ORDER_ID): skipped, counted
        ShopOrderState(1000000105, "stornováno", shop_order_id="2025000105", line=5),  # attributes
        ShopOrderState(1000000106, "částečně vyřízená", shop_order_id="2025000106", line=6),  # lower-case tags
        ShopOrderState(
            1000000107, "vyřízená", shop_order_id="2025000107", carrier="Česká pošta",
            tracking_number="DR0123456789C",
            tracking_url="https://www.postaonline.cz/trackandtrace/-/zasilka/cislo?parcelNumbers=DR0123456789C",
            delivered_at=datetime(2025, 3, 14, 10, 15, tzinfo=PRAGUE),
            first_delivery_attempt=datetime(2025, 3, 13, 16, 40, tzinfo=PRAGUE), line=7,
        ),
    ]
    assert parsed.non_mall_orders == 1
    (problem,) = parsed.read.problems
    assert problem.line == 8
    assert str(problem).startswith("orders_cz_utf8.xml:8: ORDER #8: ")
    assert "10000x0108" in problem.message


def test_slovak_cp1250_export_nested_in_a_wrapper():
    with open(FIXTURES / "orders_sk_cp1250.xml", "rb") as f:
        head = f.read(60)
        assert b"windows-1250" in head and "Vybavená".encode("utf-8") not in f.read()  # really cp1250 bytes
    with open(FIXTURES / "orders_sk_cp1250.xml", "rb") as f:
        parsed = parse_orders_xml(f, source="sk.xml", fields=FastCentrikFields(), tz=BRATISLAVA)
    rows = {r.mall_order_id: r for r in parsed.read.rows}
    assert [rows[i].status for i in sorted(rows)] == [
        "Nevybavená", "Čiastočne vybavená", "Vybavuje sa", "Vybavená", "Stornovaná"]
    shipped = rows[2000000504]
    assert (shipped.carrier, shipped.tracking_number) == ("Slovenská pošta", "RR123456789SK")
    assert shipped.delivered_at == datetime(2025, 3, 14, 9, 30, tzinfo=BRATISLAVA)
    assert shipped.delivered_at.utcoffset().total_seconds() == 3600
    assert parsed.non_mall_orders == 1
    assert parsed.read.problems == []


def test_configured_element_names_namespaces_and_attributes():
    fields = FastCentrikFields(order="Objednavka", mall_order_id="MallId", status="Stav",
                               shop_order_id="Cislo", tracking_number="Zasilka", carrier="Dopravce")
    xml = """<?xml version="1.0" encoding="utf-8"?>
<fc:Export xmlns:fc="urn:fastcentrik:orders">
  <fc:Objednavka Cislo="77" MALLID="3000000001"><fc:Stav>Vyřízená</fc:Stav>
    <fc:Dopravce>PPL</fc:Dopravce><fc:Zasilka> 40857241530 </fc:Zasilka></fc:Objednavka>
  <fc:OBJEDNAVKA><fc:mallid>3000000002</fc:mallid><fc:stav>stornováno</fc:stav></fc:OBJEDNAVKA>
  <ORDER><MALL_ORDER_ID>3000000003</MALL_ORDER_ID><STATUS>vyřízená</STATUS></ORDER>
</fc:Export>"""
    parsed = parse(xml, fields=fields)
    assert parsed.read.rows == [
        ShopOrderState(3000000001, "Vyřízená", shop_order_id="77", carrier="PPL",
                       tracking_number="40857241530", line=1),
        ShopOrderState(3000000002, "stornováno", line=2),
    ]  # <ORDER> is not the configured order element here
    assert parsed.read.problems == []


def test_child_element_wins_only_when_attribute_is_empty():
    xml = ('<ORDERS><ORDER STATUS="" MALL_ORDER_ID="5"><STATUS>vyřízená</STATUS><STATUS>ignored</STATUS>'
           '<CARRIER><NAME>nested values are not read</NAME></CARRIER></ORDER></ORDERS>')
    (row,) = parse(xml).read.rows
    assert (row.status, row.carrier) == ("vyřízená", None)


def test_bad_values_are_reported_with_the_order_number_and_skipped():
    xml = """<ORDERS>
<ORDER><MALL_ORDER_ID>1</MALL_ORDER_ID><STATUS>vyřízená</STATUS></ORDER>
<ORDER><MALL_ORDER_ID>2</MALL_ORDER_ID></ORDER>
<ORDER><MALL_ORDER_ID>3</MALL_ORDER_ID><STATUS>vyřízená</STATUS><DELIVERED_AT>včera</DELIVERED_AT></ORDER>
<ORDER><MALL_ORDER_ID>-4</MALL_ORDER_ID><STATUS>vyřízená</STATUS></ORDER>
<ORDER><MALL_ORDER_ID>5</MALL_ORDER_ID><STATUS>vyřizuje se</STATUS></ORDER>
</ORDERS>"""
    read = parse(xml).read
    assert [r.mall_order_id for r in read.rows] == [1, 5]
    assert [(p.line, p.message.split(":")[0]) for p in read.problems] == [
        (2, "ORDER #2"), (3, "ORDER #3"), (4, "ORDER #4")]
    assert "status is empty" in read.problems[0].message
    assert "včera" in read.problems[1].message and "delivered_at" in read.problems[1].message


def test_same_order_twice_last_one_counts():
    xml = ("<ORDERS><ORDER><MALL_ORDER_ID>9</MALL_ORDER_ID><STATUS>vyřizuje se</STATUS></ORDER>"
           "<ORDER><MALL_ORDER_ID>9</MALL_ORDER_ID><STATUS>vyřízená</STATUS></ORDER></ORDERS>")
    read = parse(xml).read
    assert [(r.mall_order_id, r.status) for r in read.rows] == [(9, "vyřízená")]
    assert len(read.problems) == 1 and "appears again" in read.problems[0].message


def test_cp1250_without_declaration_needs_the_configured_encoding():
    data = "<ORDERS><ORDER><MALL_ORDER_ID>1</MALL_ORDER_ID><STATUS>vyřízená</STATUS></ORDER></ORDERS>".encode("cp1250")
    with pytest.raises(FeedUnavailable) as e:
        parse(data)
    assert "export.xml: not well-formed XML at line 1" in str(e.value)
    assert 'encoding, e.g. "cp1250"' in str(e.value)
    (row,) = parse(data, encoding="cp1250").read.rows
    assert row.status == "vyřízená"


def test_declared_encoding_wins_over_the_configured_one():
    data = '<?xml version="1.0" encoding="UTF-8"?><ORDERS><ORDER MALL_ORDER_ID="1" STATUS="vyřízená"/></ORDERS>'
    (row,) = parse(data, encoding="cp1250").read.rows
    assert row.status == "vyřízená"
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><ORDERS><ORDER MALL_ORDER_ID="2" STATUS="Vybavená"/></ORDERS>'
    (row,) = parse(utf16.encode("utf-16"), encoding="cp1250").read.rows
    assert (row.mall_order_id, row.status) == (2, "Vybavená")


@pytest.mark.parametrize("data, where", [
    ("<ORDERS>\n<ORDER><STATUS>x</ORDER>\n</ORDERS>", "line 2, column 19: mismatched tag"),
    ("<ORDERS>\n<ORDER><MALL_ORDER_ID>1</MALL_ORDER_ID>", "line 2, column 40: no element found"),  # truncated
    ("<ORDERS><ORDER a='1' a='2'/></ORDERS>", "line 1, column 22: duplicate attribute"),
    ("<ORDERS>&nbsp;</ORDERS>", "line 1, column 9: undefined entity"),
    ("mall_order_id;status\n1;vyřízená\n", "line 1, column 14: not well-formed"),
    ("", "no element found"),
])
def test_malformed_xml_is_unavailable_naming_source_and_position(data, where):
    with pytest.raises(FeedUnavailable) as e:
        parse(data)
    assert str(e.value).startswith("export.xml: not well-formed XML at ")
    assert where in str(e.value)


def test_wrong_order_element_name_is_unavailable_not_an_empty_shop():
    xml = "<ORDERS><OBJEDNAVKA><MALL_ORDER_ID>1</MALL_ORDER_ID><STATUS>x</STATUS></OBJEDNAVKA></ORDERS>"
    with pytest.raises(FeedUnavailable, match=r"found MALL_ORDER_ID outside any <ORDER> element; "
                                              r"check \[shop.fastcentrik.fields\] order"):
        parse(xml)
    with pytest.raises(FeedUnavailable, match="outside any <ORDER>"):
        parse('<ORDERS><OBJEDNAVKA mall_order_id="1" STATUS="x"/></ORDERS>')
    with pytest.raises(FeedUnavailable, match="got a web page, not the order export"):
        parse("<html><body><h1>Přihlášení</h1></body></html>")  # a login page served instead of the export


def test_export_without_orders_is_empty_not_an_error():
    for xml in ("<ORDERS/>", '<?xml version="1.0"?>\n<ORDERS>\n</ORDERS>\n',
                "<EXPORT><INFO><SHOP>Obchod</SHOP></INFO><ORDERS/></EXPORT>"):
        parsed = parse(xml)
        assert parsed.read.rows == [] and parsed.read.problems == [] and parsed.non_mall_orders == 0
