"""A hostile MALL on loopback: forwards everything to the sandbox, except the answers a test replaces.

    proxy = HostileMall(sandbox).start()
    proxy.replace("GET", order_id, DEEP_JSON)          # the detail GET of one order answers this body
    proxy.count("GET", f"/v1/orders/{order_id}")       # how often it was asked (MALL calls are money)

Bodies are raw bytes: a test can send what no model would ever produce (10 000-deep nesting, numbers past
64 bits, ``data: null``), which is the point.
"""

from __future__ import annotations

import collections
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx


def envelope(data) -> bytes:
    return json.dumps({"result": {"code": 200, "status": "OK"}, "data": data}).encode()


DEEP_JSON = (b'{"result": {"code": 200, "status": "OK"}, "data": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_000
             + b"}")
DATA_NULL = envelope(None)


def order_with(order: dict, **fields) -> bytes:
    return envelope({**order, **fields})


class HostileMall:
    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.replacements: dict[tuple[str, str], bytes] = {}
        self.not_forwarded: set[tuple[str, str]] = set()
        self.statuses: dict[tuple[str, str], int] = {}
        self.calls: collections.Counter = collections.Counter()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def replace(self, method: str, order_id: int, body: bytes, *, forward: bool = True, status: int = 200) -> None:
        """Answer ``body`` (with HTTP ``status``) instead; a PUT still reaches the sandbox (applied, then garbage)
        unless ``forward=False``."""
        key = (method.upper(), f"/v1/orders/{order_id}")
        self.replacements[key] = body
        self.statuses[key] = status
        if not forward:
            self.not_forwarded.add(key)

    def restore(self, method: str, order_id: int) -> None:
        self.replacements.pop((method.upper(), f"/v1/orders/{order_id}"), None)

    def count(self, method: str, path: str) -> int:
        return self.calls[(method.upper(), path)]

    def start(self) -> "HostileMall":
        proxy = self
        upstream = httpx.Client(base_url=self.sandbox.url, timeout=10)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                path = urlsplit(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                key = (self.command, path)
                proxy.calls[key] += 1
                if key in proxy.replacements:
                    if self.command == "PUT" and key not in proxy.not_forwarded:  # applied, then garbage
                        upstream.request("PUT", self.path, content=body,
                                         headers={"Content-Type": "application/json"})
                    out, status, ctype = proxy.replacements[key], proxy.statuses.get(key, 200), "application/json"
                else:
                    r = upstream.request(self.command, self.path, content=body or None,
                                         headers={"Content-Type": self.headers.get("Content-Type",
                                                                                   "application/json")})
                    out, status, ctype = r.content, r.status_code, r.headers.get("content-type", "application/json")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_PUT = do_POST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._upstream = upstream
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._upstream.close()
