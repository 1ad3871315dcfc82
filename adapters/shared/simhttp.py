"""A small threaded HTTP server on loopback that the shop simulators (shoptet, woocommerce) are built on,
like the MALL sandbox: a real socket, real HTTP, a request log the tests count, and fault knobs."""

from __future__ import annotations

import itertools
import json
import queue
import threading
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Self
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 4 * 2**20


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name) or self.query.get(name + "[]")
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=UTF-8"


class Faults:
    """Knobs the tests turn: the next N answers of a path prefix are a given status (429, 500, 502 with an
    HTML page ...), or every request waits on a gate (to hold connections open for a parallel-limit test)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.queued: list[tuple[str, int, str, str | None]] = []  # (path prefix, status, kind, method)

    def fail_next(self, prefix: str, status: int, times: int = 1, kind: str = "json", method: str | None = None) -> None:
        with self.lock:
            self.queued += [(prefix, status, kind, method)] * times

    def take(self, path: str, method: str = "GET") -> tuple[int, str] | None:
        with self.lock:
            for i, (prefix, status, kind, only) in enumerate(self.queued):
                if path.startswith(prefix) and only in (None, method):
                    del self.queued[i]
                    return status, kind
        return None


class SimServer:
    """Serve ``handle(Request) -> Response`` on 127.0.0.1; ``requests`` logs (method, path) of each call."""

    def __init__(self, handle: Callable[[Request], Response], *, port: int = 0):
        self.handle = handle
        self.requests: list[tuple[str, str]] = []
        self.faults = Faults()
        self.active = 0
        self.peak_active = 0
        self._count_lock = threading.Lock()
        sim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._send(Response(413, {"error": "body too large"}))
                    return
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                              {k.lower(): v for k, v in self.headers.items()}, body)
                with sim._count_lock:
                    sim.requests.append((req.method, req.path))
                    sim.active += 1
                    sim.peak_active = max(sim.peak_active, sim.active)
                try:
                    self._send(sim.dispatch(req))
                finally:
                    with sim._count_lock:
                        sim.active -= 1

            def _send(self, r: Response) -> None:
                raw = r.body if isinstance(r.body, bytes) else (b"" if r.body is None and r.status == 204
                                                                 else json.dumps(r.body, ensure_ascii=False).encode())
                self.send_response(r.status)
                self.send_header("Content-Type", r.content_type)
                self.send_header("Content-Length", str(len(raw)))
                for k, v in r.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._hooks: queue.Queue = queue.Queue()
        self._hook_thread: threading.Thread | None = None
        self.down_paths: set[str] = set()  # GET of these paths answers 503 with an HTML page
        self.deliveries: list[dict] = []  # every webhook delivery attempt: url, status, headers, body

    def dispatch(self, req: Request) -> Response:
        if req.method == "GET" and req.path in self.down_paths:  # e.g. a host's maintenance page
            return Response(503, b"<html><body>Briefly unavailable for scheduled maintenance.</body></html>",
                            content_type="text/html")
        fault = self.faults.take(req.path, req.method)
        if fault:
            status, kind = fault
            if kind == "html":
                return Response(status, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                                content_type="text/html")
            return self.fault_response(status)
        return self.handle(req)

    def fault_response(self, status: int) -> Response:
        return Response(status, {"error": f"simulated {status}"}, {"Retry-After": "0"} if status == 429 else {})

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "SimServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="shop-sim")
        self._thread.start()
        self._hook_thread = threading.Thread(target=self._deliver_loop, daemon=True, name="shop-sim-hooks")
        self._hook_thread.start()
        return self

    def stop(self) -> None:
        self._hooks.put(None)
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- webhook deliveries, from a worker thread (the shop's queue) -------------------------------
    def queue_delivery(self, url: str, body: bytes, headers: dict[str, str], done: Callable[[int], None]) -> None:
        self._hooks.put((url, body, headers, done))

    def flush_webhooks(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued delivery was attempted."""
        ev = threading.Event()
        self._hooks.put(ev)
        ev.wait(timeout_s)

    def _deliver_loop(self) -> None:
        while True:
            item = self._hooks.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            url, body, headers, done = item
            status = 0
            try:
                req = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback test URL
                    status = r.status
            except urllib.error.HTTPError as e:
                status = e.code
            except OSError:
                status = 0
            self.deliveries.append({"url": url, "status": status, "headers": headers, "body": body})
            done(status)


def page_of(rows: list, page: int, per_page: int) -> tuple[list, int, int]:
    """One page of ``rows`` (pages count from 1): the page, the total, the number of pages (at least 1)."""
    total = len(rows)
    return rows[(page - 1) * per_page: page * per_page], total, max(1, -(-total // per_page))


class ShopSimulator:
    """What the shop simulators share around their SimServer: start/stop (also ``with``), the URL, the
    fault knobs, the shop's clock (``clock_offset`` moves it), the registered webhooks and their flush.
    A subclass answers ``handle(Request) -> Response`` under ``lock``."""

    def __init__(self, *, port: int = 0):
        self.webhooks: dict[int, dict] = {}
        self.lock = threading.RLock()
        self._hook_ids = itertools.count(1)
        self.clock_offset = timedelta(0)
        self.server = SimServer(self.handle, port=port)

    def handle(self, req: Request) -> Response:
        raise NotImplementedError

    def start(self) -> Self:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def faults(self) -> Faults:
        return self.server.faults

    def now(self) -> datetime:
        """The shop's clock: UTC, whole seconds, plus ``clock_offset``."""
        return datetime.now(timezone.utc).replace(microsecond=0) + self.clock_offset

    def flush_webhooks(self) -> None:
        self.server.flush_webhooks()
