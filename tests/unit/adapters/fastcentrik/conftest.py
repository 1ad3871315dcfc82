"""Fixtures for the FastCentrik tests: fixture paths, adapter factory, a loopback export server."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connector.config import FastCentrikConfig

FIXTURES = Path(__file__).parent / "fixtures"
PRAGUE = ZoneInfo("Europe/Prague")
BRATISLAVA = ZoneInfo("Europe/Bratislava")


def make_adapter(source, tmp_path: Path, tz: ZoneInfo = PRAGUE, **kw):
    from adapters.fastcentrik import FastCentrikAdapter

    timeout_s = kw.pop("timeout_s", 2.0)
    kw.setdefault("settle_s", 0)
    kw.setdefault("outbox", tmp_path / "outbox")
    return FastCentrikAdapter(FastCentrikConfig(source=str(source), **kw), tz, timeout_s=timeout_s)


class ExportServer:
    """What the handler serves, like FastCentrik serving a generated export URL."""

    def __init__(self):
        self.body = (FIXTURES / "orders_cz_utf8.xml").read_bytes()
        self.content_type = "text/xml; charset=utf-8"
        self.user = "fc-export"
        self.password = "Exp0rt-pass!word"
        self.requests: list[dict] = []
        self.url = ""


@pytest.fixture
def export_server():
    state = ExportServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            state.requests.append(dict(self.headers))
            expected = "Basic " + base64.b64encode(f"{state.user}:{state.password}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                return self._send(401, b"unauthorized", {"WWW-Authenticate": 'Basic realm="export"'})
            self._send(200, state.body, {"Content-Type": state.content_type})

        def _send(self, code, body, headers):
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    # Like a generated FastCentrik export URL: no file suffix, a key in the query.
    state.url = f"http://127.0.0.1:{server.server_address[1]}/export/objednavky.aspx?key=k3y-0123"
    yield state
    server.shutdown()
    server.server_close()
