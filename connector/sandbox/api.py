"""The MALL order API (``/v1/orders...``) as pure functions over an OrderStore; HTTP lives in server.py.

Answers use MALL's envelope: ``{"result": {code, status[, message]}, "paging"?, "data"?}`` and, for
errors, a top-level ``errorCodes: [{errorCode, message, errorAttributes}]`` (mall-api.md §5).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from connector.mall.statuses import ALL_STATUSES
from connector.sandbox.query import MAX_PAGE_SIZE, QueryError, parse_list_query
from connector.sandbox.state import OrderStore, SandboxError

_ORDER = re.compile(r"^/v1/orders/(\d+)$")
_TRACKING = re.compile(r"^/v1/orders/(\d+)/tracking$")
_CONSIGNMENTS = re.compile(r"^/v1/orders/(\d+)/consignments$")
_SERIALS = re.compile(r"^/v1/orders/(\d+)/items/([^/]+)/serial-numbers$")
_BY_STATUS = re.compile(r"^/v1/orders/(%s)$" % "|".join(s.value for s in ALL_STATUSES))


@dataclass
class ApiResponse:
    status: int
    body: dict[str, Any]
    applied: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def ok(**extra: Any) -> ApiResponse:
    return ApiResponse(200, {"result": {"code": 200, "status": "OK"}, **extra})


def error(status: int, code: str, message: str, *, result_status: str = "ERROR") -> ApiResponse:
    return ApiResponse(status, {
        "result": {"code": status, "status": result_status, "message": message},
        "errorCodes": [{"errorCode": code, "message": message, "errorAttributes": []}],
    })


def order_id_of(path: str) -> int | None:
    """The order id in /v1/orders/{id}[/tracking|/consignments|/items/…/serial-numbers], else None."""
    m = _ORDER.match(path) or _TRACKING.match(path) or _CONSIGNMENTS.match(path) or _SERIALS.match(path)
    return int(m.group(1)) if m else None


def handle(store: OrderStore, method: str, path: str, query: dict[str, str], raw_body: bytes, *,
           max_page_size: int = MAX_PAGE_SIZE) -> ApiResponse:
    """Answer one authenticated MALL API request. Lists serve at most ``max_page_size`` orders a page."""
    path = path.rstrip("/") or "/"
    try:
        if path in ("/v1/orders", "/v1/orders/unconfirmed") or _BY_STATUS.match(path):
            if method != "GET":
                return _not_allowed(method)
            by_status = _BY_STATUS.match(path)
            if by_status:  # deprecated /v1/orders/{status}: a status filter on /v1/orders
                query = {**query, "status": by_status.group(1)}
            return _list(store, query, unconfirmed=path.endswith("/unconfirmed"), max_page_size=max_page_size)
        if path == "/v1/orders/labels":
            if method != "POST":
                return _not_allowed(method)
            response = ok(data=store.create_labels(_json(raw_body)))
            response.applied = True
            return response
        if m := _CONSIGNMENTS.match(path):
            if method != "GET":
                return _not_allowed(method)
            made = store.consignments(int(m.group(1)))
            if not made:
                return error(404, "RESOURCE_NOT_FOUND", f"order {m.group(1)} has no consignment (no labels yet)")
            return ok(data=made[-1])
        if m := _SERIALS.match(path):
            if method != "PUT":
                return _not_allowed(method)
            from urllib.parse import unquote

            return _applied(store.set_serial_numbers(int(m.group(1)), unquote(m.group(2)), _json(raw_body)))
        if path == "/v1/orders/stats":
            return _stats(store, query) if method == "GET" else _not_allowed(method)
        if m := _ORDER.match(path):
            if method == "GET":
                return ok(data=store.get(int(m.group(1))))
            if method == "PUT":
                return _applied(store.partner_update(int(m.group(1)), _json(raw_body)))
            return _not_allowed(method)
        if m := _TRACKING.match(path):
            if method != "PUT":
                return _not_allowed(method)
            return _applied(store.partner_tracking(int(m.group(1)), _json(raw_body)))
    except SandboxError as e:
        return error(e.http_status, e.code, e.message)
    except QueryError as e:
        return error(400, "BAD_REQUEST", str(e))
    return error(404, "RESOURCE_NOT_FOUND", "no such endpoint")


def _applied(changed: bool) -> ApiResponse:
    response = ok()
    response.applied = changed
    return response


def _not_allowed(method: str) -> ApiResponse:
    return error(405, "METHOD_NOT_ALLOWED", f"method {method} is not allowed here")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SandboxError(400, "BAD_REQUEST", "the body is not valid JSON") from None


def _list(store: OrderStore, query: dict[str, str], *, unconfirmed: bool, max_page_size: int) -> ApiResponse:
    q = parse_list_query(query, max_page_size)
    rows = store.rows()
    if unconfirmed:
        rows = [r for r in rows if not r["confirmed"]]
    elif not q.filters_status:
        rows = [r for r in rows if r["status"] != "blocked"]
    page, paging = q.page_of(q.select(rows))
    data = [OrderStore.basic(r) for r in page] if q.basic else [r["id"] for r in page]
    return ok(paging=paging, data=data)


def _stats(store: OrderStore, query: dict[str, str]) -> ApiResponse:
    raw = query.get("days", "30")
    if not raw.isdigit() or not 1 <= int(raw) <= 3650:
        raise QueryError("days must be an integer from 1 to 3650")
    include_test = query.get("test", "0").lower() in ("1", "true")
    return ok(data=store.stats(int(raw), include_test=include_test))
