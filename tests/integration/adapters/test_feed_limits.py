"""Hostile feeds (issue 16): each oversized input is refused with the source and the limit named,
and the memory it costs stays bounded (tracemalloc peaks; never time). The big inputs are made
here, under tmp_path."""

from __future__ import annotations

import io
import socket
import threading
import time
import tracemalloc
import zipfile
from contextlib import contextmanager
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from adapters.base import FeedRefused
from adapters.fastcentrik import FastCentrikAdapter, FastCentrikConfig
from adapters.generic_csv import GenericCsvAdapter, GenericCsvConfig
from adapters.shared.sections import FeedLimits

PRAGUE = ZoneInfo("Europe/Prague")
MiB = 2**20
HEADER = b"mall_order_id;status\n"


@contextmanager
def peak_memory():
    """Yields a dict; after the block, ``peak`` holds the traced peak in bytes above the start."""
    out = {}
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield out
    finally:
        out["peak"] = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()


def csv_adapter(source, tmp_path, **kw) -> GenericCsvAdapter:
    return GenericCsvAdapter(GenericCsvConfig(source=str(source), outbox=tmp_path / "out", settle_s=0, **kw), PRAGUE,
                             timeout_s=2.0)


def fc_adapter(source, tmp_path, **kw) -> FastCentrikAdapter:
    return FastCentrikAdapter(FastCentrikConfig(source=str(source), outbox=tmp_path / "out", settle_s=0, **kw), PRAGUE,
                              timeout_s=2.0)


def refused(adapter) -> FeedRefused:
    with pytest.raises(FeedRefused) as e:
        adapter.read_feed()
    return e.value


# -- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [csv_adapter, fc_adapter])
def test_a_150_mb_one_line_file_is_refused_by_its_size_without_reading_it(tmp_path, make):
    path = tmp_path / "feed.csv"
    with open(path, "wb") as f:
        f.write(HEADER[:-1])  # no newline: the whole file is one line
        f.truncate(150 * 1000 * 1000)
    with peak_memory() as mem:
        e = refused(make(path, tmp_path))
    assert e.limit == "max_feed_bytes" and e.source == str(path)
    assert str(e).startswith(f"{path}: refused: ") and "max_feed_bytes = 104857600" in str(e)
    assert mem["peak"] < 2 * MiB


@pytest.mark.parametrize("make,extra", [(csv_adapter, {}), (fc_adapter, {"format": "csv"})])
def test_a_one_line_file_under_the_size_limit_is_refused_by_the_line_limit(tmp_path, make, extra):
    path = tmp_path / "feed.csv"
    with open(path, "wb") as f:
        f.write(b"mall_order_id;status;" + b"x;" * (10 * MiB))  # 20 MiB, one line, written for real
    with peak_memory() as mem:
        e = refused(make(path, tmp_path, **extra))
    assert e.limit == "max_line_bytes" and "line 1 is longer than 1 MiB" in str(e)
    assert mem["peak"] < 4 * MiB  # the 20 MiB line as text would be 20+ MiB


def test_the_line_limit_names_the_line(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_bytes(HEADER + b"1;new\n2;new\n3;new\n4;" + b"y" * (2 * 1024) + b"\n5;new\n")
    e = refused(csv_adapter(path, tmp_path, max_line_bytes=1024))
    assert "line 5 is longer than 1024 bytes" in str(e) and "max_line_bytes = 1024" in str(e)


def test_rows_over_max_rows_refuse_the_feed_and_max_rows_itself_is_fine(tmp_path):
    path = tmp_path / "feed.csv"
    path.write_bytes(HEADER + b"".join(b"%d;new\n" % i for i in range(1, 1001)))
    assert len(csv_adapter(path, tmp_path, max_rows=1000).read_feed().rows) == 1000
    e = refused(csv_adapter(path, tmp_path, max_rows=999))
    assert e.limit == "max_rows" and "more than 999 rows" in str(e)


def test_many_rows_are_refused_while_streaming_not_after_reading_them_all(tmp_path):
    path = tmp_path / "feed.csv"
    with open(path, "wb") as f:
        f.write(HEADER)
        for start in range(1, 400_001, 10_000):
            f.write(b"".join(b"%d;new\n" % i for i in range(start, start + 10_000)))
    with peak_memory() as mem:
        e = refused(csv_adapter(path, tmp_path, max_rows=1000))
    assert e.limit == "max_rows"
    assert mem["peak"] < 3 * MiB  # 400k parsed rows would be well over 100 MiB


# -- XLSX --------------------------------------------------------------------------------------


def xlsx_with_sheet(path, sheet_chunks, repeat: int) -> None:
    """A real workbook (openpyxl writes the parts) whose first sheet is replaced by ``sheet_chunks``
    written ``repeat`` times: a few KB on disk, as much as wanted unpacked."""
    wb = openpyxl.Workbook()
    wb.active.append(["mall_order_id", "status"])
    plain = io.BytesIO()
    wb.save(plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            if info.filename != "xl/worksheets/sheet1.xml":
                dst.writestr(info.filename, src.read(info.filename))
        with dst.open("xl/worksheets/sheet1.xml", "w") as sheet:
            head, body, tail = sheet_chunks
            sheet.write(head)
            for _ in range(repeat):
                sheet.write(body)
            sheet.write(tail)


SHEET_HEAD = (b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
              b'spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>MALL_ORDER_ID</t></is>'
              b'</c><c r="B1" t="inlineStr"><is><t>STATUS</t></is></c></row>')
SHEET_TAIL = b"</sheetData></worksheet>"


def test_a_small_xlsx_that_unpacks_huge_is_refused_before_it_is_opened(tmp_path):
    path = tmp_path / "export.xlsx"
    row = b'<row><c t="inlineStr"><is><t>1</t></is></c><c t="inlineStr"><is><t>new</t></is></c></row>' * 1000
    xlsx_with_sheet(path, (SHEET_HEAD, row, SHEET_TAIL), repeat=1500)  # ~130 MB unpacked
    assert path.stat().st_size < 1 * MiB
    with zipfile.ZipFile(path) as z:
        assert sum(i.file_size for i in z.infolist()) > 120 * MiB
    with peak_memory() as mem:
        e = refused(fc_adapter(path, tmp_path))
    assert e.limit == "max_xlsx_bytes" and str(e).startswith(f"{path}: refused: the workbook unpacks to ")
    assert mem["peak"] < 2 * MiB


def test_an_xlsx_padded_to_the_widest_sheet_is_refused_by_its_cell_count(tmp_path):
    """Two cells a row, the second in the last column (XFD): openpyxl pads each row to 16 384 cells."""
    path = tmp_path / "export.xlsx"
    head = SHEET_HEAD.replace(b"<sheetData>", b'<dimension ref="A1:XFD1000"/><sheetData>')
    rows = b"".join(b'<row r="%d"><c r="A%d"><v>%d</v></c><c r="XFD%d" t="inlineStr"><is><t>new</t></is></c></row>'
                    % (i, i, i, i) for i in range(2, 1001))
    xlsx_with_sheet(path, (head, rows, SHEET_TAIL), repeat=1)
    assert path.stat().st_size < 100 * 1024
    with peak_memory() as mem:
        e = refused(fc_adapter(path, tmp_path, max_xlsx_cells=1_000_000))
    assert e.limit == "max_xlsx_cells" and "more than 1000000 cells" in str(e)
    assert mem["peak"] < 6 * MiB  # every row is one 16 384-cell tuple at a time, never the sheet


SST = b'<?xml version="1.0" encoding="UTF-8"?><x:sst xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'


def xlsx_with_parts(path, parts: dict[str, tuple[bytes, bytes, bytes, int]]) -> None:
    """A real workbook plus extra or replaced parts, each written as head + body * n + tail; the shared
    strings part is wired into the content types and the workbook's relations, as Excel does."""
    wb = openpyxl.Workbook()
    wb.active.append(["MALL_ORDER_ID", "STATUS"])
    plain = io.BytesIO()
    wb.save(plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            if info.filename in parts:
                continue
            data = src.read(info.filename)
            if info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
            if info.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", b'<Relationship Id="rId99" Type="http://schemas.openxmlformats'
                                    b'.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
                                    b"</Relationships>")
            dst.writestr(info.filename, data)
        for name, (head, body, tail, n) in parts.items():
            with dst.open(name, "w") as part:
                part.write(head)
                for _ in range(n):
                    part.write(body)
                part.write(tail)


def test_an_xlsx_with_millions_of_shared_strings_is_refused_before_openpyxl_loads_them(tmp_path):
    """openpyxl holds every shared string: 42 MiB of short ones measured 690 MiB RSS. They are counted
    first, whatever prefix the elements use."""
    path = tmp_path / "export.xlsx"
    body = b"".join(b"<x:si><x:t>%d</x:t></x:si>" % i for i in range(1000))
    xlsx_with_parts(path, {"xl/sharedStrings.xml": (SST, body, b"</x:sst>", 2000)})  # 2 million strings
    assert path.stat().st_size < 1 * MiB
    with peak_memory() as mem:
        e = refused(fc_adapter(path, tmp_path))
    assert e.limit == "max_xlsx_strings" and "more than 500000 shared strings" in str(e)
    assert mem["peak"] < 4 * MiB


def test_shared_strings_within_max_xlsx_strings_are_read(tmp_path):
    path = tmp_path / "export.xlsx"
    strings = b"<x:si><x:t>MALL_ORDER_ID</x:t></x:si><x:si><x:t>STATUS</x:t></x:si><x:si><x:t>new</x:t></x:si>"
    sheet = (SHEET_HEAD.replace(b'<row r="1">', b'<row r="0">').split(b"<sheetData>")[0] + b'<sheetData><row r="1">'
             b'<c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row><row r="2"><c r="A2"><v>7</v></c>'
             b'<c r="B2" t="s"><v>2</v></c></row>' + SHEET_TAIL)
    xlsx_with_parts(path, {"xl/sharedStrings.xml": (SST, strings, b"</x:sst>", 1),
                           "xl/worksheets/sheet1.xml": (sheet, b"", b"", 0)})
    assert [(r.mall_order_id, r.status) for r in fc_adapter(path, tmp_path, max_xlsx_strings=3).read_feed().rows] == [
        (7, "new")]
    assert refused(fc_adapter(path, tmp_path, max_xlsx_strings=2)).limit == "max_xlsx_strings"


def test_shared_strings_with_a_dtd_are_not_read(tmp_path):
    from adapters.base import FeedUnavailable

    path = tmp_path / "export.xlsx"
    laughs = b'<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY a "aaaaaaaaaa">]><sst><si><t>&a;</t></si></sst>'
    xlsx_with_parts(path, {"xl/sharedStrings.xml": (laughs, b"", b"", 0)})
    with pytest.raises(FeedUnavailable, match="sharedStrings declares a DTD or entities"):
        fc_adapter(path, tmp_path).read_feed()


def test_an_xlsx_with_a_huge_styles_part_is_refused(tmp_path):
    path = tmp_path / "export.xlsx"
    head = b'<?xml version="1.0"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><cellXfs>'
    xlsx_with_parts(path, {"xl/styles.xml": (head, b'<xf numFmtId="0"/>' * 1000, b"</cellXfs></styleSheet>", 600)})
    with peak_memory() as mem:
        e = refused(fc_adapter(path, tmp_path))
    assert "its part xl/styles.xml unpacks to" in str(e) and "at most 8 MiB" in str(e)
    assert mem["peak"] < 2 * MiB


def test_an_xlsx_with_more_rows_than_max_rows_is_refused(tmp_path):
    path = tmp_path / "export.xlsx"
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(["mall_order_id", "status"])
    for i in range(1, 302):
        ws.append([i, "new"])
    wb.save(path)
    assert len(fc_adapter(path, tmp_path, max_rows=301).read_feed().rows) == 301
    assert refused(fc_adapter(path, tmp_path, max_rows=300)).limit == "max_rows"


# -- XML ---------------------------------------------------------------------------------------


def test_a_7_mb_deeply_nested_xml_is_refused_by_its_depth(tmp_path):
    path = tmp_path / "export.xml"
    n = 7 * 1000 * 1000 // 7
    path.write_bytes(b"<ORDERS>" + b"<ORDER>" * n + b"</ORDER>" * 0)  # never closed: only depth matters
    assert path.stat().st_size > 7 * 1000 * 1000
    with peak_memory() as mem:
        e = refused(fc_adapter(path, tmp_path))
    assert e.limit == "max_xml_depth" and "nested deeper than 64 elements" in str(e)
    assert mem["peak"] < 4 * MiB  # the whole nest as elements was 378 MiB


def test_one_order_with_a_million_elements_is_refused(tmp_path):
    path = tmp_path / "export.xml"
    path.write_bytes(b"<ORDERS><ORDER><MALL_ORDER_ID>1</MALL_ORDER_ID>" + b"<X/>" * 1_000_000 + b"</ORDER></ORDERS>")
    with peak_memory() as mem:
        e = refused(fc_adapter(path, tmp_path))
    assert "ORDER #1 has more than 10000 elements" in str(e)
    assert mem["peak"] < 6 * MiB  # the million elements held for the order take ~75 MiB


def test_more_xml_orders_than_max_rows_are_refused(tmp_path):
    path = tmp_path / "export.xml"
    orders = b"".join(b"<ORDER><MALL_ORDER_ID>%d</MALL_ORDER_ID><STATUS>new</STATUS></ORDER>" % i for i in range(1, 52))
    path.write_bytes(b"<ORDERS>" + orders + b"</ORDERS>")
    assert len(fc_adapter(path, tmp_path, max_rows=51).read_feed().rows) == 51
    assert refused(fc_adapter(path, tmp_path, max_rows=50)).limit == "max_rows"


def test_the_limits_are_config_keys_with_their_defaults():
    assert FeedLimits().model_dump() == {
        "max_feed_bytes": 100 * MiB, "max_line_bytes": MiB, "max_rows": 500_000, "max_xlsx_bytes": 100 * MiB,
        "max_xlsx_cells": 5_000_000, "max_xlsx_strings": 500_000, "fetch_deadline_s": 120.0}
    assert FastCentrikConfig().max_xml_depth == 64


# -- HTTP --------------------------------------------------------------------------------------


class TrickleServer:
    """A loopback HTTP server that answers one byte every ``interval`` s, up to ``cap`` bytes:
    the headers too (``phase="headers"``) or only the body. Counts the bytes it got out."""

    def __init__(self, phase: str, interval: float = 0.05, cap: int = 2000):
        self.phase, self.interval, self.cap = phase, interval, cap
        self.sent = 0
        self.done = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/orders.csv"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        try:
            conn.recv(65536)  # the request
            body = HEADER + b"1;new\n" * self.cap
            # A long header, so the headers alone outlast the bound below: only a deadline that also
            # covers the headers (not a check between body chunks) stops the poll in time.
            head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nX-Padding: %s\r\nContent-Length: %d\r\n\r\n"
                    % (b"p" * 400, len(body)))
            if self.phase == "headers":
                data = head + body
            else:
                conn.sendall(head)
                data = body
            for i in range(min(self.cap, len(data))):
                conn.sendall(data[i:i + 1])
                self.sent += 1
                time.sleep(self.interval)
        except OSError:  # the client gave up and closed the connection
            pass
        finally:
            conn.close()
            self.listener.close()
            self.done.set()


@pytest.mark.e2e  # a real server on loopback
@pytest.mark.parametrize("phase", ["headers", "body"])
def test_an_http_feed_trickling_bytes_is_cut_at_the_total_deadline(tmp_path, phase):
    server = TrickleServer(phase)
    # timeout_s (2 s per read) never trips: a byte comes every 0.05 s. Unbounded, the poll would take
    # the whole 2000 bytes (100 s); the 1 s deadline lets through about 20.
    adapter = csv_adapter(server.url, tmp_path, fetch_deadline_s=1.0)
    e = refused(adapter)
    assert e.limit == "fetch_deadline_s" and e.source == server.url
    assert "the download did not finish within 1 s" in str(e)
    assert server.done.wait(30), "the server still trickles: the connection was not closed"
    assert server.sent < 200


class BigServer:
    """Serves ``size`` bytes of feed, announced (Content-Length) or chunked."""

    def __init__(self, size: int, announce: bool):
        self.size, self.announce = size, announce
        self.sent = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/feed.csv"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        try:
            conn.recv(65536)
            if self.announce:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.size)
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"1;new\n" * 10_000
            while self.sent < self.size:
                data = chunk if self.announce else b"%x\r\n%s\r\n" % (len(chunk), chunk)
                conn.sendall(data)
                self.sent += len(chunk)
        except OSError:
            pass
        finally:
            conn.close()
            self.listener.close()


@pytest.mark.e2e  # a real server on loopback
@pytest.mark.parametrize("announce", [True, False])
def test_an_http_feed_over_max_feed_bytes_is_refused_while_downloading(tmp_path, announce):
    server = BigServer(200 * MiB, announce)
    with peak_memory() as mem:
        e = refused(csv_adapter(server.url, tmp_path, max_feed_bytes=4 * MiB))
    assert e.limit == "max_feed_bytes" and "max_feed_bytes = 4194304" in str(e)
    server.thread.join(30)
    assert server.sent < 16 * MiB  # the client stopped reading near the limit, not at 200 MiB
    assert mem["peak"] < 12 * MiB


# -- the bounded stream itself ------------------------------------------------------------------


def test_the_byte_limit_counts_what_is_read_not_what_the_file_claimed():
    from adapters.shared.limits import limited_stream

    stream = limited_stream(io.BytesIO(b"a" * 5000), "grown.csv", max_bytes=4096)
    with pytest.raises(FeedRefused, match=r"grown.csv: refused: larger than 4096 bytes \(limit max_feed_bytes"):
        stream.read()
    again = limited_stream(io.BytesIO(b"a" * 4096), "exact.csv", max_bytes=4096)
    assert len(again.read()) == 4096


@pytest.mark.parametrize("lengths", [
    [10, 2000, 10], [1024, 1024, 1025], [1025], [5000], [0, 0, 1024, 0, 1024],
    [100] * 2000 + [1100], [3000, 3], [1024] * 300,
])
def test_the_line_limit_finds_the_first_long_line_across_read_boundaries(lengths):
    """Lines of the given lengths (bytes before each newline), read through the stream in 64 KiB
    blocks: refused exactly when one is over 1024 bytes, naming the first such line."""
    from adapters.shared.limits import limited_stream

    data = b"".join(b"x" * n + b"\n" for n in lengths)
    stream = limited_stream(io.BytesIO(data), "f.csv", max_bytes=len(data), max_line_bytes=1024)
    long_lines = [i + 1 for i, n in enumerate(lengths) if n > 1024]
    if not long_lines:
        assert stream.read() == data
        return
    with pytest.raises(FeedRefused) as e:
        while stream.read(7000):
            pass
    assert f"line {long_lines[0]} is longer than 1024 bytes" in str(e.value)
