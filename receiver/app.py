"""The webhook receiver: validates MALL's deliveries and writes the order ids to the ledger inbox.

MALL POSTs a JSON array of order ids, unsigned, at most once a minute; the token in the URL is the
only secret. So: the token is compared in constant time and a wrong one looks exactly like an
unknown path; the body decides (never the Content-Type); the ids are committed before we answer,
so a 202 means "stored"; a ledger failure answers 503 so MALL tries again. Nothing answers 500.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import math
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from typing import Any, Callable, Iterable, Sequence

from flask import Flask, Response, abort, jsonify, request
from werkzeug.exceptions import HTTPException

from connector import __version__
from connector.logs import redact
from connector.safety import address_in, parse_networks
from connector.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

WEBHOOK_PREFIX = "/webhooks/mall/"
SAFE_PATH = WEBHOOK_PREFIX + "***"  # the only form of the webhook path we ever log
MAX_ORDER_ID = 2**63 - 1  # the ledger stores ids as signed 64-bit integers
SERVICE = "mall-connector"

Readiness = Callable[[], "tuple[bool, dict]"]


class BadBody(ValueError):
    """The body is not a JSON array of positive integer order ids."""


def parse_order_ids(raw: bytes) -> list[int]:
    """Strictly parse a delivery: a non-empty JSON array of integers in 1..2**63-1.

    ``type(x) is int`` rejects bools (a subclass of int) and floats such as ``1.0``."""
    try:
        text = raw.decode("utf-8-sig")  # strict UTF-8; a leading BOM is tolerated
    except UnicodeDecodeError:
        raise BadBody("body is not valid UTF-8") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # ValueError also covers int literals too long to convert
        raise BadBody("body is not valid JSON") from None
    if not isinstance(data, list):
        raise BadBody("body must be a JSON array of order ids")
    if not data:
        raise BadBody("body is an empty array")
    for i, x in enumerate(data):
        if type(x) is not int or not 0 < x <= MAX_ORDER_ID:
            raise BadBody(f"item {i} is not a positive integer order id")
    return data


class WrongTokenThrottle:
    """Counts wrong-token requests per remote address in one-minute windows.

    Memory is bounded: at most ``max_addresses`` windows are kept; the oldest is dropped first."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic, *, window_s: float = 60.0,
                 max_addresses: int = 10_000):
        self.limit = limit
        self.clock = clock
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._windows: OrderedDict[str, list] = OrderedDict()  # addr -> [window start, count], oldest first
        self._lock = threading.Lock()

    def hit(self, addr: str) -> tuple[int, float]:
        """Record one wrong-token request. Returns (requests in this window, seconds until it ends)."""
        with self._lock:
            now = self.clock()
            w = self._windows.get(addr)
            if w is None or now - w[0] >= self.window_s:
                w = [now, 0]
                self._windows[addr] = w
                self._windows.move_to_end(addr)
                while len(self._windows) > self.max_addresses:
                    self._windows.popitem(last=False)
            w[1] += 1
            return w[1], max(0.0, self.window_s - (now - w[0]))

    def blocked(self, addr: str) -> float | None:
        """Seconds left in ``addr``'s window while it is over the limit, else None.

        While an address is throttled every request from it is refused, the right token included:
        otherwise each guess would still learn yes (202) or no (429)."""
        with self._lock:
            w = self._windows.get(addr)
            if w is None or w[1] <= self.limit:
                return None
            left = self.window_s - (self.clock() - w[0])
            return left if left > 0 else None

    def __len__(self) -> int:
        return len(self._windows)


def client_address(remote_addr: str | None, forwarded_for: str | None, trusted: tuple) -> str:
    """The address the throttle counts: the TCP peer, unless the peer is a trusted proxy.

    Behind a trusted proxy it is the right-most ``X-Forwarded-For`` entry that is not itself a
    trusted proxy (entries further left are whatever the client claims and are never believed)."""
    peer = remote_addr or "unknown"
    if not trusted or not forwarded_for or not address_in(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops[-32:]):  # a bound: no one chains 32 proxies
        if not address_in(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop.strip("[]")))
            except ValueError:
                return peer  # garbage in the header: count the proxy itself
    return peer


def _token_source(tokens: Callable[[], Iterable[Any]] | Sequence[Any]) -> Callable[[], list[bytes]]:
    """Normalise ``tokens`` (a callable for hot reload, or a fixed sequence; str or SecretStr) to bytes."""

    def as_bytes(values: Iterable[Any]) -> list[bytes]:
        out = []
        for t in values:
            t = t.get_secret_value() if hasattr(t, "get_secret_value") else t
            if t:
                out.append(t.encode("utf-8") if isinstance(t, str) else bytes(t))
        return out

    if callable(tokens):
        return lambda: as_bytes(tokens())
    fixed = as_bytes(tokens)
    return lambda: fixed


def _token_ok(given: str, valid: list[bytes]) -> bool:
    """Constant-time compare against every valid token (no early exit; several are valid during rotation).

    Digests are compared, so not even the token's length leaks through timing."""
    g = hashlib.sha256(given.encode("utf-8", "replace")).digest()
    ok = False
    for t in valid:
        ok |= hmac.compare_digest(g, hashlib.sha256(t).digest())
    return ok


def _read_at_most(stream: Any, n: int) -> bytes:
    """Read up to ``n`` bytes; works for Content-Length and chunked bodies alike."""
    chunks, left = [], n
    while left > 0:
        chunk = stream.read(min(left, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class IngestSummary:
    """One INFO line for accepted deliveries at most every ``every_s`` instead of one per delivery (issue 17:
    the line per delivery, through the redacting filter, cost a tenth of the receiver's CPU under load). MALL
    sends a webhook at most once a minute, so in normal operation each delivery still gets its line at once;
    a burst is summed up. Per-delivery detail is at DEBUG."""

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.every_s = every_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last = -math.inf
        self._deliveries = self._ids = self._new = 0

    def add(self, ids: int, new: int) -> None:
        with self._lock:
            self._deliveries += 1
            self._ids += ids
            self._new += new
            now = self.clock()
            if now - self._last < self.every_s:
                return
            self._last = now
            counts = self._deliveries, self._ids, self._new
            self._deliveries = self._ids = self._new = 0
        if counts[0] == 1:
            log.info("webhook: %d order ids received, %d new in the inbox", counts[1], counts[2])
        else:
            log.info("webhook: %d deliveries with %d order ids received, %d new in the inbox (since the last "
                     "such line)", *counts)


def _error(status: int, message: str, **headers: str) -> Response:
    resp = jsonify(error=message)
    resp.status_code = status
    resp.headers.update(headers)
    return resp


def create_app(
    *,
    ledger: Any,
    tokens: Callable[[], Iterable[Any]] | Sequence[Any],
    metrics: Metrics | None,
    readiness: Readiness | None = None,
    max_body_bytes: int = 65536,
    max_ids: int = 1000,
    wrong_token_limit_per_minute: int = 30,
    instance_id: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    trusted_proxies: Iterable[str] = (),
    shop_adapters: Callable[[], dict[str, Any]] | None = None,
    token_account: Callable[[str], str | None] | None = None,
) -> Flask:
    """The receiver's WSGI app. ``tokens`` may be a zero-arg callable so a config reload can swap them.

    ``instance_id`` (random when None) is shown by /healthz so ``check`` can prove that the public URL
    reaches this very process. ``clock`` is injectable for the wrong-token throttle tests.
    ``trusted_proxies`` (addresses or networks): only a peer among them may name the client in
    ``X-Forwarded-For``; the throttle then counts that client, not the proxy. ``token_account(token)``
    (issue 18, connector/accounts.py) names the MALL account a valid token belongs to."""
    metrics = metrics or Metrics()
    if metrics.ledger is None:
        metrics.bind_ledger(ledger)
    valid_tokens = _token_source(tokens)
    throttle = WrongTokenThrottle(wrong_token_limit_per_minute, clock)
    trusted = parse_networks(trusted_proxies)
    instance = instance_id or uuid.uuid4().hex

    app = Flask(__name__, static_folder=None)  # no static route: every unknown path is a plain 404
    app.url_map.merge_slashes = False  # "//webhooks..." must 404, not redirect to a URL holding a token
    app.config["MALL_CONNECTOR_INSTANCE"] = instance

    def scrub(text: str) -> str:
        """``redact`` plus the tokens valid right now (they may not be registered secrets yet)."""
        text = redact(text)
        for t in valid_tokens():
            text = text.replace(t.decode("utf-8", "replace"), "***")
        return text

    if not valid_tokens():
        log.warning("receiver: no webhook token configured; every delivery will get 404")
    summary = IngestSummary(clock=clock)

    def _webhook(token: str) -> Response:
        metrics.webhook_received()
        addr = client_address(request.remote_addr, request.headers.get("X-Forwarded-For"), trusted)
        left = throttle.blocked(addr)
        if left is not None:  # throttled: no answer tells a right guess from a wrong one
            metrics.webhook_rejected("throttled")
            return _error(429, "too many requests", **{"Retry-After": str(max(1, math.ceil(left)))})
        if not _token_ok(token, valid_tokens()):
            count, retry_after = throttle.hit(addr)
            if count > throttle.limit:
                metrics.webhook_rejected("throttled")
                if count == throttle.limit + 1:  # once per window and address
                    log.warning("webhook %s: more than %d wrong tokens in a minute from %s; answering 429",
                                SAFE_PATH, throttle.limit, addr)
                return _error(429, "too many requests", **{"Retry-After": str(max(1, math.ceil(retry_after)))})
            metrics.webhook_rejected("not_found")
            log.info("webhook %s: wrong or old token from %s (404)", SAFE_PATH, addr)
            abort(404)

        declared = request.content_length
        if declared is not None and declared > max_body_bytes:
            metrics.webhook_rejected("too_large")
            log.warning("webhook %s: body of %d bytes is over the %d-byte limit", SAFE_PATH, declared, max_body_bytes)
            return _error(413, f"body is larger than {max_body_bytes} bytes")
        raw = _read_at_most(request.stream, max_body_bytes + 1)
        if len(raw) > max_body_bytes:
            metrics.webhook_rejected("too_large")
            log.warning("webhook %s: body is over the %d-byte limit", SAFE_PATH, max_body_bytes)
            return _error(413, f"body is larger than {max_body_bytes} bytes")
        try:
            ids = parse_order_ids(raw)
        except BadBody as e:
            metrics.webhook_rejected("bad_body")
            log.warning("webhook %s: rejected (400): %s", SAFE_PATH, e)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("webhook %s: rejected body (%d bytes): %s", SAFE_PATH, len(raw), scrub(repr(raw[:500])))
            return _error(400, str(e))
        if len(ids) > max_ids:
            metrics.webhook_rejected("too_large")
            log.warning("webhook %s: %d ids is more than the limit of %d", SAFE_PATH, len(ids), max_ids)
            return _error(413, f"more than {max_ids} order ids")

        try:
            account = token_account(token) if token_account is not None else None  # issue 18
            queued = ledger.inbox.enqueue(ids, source="webhook", **({"account": account} if account else {}))
        except Exception as e:  # LedgerError, or anything else from the database: MALL must retry
            metrics.webhook_rejected("ledger_error")
            log.error("webhook %s: cannot store %d ids, answering 503: %s", SAFE_PATH, len(ids), scrub(str(e)))
            return _error(503, "cannot store the delivery now; please retry", **{"Retry-After": "60"})
        metrics.webhook_accepted(len(ids))
        summary.add(len(ids), queued)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("webhook: %d order ids received, %d new in the inbox", len(ids), queued)
            log.debug("webhook: order ids %s", ids)
        # Only integers in the body, so no secret can appear: no jsonify, no redaction (issue 17).
        return Response(b'{"accepted":%d,"queued":%d}\n' % (len(ids), queued), status=202,
                        content_type="application/json")

    app.add_url_rule(WEBHOOK_PREFIX + "<token>", "webhook", _webhook, methods=["POST"],
                     provide_automatic_options=False)
    if shop_adapters is not None:  # shop webhooks (Shoptet, WooCommerce): adapters/shared/shop_webhooks.py
        from adapters.shared.shop_webhooks import shop_webhook_blueprint

        app.register_blueprint(shop_webhook_blueprint(shop_adapters))

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness, cheap and ledger-free; ``instance`` identifies this process."""
        return jsonify(status="ok", service=SERVICE, version=__version__, instance=instance)

    @app.get("/readyz")
    def readyz() -> Response:
        """Ready when the ledger answers and the daemon's ``readiness()`` (recent sync jobs) says so."""
        body: dict[str, Any] = {"service": SERVICE, "instance": instance}
        ready = True
        try:
            h = ledger.health()
            body.update(ledger="ok", failed_changes=h.get("failed_changes"), inbox_depth=h.get("inbox_depth"),
                        open_changes=h.get("open_changes"), open_actions=h.get("open_actions"))
        except Exception as e:
            ready = False
            body.update(ledger="unreachable", failed_changes=None)
            log.warning("readyz: ledger unreachable: %s", scrub(str(e)))
        if readiness is not None:
            try:
                ok, details = readiness()
            except Exception as e:
                ok, details = False, {"error": "readiness check failed"}
                log.warning("readyz: readiness check raised: %s", scrub(repr(e)))
            ready = ready and bool(ok)
            body["checks"] = details
        body["status"] = "ready" if ready else "not_ready"
        resp = jsonify(body)
        resp.status_code = 200 if ready else 503
        return resp

    @app.get("/metrics")
    def metrics_view() -> Response:
        return Response(metrics.render(), content_type=CONTENT_TYPE)

    @app.errorhandler(405)
    def method_not_allowed(e: HTTPException) -> HTTPException:
        if request.path.startswith(WEBHOOK_PREFIX):
            metrics.webhook_received()
            metrics.webhook_rejected("method")
        return e

    @app.errorhandler(Exception)
    def unexpected(e: Exception) -> Response | HTTPException:
        """Last resort: HTTP errors pass through; anything else is a 503 (retry later), never a 500."""
        if isinstance(e, HTTPException):
            return e
        path = SAFE_PATH if request.path.startswith(WEBHOOK_PREFIX) else request.path
        log.error("unexpected error on %s %s: %s", request.method, scrub(path), scrub(repr(e)))
        log.debug("%s", scrub(traceback.format_exc()))
        return _error(503, "temporary error; please retry", **{"Retry-After": "60"})

    return app

