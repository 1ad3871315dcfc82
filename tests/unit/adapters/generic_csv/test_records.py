"""Parsing table feeds into ShopOrderState rows: encodings, delimiters, columns, bad rows, XLSX."""

from __future__ import annotations

import io
import tracemalloc
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from adapters.base import FeedUnavailable
from adapters.generic_csv import ColumnMap, csv_records, records_to_feed, xlsx_records

PRAGUE = ZoneInfo("Europe/Prague")


def parse(data: bytes | str, encoding: str = "utf-8-sig", columns: ColumnMap = ColumnMap()):
    if isinstance(data, str):
        data = data.encode("utf-8")
    header, rows = csv_records(io.BytesIO(data), source="feed.csv", encoding=encoding)
    return records_to_feed(rows, columns=columns, tz=PRAGUE, source="feed.csv", header=header)


def test_minimal_feed():
    feed = parse("mall_order_id,status\n1001,shipped\n1002,new\n")
    assert [(r.mall_order_id, r.status, r.line) for r in feed.rows] == [(1001, "shipped", 2), (1002, "new", 3)]
    assert feed.problems == []
    r = feed.rows[0]
    assert r.tracking_number is r.carrier is r.delivered_at is r.shop_order_id is r.location is None


def test_all_columns_any_order_unknown_ignored_header_case_free():
    text = (" Status ;Carrier;tracking_url;MALL_ORDER_ID;note;tracking_number;shop_order_id;delivered_at;"
            "first_delivery_attempt;location\n"
            "delivered;PPL;https://t/1;1001;ignored;ABC-1;E2026/7;2026-11-26 10:15:00;25.11.2026 9:00;A-01-3\n")
    feed = parse(text)
    assert feed.problems == []
    (r,) = feed.rows
    assert r.mall_order_id == 1001 and r.status == "delivered" and r.carrier == "PPL"
    assert r.tracking_url == "https://t/1" and r.tracking_number == "ABC-1" and r.shop_order_id == "E2026/7"
    assert r.location == "A-01-3"
    assert r.delivered_at == datetime(2026, 11, 26, 10, 15, tzinfo=PRAGUE)
    assert r.first_delivery_attempt == datetime(2026, 11, 25, 9, 0, tzinfo=PRAGUE)


def test_utf8_with_bom_and_quoted_fields():
    data = "\ufeffmall_order_id,status\n1001,\"Expedována, čeká\"\n".encode("utf-8")
    feed = parse(data)
    assert feed.rows[0].status == "Expedována, čeká"


def test_bom_kept_by_plain_utf8_encoding_is_still_stripped():
    data = "\ufeffmall_order_id,status\n1001,x\n".encode("utf-8")
    assert parse(data, encoding="utf-8").rows[0].mall_order_id == 1001


def test_cp1250_with_semicolons():
    data = "mall_order_id;status;carrier\r\n1001;Expedována;Česká pošta\r\n".encode("cp1250")
    feed = parse(data, encoding="cp1250")
    assert feed.rows[0].status == "Expedována" and feed.rows[0].carrier == "Česká pošta"


def test_cp1250_read_as_utf8_is_unavailable_with_hint():
    data = "mall_order_id;status\n1001;Expedována\n".encode("cp1250")
    with pytest.raises(FeedUnavailable, match=r"^feed.csv:2: the text is not utf-8-sig.*cp1250"):
        parse(data)


def test_semicolon_detected_even_with_commas_in_values():
    feed = parse('mall_order_id;status;carrier\n1001;shipped;"a,b"\n')
    assert feed.rows[0].carrier == "a,b"


def test_empty_cells_are_none_and_values_trimmed():
    feed = parse("mall_order_id,status,tracking_number,delivered_at\n 1001 , shipped ,  ,\n")
    r = feed.rows[0]
    assert r.mall_order_id == 1001 and r.status == "shipped" and r.tracking_number is None and r.delivered_at is None


def test_bad_rows_reported_with_lines_good_rows_count():
    text = (
        "mall_order_id,status,delivered_at,carrier\n"   # 1
        "1001,shipped,,PPL\n"                           # 2 ok
        ",shipped,,\n"                                  # 3 missing id
        "abc,shipped,,\n"                               # 4 non-numeric
        "0,shipped,,\n"                                 # 5 non-positive
        "-5,shipped,,\n"                                # 6 negative
        "1002,,,\n"                                     # 7 missing status
        "1003,delivered,31.02.2026,\n"                  # 8 impossible date
        "1004,delivered,yesterday,\n"                   # 9 unparsable date
        "1005,shipped\n"                                # 10 too few values
        "1006,shipped,,PPL,extra\n"                     # 11 too many values
        "\n"                                            # 12 blank: skipped silently
        '1007,"multi\nline",,\n'                        # 13-14 ok, quoted newline
        "1008,shipped,,\n"                              # 15 ok
        ",,,\n"                                         # 16 empty spreadsheet row: skipped
        "1009,²,,\n"                                    # 17 ok (status is free text)
        "¹2,shipped,,\n"                                # 18 unicode digit is not an id
    )
    feed = parse(text)
    assert [(r.mall_order_id, r.line) for r in feed.rows] == [(1001, 2), (1007, 13), (1008, 15), (1009, 17)]
    lines = {p.line: p.message for p in feed.problems}
    assert sorted(lines) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 18]
    assert "mall_order_id is empty" in lines[3]
    assert "'abc' is not a positive whole number" in lines[4]
    assert "'0' is not a positive whole number" in lines[5]
    assert "status is empty" in lines[7]
    assert "order 1003: delivered_at: '31.02.2026' is not a valid date" in lines[8]
    assert "'yesterday' is not a date" in lines[9]
    assert "fewer values" in lines[10]
    assert "more than the header" in lines[11]
    assert all(p.source == "feed.csv" for p in feed.problems)
    assert str(feed.problems[0]).startswith("feed.csv:3: ")


@pytest.mark.parametrize("header", ["status,carrier", "mall_order_id,carrier", "mall_order,state"])
def test_missing_required_column_makes_feed_unavailable(header):
    with pytest.raises(FeedUnavailable) as info:
        parse(f"{header}\n1,2\n")
    message = str(info.value)
    assert message.startswith("feed.csv: the header has no column ")
    assert "required" in message and f"found: {header.replace(',', ', ')}" in message


def test_missing_column_even_without_rows():
    with pytest.raises(FeedUnavailable, match="'status'"):
        parse("mall_order_id\n")


def test_empty_file_is_unavailable():
    with pytest.raises(FeedUnavailable, match="empty"):
        parse(b"")


def test_duplicate_id_last_row_wins_and_is_reported():
    feed = parse("mall_order_id,status\n1001,packing\n1002,new\n1001,shipped\n")
    assert [(r.mall_order_id, r.status) for r in feed.rows] == [(1002, "new"), (1001, "shipped")]
    (p,) = feed.problems
    assert p.line == 4 and "first at line 2" in p.message and "last row counts" in p.message


def test_custom_column_names():
    cols = ColumnMap(mall_order_id="MALL_ORDER_ID", status="STATUS", tracking_number="TRACKING")
    feed = parse("STATUS,MALL_ORDER_ID,TRACKING\nvyřízená,42,X1\n", columns=cols)
    assert (feed.rows[0].mall_order_id, feed.rows[0].status, feed.rows[0].tracking_number) == (42, "vyřízená", "X1")


def test_records_without_header_like_xml_elements():
    """FastCentrik XML yields dicts per element; a missing element is a row problem, not a dead feed."""
    records = [(3, {"ID": "7", "STAV": "ok", "DORUCENO": "2026-01-02T03:04:05Z"}), (9, {"STAV": "ok"})]
    cols = ColumnMap(mall_order_id="ID", status="STAV", delivered_at="DORUCENO")
    feed = records_to_feed(records, columns=cols, tz=PRAGUE, source="feed.xml")
    assert feed.rows[0].delivered_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert [(p.line, p.message) for p in feed.problems] == [(9, "mall_order_id is empty")]


def test_xlsx_records(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["status", "mall_order_id", "delivered_at", "tracking_number"])
    ws.append(["delivered", 1001, datetime(2026, 11, 26, 10, 15), 12345])
    ws.append([None, None, None, None])
    ws.append(["shipped", 1002.0])
    ws.append(["shipped", "x"])
    path = tmp_path / "feed.xlsx"
    wb.save(path)
    second = wb.create_sheet("other")  # only the first sheet counts
    second.append(["nothing"])
    with open(path, "rb") as f:
        header, rows = xlsx_records(f, source="feed.xlsx")
        feed = records_to_feed(rows, columns=ColumnMap(), tz=PRAGUE, source="feed.xlsx", header=header)
    assert [(r.mall_order_id, r.status, r.line) for r in feed.rows] == [(1001, "delivered", 2), (1002, "shipped", 4)]
    assert feed.rows[0].delivered_at == datetime(2026, 11, 26, 10, 15, tzinfo=PRAGUE)
    assert feed.rows[0].tracking_number == "12345"
    assert [(p.line, "'x'" in p.message) for p in feed.problems] == [(5, True)]


def test_not_an_xlsx_is_unavailable():
    with pytest.raises(FeedUnavailable, match="feed.xlsx: not a readable XLSX"):
        xlsx_records(io.BytesIO(b"mall_order_id,status\n"), source="feed.xlsx")


def test_large_feed_streams_in_bounded_memory():
    lines = ["mall_order_id;status;tracking_number;delivered_at"]
    lines += [f"{i};delivered;T{i};2026-11-26 10:15:00" for i in range(1, 100_001)]
    data = ("\n".join(lines) + "\n").encode()
    tracemalloc.start()
    try:
        feed = parse(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(feed.rows) == 100_000 and not feed.problems
    # A bound on work, not time: the rows themselves and a little more, never a copy of the feed per row.
    assert peak < 40 * len(data)


def test_bad_encoding_far_down_names_its_line():
    data = b"mall_order_id,status\n" + b"".join(b"%d,ok\n" % i for i in range(1, 5000)) + "5000,Nová\n".encode("cp1250")
    with pytest.raises(FeedUnavailable, match=r"^feed.csv:5001: the text is not utf-8-sig"):
        parse(data)
