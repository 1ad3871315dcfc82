"""Operator endpoints under ``/_sandbox/``: play MALL's part, inspect traffic, turn fault knobs.

No client_id is needed (the sandbox only listens where its operator put it); answers are plain JSON,
errors ``{"error": message}``.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from connector.logs import redact
from connector.sandbox.faults import Faults
from connector.sandbox.state import KINDS, MALL_ACTIONS, SandboxError

if TYPE_CHECKING:
    from connector.sandbox.server import SandboxServer

ENDPOINTS = {
    "GET /_sandbox/orders": "list all orders (id, status, confirmed, test, mdp)",
    "POST /_sandbox/orders": f"create orders {{count, kind: {'|'.join(KINDS)}, status}} as MALL (unconfirmed, webhook)",
    "GET /_sandbox/orders/{id}": "raw order state and its change history",
    "POST /_sandbox/orders/{id}/events": f"change an order as MALL would {{action: {'|'.join(MALL_ACTIONS)}, branch_id}}",
    "GET /_sandbox/requests": "the MALL API request log",
    "DELETE /_sandbox/requests": "clear the request log",
    "GET /_sandbox/faults": "current fault knobs",
    "POST /_sandbox/faults": "change fault knobs (only those given), e.g. {\"error_rate\": 0.2}",
    "DELETE /_sandbox/faults": "reset all fault knobs",
    "GET /_sandbox/webhooks": "webhook URL, pending ids and the delivery log",
    "POST /_sandbox/webhooks/flush": "send the pending webhook batch now",
    "POST /_sandbox/webhook-url": "set the webhook URL {url} (null turns webhooks off)",
}

_ORDER = re.compile(r"^/_sandbox/orders/(\d+)$")
_EVENTS = re.compile(r"^/_sandbox/orders/(\d+)/events$")


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def handle(sandbox: SandboxServer, method: str, path: str, raw_body: bytes) -> tuple[int, Any]:
    """(HTTP status, JSON payload) for one operator request."""
    path = path.rstrip("/") or "/"
    try:
        return _route(sandbox, method, path, raw_body)
    except SandboxError as e:
        return e.http_status, {"error": e.message}
    except _Refused as e:
        return e.status, {"error": str(e)}


def _route(sandbox: SandboxServer, method: str, path: str, raw: bytes) -> tuple[int, Any]:
    state = sandbox.state
    if path == "/_sandbox":
        return _only(method, "GET") or (200, {"endpoints": ENDPOINTS})
    if path == "/_sandbox/orders":
        if method == "GET":
            return 200, {"orders": [{k: o[k] for k in ("id", "status", "confirmed", "test", "mdp")}
                                    for o in state.orders()]}
        if method == "POST":
            body = _body(raw)
            orders = state.create_orders(count=body.get("count", 1), kind=body.get("kind", "normal"),
                                         status=body.get("status"))
            return 201, {"orders": orders}
        return _only(method, "GET", "POST")
    if m := _ORDER.match(path):
        order_id = int(m.group(1))
        return _only(method, "GET") or (200, {"order": state.get(order_id), "history": state.history(order_id)})
    if m := _EVENTS.match(path):
        if refused := _only(method, "POST"):
            return refused
        body = _body(raw)
        order = state.mall_event(int(m.group(1)), str(body.get("action")), branch_id=body.get("branch_id"))
        return 200, {"order": order}
    if path == "/_sandbox/requests":
        if method == "GET":
            return 200, {"requests": [e.to_dict() for e in sandbox.request_log.entries()]}
        if method == "DELETE":
            sandbox.request_log.clear()
            return 200, {"cleared": True}
        return _only(method, "GET", "DELETE")
    if path == "/_sandbox/faults":
        if method == "POST":
            try:
                sandbox.faults = sandbox.faults.replace(**_body(raw))
            except (TypeError, ValueError) as e:
                raise _Refused(400, str(e)) from None
        elif method == "DELETE":
            sandbox.faults = Faults(seed=sandbox.faults.seed)
        elif method != "GET":
            return _only(method, "GET", "POST", "DELETE")
        return 200, sandbox.faults.to_dict()
    if path == "/_sandbox/webhooks":
        return _only(method, "GET") or (200, {
            "url": redact(sandbox.webhook_url) if sandbox.webhook_url else None,
            "interval_s": sandbox.webhook_interval_s,
            "pending": state.pending_changed(),
            "deliveries": [e.to_dict() for e in sandbox.webhook_log.entries()],
        })
    if path == "/_sandbox/webhooks/flush":
        return _only(method, "POST") or (200, {"sent": sandbox.flush_webhooks()})
    if path == "/_sandbox/webhook-url":
        if refused := _only(method, "POST"):
            return refused
        url = _body(raw).get("url")
        if url is not None and (not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url)):
            raise _Refused(400, "url must be an http(s) URL or null")
        sandbox.webhook_url = url
        return 200, {"url": redact(url) if url else None}
    raise _Refused(404, f"no operator endpoint {path}; see GET /_sandbox")


def _only(method: str, *allowed: str) -> tuple[int, Any] | None:
    """None when ``method`` is allowed, else a 405 answer."""
    return None if method in allowed else (405, {"error": f"use {' or '.join(allowed)}"})


def _body(raw: bytes) -> dict:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _Refused(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _Refused(400, "the body must be a JSON object")
    return body
