"""A real HTTP server on loopback serving a feed, with basic auth, ETags and failure modes."""

from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FeedServer:
    """What the handler serves; tests change these attributes between requests."""

    def __init__(self):
        self.body = b"mall_order_id,status\n1001,shipped\n"
        self.user = "shop"
        self.password = "S3cret-pass!word"
        self.status = 200
        self.etag: str | None = None
        self.delay_s = 0.0
        self.requests: list[dict] = []  # headers of every request
        self.url = ""


@pytest.fixture
def feed_server():
    state = FeedServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            state.requests.append(dict(self.headers))
            if state.delay_s:
                time.sleep(state.delay_s)
            expected = "Basic " + base64.b64encode(f"{state.user}:{state.password}".encode()).decode()
            if state.user and self.headers.get("Authorization") != expected:
                return self._send(401, b"unauthorized", {"WWW-Authenticate": 'Basic realm="feed"'})
            if state.status != 200:
                return self._send(state.status, b"boom")
            headers = {"Content-Type": "text/csv"}
            if state.etag:
                if self.headers.get("If-None-Match") == state.etag:
                    return self._send(304, b"", {"ETag": state.etag})
                headers["ETag"] = state.etag
            self._send(200, state.body, headers)

        def _send(self, code, body, headers=None):
            try:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                pass

        def log_message(self, *args):  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/export/orders.csv"
    yield state
    server.shutdown()
    server.server_close()
