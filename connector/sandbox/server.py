"""The sandbox over real HTTP: MALL's order API on ``/v1``, operator endpoints on ``/_sandbox``.

Stdlib ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive, so the "drop" fault can close a
connection a client is reusing without any reply, as a flaky network or load balancer would.

    with SandboxServer("my-client-id", orders=50, seed=1) as mall:
        httpx.get(f"{mall.url}/v1/orders", params={"client_id": "my-client-id"})
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from connector.logs import redact, register_secret
from connector.sandbox import api, control
from connector.sandbox.api import ApiResponse
from connector.sandbox.faults import Faults
from connector.sandbox.query import MAX_PAGE_SIZE
from connector.sandbox.quota import headers as quota_headers
from connector.sandbox.requestlog import RequestLog
from connector.sandbox.state import OrderStore
from connector.sandbox.webhooks import WebhookLog, WebhookSender

log = logging.getLogger("mall_connector.sandbox")

MAX_BODY_BYTES = 1024 * 1024


class SandboxServer:
    """A local MALL look-alike: start it, point a MallClient at ``.url``, inspect ``.state`` and logs.

    ``orders`` seeded orders (spread over all statuses, reproducible with ``seed``); webhooks go to
    ``webhook_url`` at most once per ``webhook_interval_s``. ``faults`` can be replaced at any time.
    Usable as a context manager and from any thread (it never touches signal handlers).
    """

    def __init__(self, client_id: str, *, host: str = "127.0.0.1", port: int = 0, orders: int = 0, seed: int = 0,
                 webhook_url: str | None = None, webhook_interval_s: float = 60.0, faults: Faults | None = None,
                 max_page_size: int = MAX_PAGE_SIZE, quota_windows=None):
        if not client_id:
            raise ValueError("client_id must not be empty")
        if max_page_size < 1:
            raise ValueError("max_page_size must be at least 1")
        #: Lists serve at most this many orders a page (a bigger page_size is capped, as on MALL).
        self.max_page_size = max_page_size
        from connector.sandbox.quota import DEFAULT_WINDOWS, SandboxQuota

        #: MALL's X-RateLimit-* windows (day, hour, minute) on every answer: reported, never enforced (issue 17).
        self.quota = SandboxQuota(quota_windows if quota_windows is not None else DEFAULT_WINDOWS)
        #: List filters the sandbox drops, as a MALL that ignores them would (e.g. {"id"}: whether real MALL honours
        #: ``id=in:…`` is unverified, mall-api.md §8). The request log still shows what was asked.
        self.ignore_filters: set[str] = set()
        register_secret(client_id)
        self._client_id = client_id.encode()
        self.host = host
        self._port = port
        self.state = OrderStore(seed=seed)
        if orders:
            self.state.seed_orders(orders)
        self.request_log = RequestLog()
        self._arrivals: dict[tuple[str, str], int] = {}
        self._arrivals_lock = threading.Lock()
        self.webhook_log = WebhookLog()
        self._faults = faults if faults is not None else Faults(seed=seed)
        self._webhooks = WebhookSender(self.state, lambda: self._faults, self.webhook_log,
                                       url=webhook_url, interval_s=webhook_interval_s)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            return self
        server_cls = _HTTPServer6 if ":" in self.host else _HTTPServer
        self._httpd = server_cls((self.host, self._port), _Handler)
        self._httpd.sandbox = self
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"mall-sandbox-{self._port}", daemon=True)
        self._thread.start()
        self._webhooks.start()
        log.info("MALL sandbox listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close open keep-alive connections and stop the webhook sender."""
        self._webhooks.stop()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- properties ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8800`` (use as the MALL base_url)."""
        if self._httpd is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        if not isinstance(value, Faults):
            raise TypeError("faults must be a Faults instance")
        self._faults = value

    @property
    def webhook_url(self) -> str | None:
        return self._webhooks.url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self._webhooks.url = url

    @property
    def webhook_interval_s(self) -> float:
        return self._webhooks.interval_s

    def flush_webhooks(self) -> list[int]:
        """Send the pending webhook batch now; the ids sent."""
        return self._webhooks.flush()

    def arrived(self, method: str, path: str) -> int:
        """How many ``method path`` API requests have been read in full, answered or not yet: the request log
        records a request only when it is answered, so a test that kills a client mid-request waits on this."""
        with self._arrivals_lock:
            return self._arrivals.get((method.upper(), path), 0)

    def note_arrival(self, method: str, path: str) -> None:
        with self._arrivals_lock:
            self._arrivals[(method, path)] = self._arrivals.get((method, path), 0) + 1

    def check_client_id(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self._client_id)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: SandboxServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), which can stall on some hosts.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


def _rate_headers(limit: int, window_s: float, remaining: int, reset_s: int) -> dict[str, str]:
    """MALL's X-RateLimit-* headers (mall-api.md §5), for one window on the orders domain."""
    window = max(1, round(window_s))
    unit = {86400: "d", 3600: "h", 60: "m"}.get(window, f"{window}s")
    return {
        "X-RateLimit-Limit": f'{limit}, {limit};w={window};name="partner:sandbox|domain:orders|unit:{unit}"',
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset_s),
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MallSandbox/1.0"
    timeout = 30  # idle keep-alive connections end after this
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle + delayed ACK add ~40 ms per answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sandbox._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sandbox._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug(redact(format % args))

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve()

    do_PUT = do_POST = do_DELETE = do_PATCH = do_GET

    def _serve(self) -> None:
        split = urlsplit(self.path)
        raw = self._read_body()
        if raw is None:
            return
        try:
            if split.path == "/_sandbox" or split.path.startswith("/_sandbox/"):
                status, payload = control.handle(self.server.sandbox, self.command, split.path, raw)
                self._send(status, payload)
            else:
                self._serve_api(split.path, dict(parse_qsl(split.query, keep_blank_values=True)), raw)
        except Exception:  # noqa: BLE001 - a sandbox bug answers 500 instead of killing the connection silently
            log.exception("sandbox error on %s %s", self.command, redact(self.path))
            self._send(500, api.error(500, "INTERNAL_ERROR", "sandbox internal error").body)

    def _serve_api(self, path: str, query: dict[str, str], raw: bytes) -> None:
        sandbox = self.server.sandbox
        client_id = query.pop("client_id", None)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        entry = {"method": self.command, "path": path, "query": query, "body": body, "order_id": api.order_id_of(path)}
        sandbox.note_arrival(self.command, path)
        if not sandbox.check_client_id(client_id):
            return self._answer(api.error(401, "UNAUTHORIZED", "missing or invalid client_id"), entry)

        faults = sandbox.faults
        active = faults.applies_to(self.command)
        windows = sandbox.quota.count()
        headers: dict[str, str] = quota_headers(windows)
        if active:
            if faults.latency_ms:
                time.sleep(faults.latency_ms / 1000)
            if faults.roll(faults.drop_rate):
                sandbox.request_log.record(**entry, status_code=None, applied=False, fault="drop")
                return self._drop()
            if faults.rate_limit_budget is not None:
                allowed, remaining, reset = faults.take_budget()
                budget = (max(1, round(faults.rate_limit_window_s)), faults.rate_limit_budget, remaining, reset)
                headers = quota_headers([budget, *(w for w in windows if w[0] != budget[0])])
                if not allowed:
                    return self._answer(self._limited(headers), entry, fault="429")
            if faults.roll(faults.rate_limit_rate):
                limited = self._limited(_rate_headers(1000, 60, 0, faults.rate_limit_reset_s))
                return self._answer(limited, entry, fault="429")
            if faults.roll(faults.error_rate):
                return self._answer(api.error(faults.error_status, "INTERNAL_ERROR", "internal server error"),
                                    entry, fault="5xx")

        if sandbox.ignore_filters:
            query = {k: v for k, v in query.items() if k not in sandbox.ignore_filters}
        response = api.handle(sandbox.state, self.command, path, query, raw, max_page_size=sandbox.max_page_size)
        response.headers.update(headers)
        fault = None
        if active and self.command in ("PUT", "POST") and response.status == 200 and faults.roll(faults.error_after_apply_rate):
            applied = response.applied
            response = api.error(500, "INTERNAL_ERROR", "internal server error")
            response.applied, fault = applied, "5xx_after_apply"
        self._answer(response, entry, fault=fault)

    @staticmethod
    def _limited(headers: dict[str, str]) -> ApiResponse:
        response = api.error(429, "TOO_MANY_REQUESTS", "API call limit exceeded", result_status="LIMITED")
        response.headers.update(headers)
        return response

    def _answer(self, response: ApiResponse, entry: dict, fault: str | None = None) -> None:
        # Logged before replying, so a client that has the answer also sees it in the log.
        self.server.sandbox.request_log.record(**entry, status_code=response.status, applied=response.applied,
                                               fault=fault)
        self._send(response.status, response.body, response.headers)

    def _drop(self) -> None:
        """Close the connection without a byte of reply."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a body we cannot read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send(411, api.error(411, "LENGTH_REQUIRED", "send a Content-Length").body)
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413, api.error(413, "PAYLOAD_TOO_LARGE", f"the body exceeds {MAX_BODY_BYTES} bytes").body)
            return None
        if length < 0:
            self.close_connection = True
            self._send(400, api.error(400, "BAD_REQUEST", "bad Content-Length").body)
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
