"""`sync-once` exit codes a cron job can trust: 66 feed missing/unreadable, 65 read but unusable, before 2 and 75.

Run as the real CLI (a subprocess) against the sandbox over HTTP."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.worlds import CsvShop

pytestmark = pytest.mark.e2e


@pytest.fixture
def shop(tmp_path, sandbox):
    return CsvShop(tmp_path, sandbox)


def run(shop):
    return shop.cli("sync-once", "--no-sweep")


class FeedServer:
    """A shop feed URL on loopback that answers with a fixed status."""

    def __init__(self, status: int, body: bytes = b""):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits += 1
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.hits = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/orders.csv"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_missing_feed_file_is_66_and_names_the_feed(shop):
    os.remove(shop.feed)
    r = run(shop)
    assert r.returncode == 66, r.stderr
    assert str(shop.feed) in r.stderr and "file not found" in r.stderr
    assert "Traceback" not in r.stderr


def test_feed_that_cannot_be_opened_is_66(shop):
    os.remove(shop.feed)
    shop.feed.mkdir()  # a folder where the file should be: cannot be read (works for root too)
    r = run(shop)
    assert r.returncode == 66, r.stderr
    assert str(shop.feed) in r.stderr and "cannot open" in r.stderr


def test_http_error_is_66(tmp_path, sandbox):
    server = FeedServer(503, b"down for maintenance")
    try:
        shop = CsvShop(tmp_path, sandbox)
        text = shop.config_path.read_text().replace('source = "shop.csv"', f'source = "{server.url}"')
        shop.config_path.write_text(text)
        r = run(shop)
    finally:
        server.close()
    assert r.returncode == 66, r.stderr
    assert "HTTP 503" in r.stderr and "127.0.0.1" in r.stderr and server.hits == 1


def fastcentrik_sync_once(tmp_path, sandbox, xml: str):
    """sync-once (the CLI) of a FastCentrik shop whose export file holds ``xml``."""
    import subprocess
    import sys

    from tests.conftest import TEST_CLIENT_ID

    (tmp_path / "feed.xml").write_text(xml, encoding="utf-8")
    os.utime(tmp_path / "feed.xml", (1, 1))
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""[mall]
base_url = "{sandbox.url}"
client_id = "{TEST_CLIENT_ID}"
[ledger]
url = "sqlite:///ledger.db"
[shop]
adapter = "fastcentrik"
[shop.fastcentrik]
source = "feed.xml"
outbox = "outbox"
settle_s = 0
""")
    return subprocess.run([sys.executable, "-m", "connector", "--config", str(cfg), "sync-once", "--no-sweep"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_refused_xml_is_66(tmp_path, sandbox):
    r = fastcentrik_sync_once(tmp_path, sandbox, '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><ORDERS/>')
    assert r.returncode == 66, r.stderr
    assert "feed.xml" in r.stderr and "refused" in r.stderr


def test_broken_xml_is_66(tmp_path, sandbox):
    r = fastcentrik_sync_once(tmp_path, sandbox, "<ORDERS><ORDER><STATUS>x</ORDER>")
    assert r.returncode == 66, r.stderr
    assert "feed.xml" in r.stderr and "not well-formed XML at line 1" in r.stderr


def test_xml_with_orders_under_another_element_name_is_65(tmp_path, sandbox):
    r = fastcentrik_sync_once(tmp_path, sandbox, "<ORDERS><OBJEDNAVKA><MALL_ORDER_ID>1</MALL_ORDER_ID>"
                                                 "<STATUS>x</STATUS></OBJEDNAVKA></ORDERS>")
    assert r.returncode == 65, r.stderr
    assert "feed.xml" in r.stderr and "outside any <ORDER> element" in r.stderr


def test_missing_required_column_is_65(shop):
    shop.feed.write_text("order,status\n1,packing\n", encoding="utf-8")
    os.utime(shop.feed, (1, 1))
    r = run(shop)
    assert r.returncode == 65, r.stderr
    assert str(shop.feed) in r.stderr and "no column 'mall_order_id'" in r.stderr


def test_no_rows_after_a_read_with_rows_is_65_and_an_empty_first_feed_is_fine(shop, sandbox):
    assert run(shop).returncode == 0  # header only, never had rows: a shop with no MALL orders yet
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    shop.write_feed([{"mall_order_id": oid, "status": "new"}])
    assert run(shop).returncode == 0
    shop.write_feed([])
    r = run(shop)
    assert r.returncode == 65, r.stderr
    assert str(shop.feed) in r.stderr and "no order rows, while the previous read had 1" in r.stderr
    assert run(shop).returncode == 65  # unchanged: still 65
    shop.write_feed([{"mall_order_id": oid, "status": "new"}])
    assert run(shop).returncode == 0


def test_feed_codes_come_before_2(shop, sandbox):
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    shop.write_feed([{"mall_order_id": oid, "status": "shipped"}])  # no tracking number: the change fails
    assert run(shop).returncode == 2
    os.remove(shop.feed)
    assert run(shop).returncode == 66
    shop.feed.write_text("order,status\n", encoding="utf-8")
    os.utime(shop.feed, (1, 1))
    assert run(shop).returncode == 65
