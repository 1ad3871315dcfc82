"""An HTTP feed is polled with conditional requests when the server gives an ETag or a Last-Modified (issue 17
item 3): a 304 means no parse and no work in the pass. A real HTTP server on loopback counts the conditional
requests; the ledger's statements are counted too."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connector.sync.runner import Services
from tests.integration.perf.conftest import count_sql
from tests.support.worlds import CsvShop

LAST_MODIFIED = "Tue, 01 Dec 2026 10:00:00 GMT"


class Feed:
    def __init__(self) -> None:
        self.body = b""
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.answers: list[tuple[str, int]] = []  # (conditional header sent or "", status answered)


@pytest.fixture
def feed():
    state = Feed()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
            sent = "If-None-Match" if inm else "If-Modified-Since" if ims else ""
            not_modified = (state.etag and inm == state.etag) or (state.last_modified and ims == state.last_modified)
            code = 304 if not_modified else 200
            state.answers.append((sent, code))
            body = b"" if code == 304 else state.body
            self.send_response(code)
            if state.etag:
                self.send_header("ETag", state.etag)
            if state.last_modified:
                self.send_header("Last-Modified", state.last_modified)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/export/orders.csv"
    yield state
    server.shutdown()
    server.server_close()


def _services(tmp_path, sandbox, url: str) -> Services:
    shop = CsvShop(tmp_path, sandbox)
    text = shop.config_path.read_text(encoding="utf-8").replace('source = "shop.csv"', f'source = "{url}"')
    shop.config_path.write_text(text.replace('url = "sqlite:///ledger.db"', f'url = "sqlite:///{tmp_path}/l.db"'),
                                encoding="utf-8")
    return Services(shop.config())


@pytest.mark.parametrize("validator", ["etag", "last_modified"])
def test_a_304_is_neither_parsed_nor_recorded(tmp_path, sandbox, feed, validator, monkeypatch):
    oid = sandbox.state.create_orders(1, status="open")[0]["id"]
    feed.body = f"mall_order_id,status,tracking_number,tracking_url\n{oid},shipped,T1,https://t/1\n".encode()
    if validator == "etag":
        feed.etag = '"v1"'
    else:
        feed.last_modified = LAST_MODIFIED
    header = "If-None-Match" if validator == "etag" else "If-Modified-Since"
    services = _services(tmp_path, sandbox, feed.url)
    try:
        first = services.outbound.poll_shop()
        assert first.rows == 1 and first.new_changes == 1 and feed.answers == [("", 200)]
        parsed = []
        original = services.adapter.read_feed

        def counting(**kw):
            got = original(**kw)
            parsed.append(len(got.rows))
            return got

        monkeypatch.setattr(services.adapter, "read_feed", counting)
        for _ in range(3):
            with count_sql(services.ledger.engine) as sql:
                again = services.outbound.poll_shop()
            assert again.unchanged and again.rows == 0 and again.new_changes == 0
            assert sql.write_txns == 0  # no pass work: nothing recorded
        assert feed.answers[1:] == [(header, 304)] * 3  # every later poll asked conditionally
        assert parsed == [0, 0, 0]  # and nothing was parsed
        feed.body += b"\n"
        if validator == "etag":
            feed.etag = '"v2"'
        else:
            feed.last_modified = "Tue, 01 Dec 2026 11:00:00 GMT"
        changed = services.outbound.poll_shop()
        assert not changed.unchanged and changed.rows == 1 and feed.answers[-1] == (header, 200)
    finally:
        services.close()
