"""Several MALL accounts behind one API address (issue 18): one ``SandboxServer`` per client_id.

MALL runs one API host for every country and tells the account by the ``client_id`` of each request. Here each
account is its own sandbox (its own orders, request log, rate limit and quota) and ``MallFront``, a real HTTP
server, forwards each request to the sandbox of its ``client_id``; an unknown one gets MALL's 401. The connector
so sees one ``[mall] base_url``, as in production. Used by the accounts tests, ``mall-connector sandbox
--accounts N`` and the accounts bench (bench/accounts.py).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx

from connector.sandbox.server import SandboxServer
from connector.sandbox.state import FIRST_PURCHASE_ID

UNAUTHORIZED = b'{"result":{"code":401,"status":"UNAUTHORIZED","message":"bad client_id"}}'
#: Order ids of account i start at FIRST_PURCHASE_ID + i * ID_SPACING purchases: MALL's ids are global, so two
#: accounts never share one.
ID_SPACING = 5_000_000


class MallFront:
    """One API address for several sandboxes, chosen by the request's client_id (``routed`` counts them)."""

    def __init__(self, sandboxes: dict[str, object], *, host: str = "127.0.0.1", port: int = 0):
        self.by_client_id = dict(sandboxes)
        self.routed: dict[str, int] = {}
        front = self
        http = httpx.Client(timeout=30)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                client_id = (parse_qs(urlsplit(self.path).query).get("client_id") or [None])[0]
                box = front.by_client_id.get(client_id)
                if box is None:
                    return self._send(401, UNAUTHORIZED, {"Content-Type": "application/json"})
                front.routed[client_id] = front.routed.get(client_id, 0) + 1
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
                r = http.request(self.command, box.url + self.path, content=body, headers=headers)
                keep = {k: v for k, v in r.headers.items()
                        if k.lower() in ("content-type",) or k.lower().startswith("x-ratelimit")}
                self._send(r.status_code, r.content, keep)

            do_GET = do_PUT = do_POST = _forward  # noqa: N815

            def _send(self, code, body, headers):
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._http = http
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self._http.close()


class AccountsSandbox:
    """``client_ids`` each with a started ``SandboxServer`` of its own (disjoint order ids), behind one MallFront on
    ``host:port``. ``sandboxes`` maps client_id to its sandbox, whose ``url`` serves its operator endpoints."""

    def __init__(self, client_ids: list[str], *, host: str = "127.0.0.1", port: int = 0, orders: int = 0,
                 seed: int = 0):
        if len(set(client_ids)) != len(client_ids):
            raise ValueError("the client_ids must differ")
        self.sandboxes: dict[str, SandboxServer] = {}
        try:
            for i, client_id in enumerate(client_ids):
                box = SandboxServer(client_id, host=host, orders=0, seed=seed + i)
                box.state._next_purchase = FIRST_PURCHASE_ID + i * ID_SPACING
                if orders:
                    box.state.seed_orders(orders)
                self.sandboxes[client_id] = box.start()
            self.front = MallFront(self.sandboxes, host=host, port=port)
        except BaseException:
            self._stop_boxes()
            raise
        self.url = self.front.url

    def _stop_boxes(self) -> None:
        for box in self.sandboxes.values():
            box.stop()

    def close(self) -> None:
        self.front.close()
        self._stop_boxes()

    def __enter__(self) -> AccountsSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
