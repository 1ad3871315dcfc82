"""What every carrier simulator shares: a loopback HTTP server, a parcel store and fault knobs.

Each carrier's simulator (``carriers/<name>/simulator.py``) only renders parcels in its carrier's wire
format and checks its carrier's authentication; this module serves it over real HTTP (stdlib
``ThreadingHTTPServer``, like the MALL sandbox) and adds what the carrier's network does on a bad day:

    outage        close the connection without a reply (the API is down / unreachable)
    error_status  answer this 5xx without looking at the request
    delay_s       sleep before answering (longer than the client's timeout = a timeout)
    garbage       answer 200 with bytes that are not the carrier's format

Each fault takes a count (``times``: the next N API requests; -1 = until cleared), so a test can show a
retry recovering. Operator endpoints (no auth, loopback only): ``POST /_sim/parcels`` (set a parcel's
history), ``POST /_sim/faults``, ``GET /_sim/requests`` (request counts), ``GET /_sim``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from carriers.base import PRAGUE

log = logging.getLogger("mall_connector.carriers.simulator")

EventKind = Literal["accepted", "in_transit", "attempt", "at_pickup", "delivered", "returning", "returned"]
EVENT_KINDS = ("accepted", "in_transit", "attempt", "at_pickup", "delivered", "returning", "returned")
MAX_BODY = 256 * 1024


@dataclass(frozen=True)
class SimEvent:
    kind: str
    at: datetime  # aware


@dataclass
class SimFaults:
    outage: int = 0
    error_status: int = 503
    error: int = 0
    delay_s: float = 0.0
    delay: int = 0
    garbage: int = 0

    def take(self, name: str) -> bool:
        n = getattr(self, name)
        if n == 0:
            return False
        if n > 0:
            setattr(self, name, n - 1)
        return True


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, data) -> Response:
    return Response(status, json.dumps(data, ensure_ascii=False).encode("utf-8"))


class CarrierSimulator:
    """Subclass: set ``name``, ``garbage_body`` and implement ``api(method, path, query, headers, body)``."""

    name = "carrier"
    garbage_body = b"<html><body>502 Bad Gateway</body></html>\x00\xff"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self._port = port
        self.parcels: dict[str, list[SimEvent]] = {}
        self.faults = SimFaults()
        self.requests: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- what tests and the demo use ------------------------------------------------------------
    def add_parcel(self, number: str, events: list[tuple[str, datetime | str]]) -> None:
        """Set a parcel's whole history: ``[(kind, when)]``, ``when`` aware or "YYYY-MM-DD HH:MM:SS" Prague."""
        parsed = []
        for kind, at in events:
            if kind not in EVENT_KINDS:
                raise ValueError(f"unknown event kind {kind!r}; one of {', '.join(EVENT_KINDS)}")
            if isinstance(at, str):
                at = datetime.strptime(at, "%Y-%m-%d %H:%M:%S").replace(tzinfo=PRAGUE)
            parsed.append(SimEvent(kind, at))
        with self._lock:
            self.parcels[self.key(number)] = parsed

    def deliver(self, number: str, at: datetime, *, attempt: datetime | None = None,
                shipped: datetime | None = None) -> None:
        """Shorthand: accepted (a day before, or at ``shipped``), an optional attempt, then delivered at ``at``."""
        start = shipped or at - timedelta(days=1)
        events: list[tuple[str, datetime | str]] = [("accepted", start)]
        if attempt is not None:
            events.append(("attempt", attempt))
        events.append(("delivered", at))
        self.add_parcel(number, events)

    def set_faults(self, **knobs) -> None:
        with self._lock:
            for k, v in knobs.items():
                if not hasattr(self.faults, k):
                    raise ValueError(f"unknown fault knob {k!r}")
                setattr(self.faults, k, type(getattr(self.faults, k))(v))

    def request_count(self, path: str | None = None) -> int:
        with self._lock:
            return self.requests.get(path, 0) if path else sum(self.requests.values())

    def key(self, number: str) -> str:
        return number.strip().upper()

    def history(self, number: str) -> list[SimEvent] | None:
        with self._lock:
            events = self.parcels.get(self.key(number))
            return sorted(events, key=lambda e: e.at) if events is not None else None

    # -- the carrier's API (subclasses) ----------------------------------------------------------
    def api(self, method: str, path: str, query: list[tuple[str, str]], headers, body: bytes) -> Response:
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> "CarrierSimulator":
        if self._httpd is None:
            self._httpd = ThreadingHTTPServer((self.host, self._port), _Handler)
            self._httpd.daemon_threads = True
            self._httpd.sim = self  # type: ignore[attr-defined]
            self._port = self._httpd.server_address[1]
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"{self.name}-sim-{self._port}", daemon=True)
            self._thread.start()
            log.info("%s simulator listening on %s", self.name, self.url)
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    # -- operator endpoints -----------------------------------------------------------------------
    def _operator(self, method: str, path: str, body: bytes) -> Response:
        if path == "/_sim" and method == "GET":
            return json_response(200, {"carrier": self.name, "endpoints": {
                "POST /_sim/parcels": '{"number": "...", "events": [["accepted", "2026-12-01 08:00:00"], '
                                      '["delivered", "2026-12-02 11:30:00"]]} sets a parcel\'s history',
                "POST /_sim/faults": '{"outage": 2, "error": 1, "error_status": 503, "delay": 1, "delay_s": 5, '
                                     '"garbage": 1} (counts of API requests; -1 = until cleared)',
                "GET /_sim/requests": "API requests served, per path"}})
        if path == "/_sim/requests" and method == "GET":
            with self._lock:
                return json_response(200, {"total": sum(self.requests.values()), "by_path": dict(self.requests)})
        try:
            data = json.loads(body or b"{}")
            if path == "/_sim/parcels" and method == "POST":
                self.add_parcel(str(data["number"]), [(str(k), str(at)) for k, at in data["events"]])
                return json_response(200, {"ok": True})
            if path == "/_sim/faults" and method == "POST":
                self.set_faults(**data)
                return json_response(200, {"ok": True})
        except (ValueError, KeyError, TypeError) as e:
            return json_response(400, {"error": str(e)})
        return json_response(404, {"error": f"no operator endpoint {method} {path}"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "carrier-sim"

    def log_message(self, fmt, *args):  # request lines would carry query strings; keep them out of logs
        pass

    def _serve(self, method: str) -> None:
        sim: CarrierSimulator = self.server.sim  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(Response(413, b'{"error": "too large"}'))
            return
        body = self.rfile.read(length) if length else b""
        if parts.path.startswith("/_sim"):
            self._send(sim._operator(method, parts.path, body))
            return
        with sim._lock:
            sim.requests[parts.path] = sim.requests.get(parts.path, 0) + 1
            outage = sim.faults.take("outage")
            error = sim.faults.take("error")
            delay = sim.faults.delay_s if sim.faults.take("delay") else 0.0
            garbage = sim.faults.take("garbage")
        if outage:
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        if delay:
            time.sleep(delay)
        if error:
            self._send(Response(sim.faults.error_status, b'{"error": "simulated server error"}'))
            return
        if garbage:
            self._send(Response(200, sim.garbage_body, "application/json"))
            return
        try:
            resp = sim.api(method, parts.path, parse_qsl(parts.query, keep_blank_values=True), self.headers, body)
        except Exception:  # noqa: BLE001 - a simulator bug must show as a 500, not hang the client
            log.exception("%s simulator failed", sim.name)
            resp = Response(500, b'{"error": "simulator bug"}')
        self._send(resp)

    def _send(self, resp: Response) -> None:
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            for k, v in resp.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(resp.body)
        except OSError:
            self.close_connection = True

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")
