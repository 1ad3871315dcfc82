"""HTTP client for the MALL Marketplace API (orders only).

One pooled ``httpx.Client``; the client_id rides as a query parameter on every call (MALL has no other
auth), so URLs are never logged or put in errors: we only ever name an endpoint as ``"METHOD /path"``.

Retry rules (see ``RetryPolicy``):

* reads retry on transport errors, 408, 5xx and 429 (sleeping ``X-RateLimit-Reset`` when MALL gives it),
  bounded in attempts and total time; the last typed error is raised;
* writes (PUT) are re-sent only when MALL certainly did not act on them: a 429, or a connection that never
  opened. Any other 4xx is final. An ambiguous failure (timeout or drop after sending, 5xx, an unreadable
  2xx) raises ``MallOutcomeUnknown`` without re-sending: status transitions are one-way, so the sync layer
  re-reads the order before deciding again.

Long-term retries belong in the ledger, not here: these bounds are short on purpose.

Every answer is bounded before it is believed (issue 12 item 1, issue 16 item 5): at most ``max_response_bytes``
are read, counted while streaming (after decompression too); the whole call, retries included, ends at
``deadline_s`` however slowly MALL trickles (``connector.mall.transport``); JSON nested deeper than
``MAX_JSON_DEPTH`` is refused; a list is never followed past ``max_pages`` pages and its ``paging`` must agree
with the items it carries; ids and numbers must fit the ledger's 64-bit integers. Whatever does not fit is a
``MallBadResponse`` naming the endpoint, the field and the limit -- never a crash of the job that asked.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import httpx
import pydantic
from tenacity import RetryCallState, Retrying, retry_if_exception

from connector import __version__
from connector.logs import RedactingFilter, redact, register_secret
from connector.mall.errors import (
    MallBadResponse,
    MallError,
    MallOutcomeUnknown,
    MallRateLimited,
    MallServerError,
    MallTransportError,
    error_for_status,
)
from connector.mall import transport as deadline_transport
from connector.mall.quota import CallCounter, QuotaReading, QuotaState, kind_of
from connector.mall.models import (
    INT64_MAX,
    BasicOrder,
    Consignment,
    LabelRequest,
    Labels,
    Order,
    Paging,
    Stats,
    StatusUpdate,
    format_mall_datetime,
)
from connector.mall.statuses import parse_status

__all__ = ["DEFAULT_BASE_URL", "MallClient", "RetryPolicy"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://mpapi.mallgroup.com"
_URL_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_RESERVED_PARAMS = frozenset({"client_id", "page", "page_size", "filter", "test"})

DEFAULT_MAX_RESPONSE_BYTES = 20 * 1024 * 1024
DEFAULT_DEADLINE_S = 60.0
DEFAULT_MAX_PAGES = 1000
#: MALL's deepest answer (envelope > data > order > items > item > serial_numbers) is 6 levels; 32 is generous.
MAX_JSON_DEPTH = 32
#: An error answer (4xx/5xx) is decided by its HTTP status; only this much of its body is read for the message.
ERROR_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for retrying one call. ``sleep`` is injectable so tests never wait for real.

    The wait before retry n (1-based) is ``min(max_backoff_s, base_s * 2**(n-1) + uniform(0, base_s))``; after a
    429 that names ``X-RateLimit-Reset`` it is that many seconds instead. A reset longer than ``reset_cap_s`` is
    not waited for at all (the limit is a daily/hourly quota: the ledger retries later). No retry starts when
    its wait would end past ``max_total_s`` from the first attempt.
    """

    max_attempts: int = 5
    base_s: float = 0.5
    max_backoff_s: float = 30.0
    max_total_s: float = 120.0
    reset_cap_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (1 = no retries)")

    def backoff(self, retry_number: int) -> float:
        """Exponential backoff with jitter for the ``retry_number``-th retry (1 = first)."""
        return min(self.max_backoff_s, self.base_s * 2 ** (retry_number - 1) + random.uniform(0, self.base_s))


def _protect_httpx_logger() -> None:
    """httpx logs every request URL (with the client_id) at INFO; mask it whoever configured logging."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


def _reset_seconds(response: httpx.Response) -> float | None:
    """``X-RateLimit-Reset`` (seconds until the window resets), else a numeric ``Retry-After``; None if neither."""
    for header in ("X-RateLimit-Reset", "Retry-After"):
        raw = response.headers.get(header)
        if not raw:
            continue
        try:
            value = float(raw.split(",")[0].strip())
        except ValueError:
            continue
        if value >= 0:
            return value
    return None


def _snippet(content: bytes) -> str:
    """The start of an unreadable body, for a human to recognise (a proxy page, a maintenance notice)."""
    text = content[:300].decode("utf-8", "replace")
    text = " ".join(_URL_RE.sub("<url>", text).split())
    return redact(text[:80])


class _Answer:
    """An HTTP answer read within the bounds: status, headers and the (decoded) body bytes."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: httpx.Headers, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_depth_ok(value: Any, limit: int) -> bool:
    """True when ``value`` nests at most ``limit`` containers deep (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def _load_json(endpoint: str, status_code: int, content: bytes) -> Any:
    """Parse JSON with NaN/Infinity refused and nesting bounded; ValueError when it is not JSON at all."""
    try:
        body = json.loads(content, parse_constant=_refuse_constant)
    except RecursionError:
        body = None
        deep = True
    else:
        deep = not _json_depth_ok(body, MAX_JSON_DEPTH)
    if deep:
        raise MallBadResponse(endpoint, status_code, f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
                              field="(root)", limit="max_depth")
    return body


def _transport_error(endpoint: str, exc: httpx.RequestError) -> MallTransportError:
    """Map an httpx failure; only connect-phase failures are known not to have reached MALL."""
    not_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    our_bug = isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError))
    # The endpoint is named already; a URL in the text would only add the host and the client_id.
    detail = redact(_URL_RE.sub("<url>", str(exc))) or "no detail"
    return MallTransportError(
        endpoint,
        0,
        f"{type(exc).__name__}: {detail}",
        maybe_sent=not (not_sent or our_bug),
        retryable=not our_bug,
    )


def _parse_envelope(endpoint: str, response: _Answer) -> dict[str, Any]:
    """The ``{result, paging, data}`` envelope, or the typed error it (or the HTTP status) stands for."""
    status_code = response.status_code
    if status_code == 204:
        return {"result": {"code": 204, "status": "OK"}}
    problem = None
    try:
        body = _load_json(endpoint, status_code, response.content)
    except MallBadResponse as exc:
        if status_code < 400:
            raise
        problem, body = exc.message, None  # an error answer: its HTTP status still decides
    except (ValueError, UnicodeDecodeError):
        content_type = response.headers.get("content-type", "no content-type")
        problem = f"response is not JSON ({content_type}): {_snippet(response.content)!r}"
        body = None
    if problem is None and not (isinstance(body, dict) and isinstance(body.get("result"), dict)):
        problem = "response has no result envelope"
    envelope: dict[str, Any] = body if problem is None else {}
    result = envelope.get("result") or {}
    message = result.get("message") if isinstance(result.get("message"), str) else None
    error_codes = envelope.get("errorCodes")
    reset_s = _reset_seconds(response)

    if status_code >= 400:
        # The HTTP status decides even when the body is an HTML page from a proxy (a 502 is still a 5xx).
        raise error_for_status(endpoint, status_code, message or problem, error_codes, reset_s=reset_s)
    if problem is not None:
        raise MallBadResponse(endpoint, status_code, problem)
    if not 200 <= status_code < 300:
        raise MallBadResponse(endpoint, status_code, f"unexpected HTTP {status_code} (redirects are not followed)")
    outcome = str(result.get("status", "")).upper()
    if outcome == "LIMITED":
        raise error_for_status(endpoint, 429, message or "result.status LIMITED", error_codes, reset_s=reset_s)
    if outcome == "ERROR":
        # An error inside a 200: result.code says which kind, when it is an error code at all.
        code = result.get("code")
        code = code if isinstance(code, int) and not isinstance(code, bool) and code >= 400 else status_code
        raise error_for_status(endpoint, code, message or "result.status ERROR", error_codes, reset_s=reset_s)
    return envelope


def _filter_value(value: Any) -> str:
    """A Python value as MALL's filter syntax: booleans true/false, lists ``in:a,b``, dates/datetimes MALL format."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_mall_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple, set, frozenset)):
        return "in:" + ",".join(_filter_value(v) for v in value)
    return str(value)


def _check_id(order_id: int) -> int:
    """Order ids go into the path: only positive ints (never text that could change the path)."""
    if isinstance(order_id, bool) or not isinstance(order_id, int) or not 0 < order_id <= INT64_MAX:
        raise ValueError(f"order_id must be a positive 64-bit int, not {order_id!r}")
    return order_id


class MallClient:
    """The orders part of the MALL API, with typed errors and bounded retries. Thread-safe; close() it."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        on_response: Callable[[str, int], None] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_pages: int = DEFAULT_MAX_PAGES,
        calls_tz: str | None = None,
    ) -> None:
        if max_response_bytes < 1024 or deadline_s <= 0 or max_pages < 1:
            raise ValueError("max_response_bytes must be at least 1024, deadline_s positive, max_pages at least 1")
        base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if "?" in base_url or "#" in base_url:
            raise ValueError("base_url must not carry a query string or fragment (the client_id is added per call)")
        if not client_id:
            raise ValueError("client_id is required")
        register_secret(client_id)
        _protect_httpx_logger()
        self.base_url = base_url
        self._retry = retry or RetryPolicy()
        self._on_response = on_response
        self.max_response_bytes = max_response_bytes
        self.deadline_s = deadline_s
        self.max_pages = max_pages
        # issue 17: this client's quota reading (X-RateLimit-*) and its calls by day and kind. One client per
        # account, so both live here and nothing is global.
        self.quota = QuotaState()
        from zoneinfo import ZoneInfo

        self.calls = CallCounter(tz=ZoneInfo(calls_tz) if calls_tz else None)
        self._http = httpx.Client(
            base_url=base_url,
            params={"client_id": client_id},
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "X-Application-Name": "mall-connector",
                "X-Application-Version": __version__,
                # Decoded here, within max_response_bytes (httpx would inflate a whole chunk at once).
                "Accept-Encoding": "gzip, deflate",
            },
            timeout=timeout_s,
            transport=transport if transport is not None else deadline_transport.DeadlineTransport(),
            # A redirect would be re-sent elsewhere without our client_id (and a PUT re-sent): treat it as an error.
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"MallClient(base_url={redact(self.base_url)!r})"

    def quota_reading(self) -> QuotaReading:
        """MALL's rate-limit windows and remaining budget as its last answer told (docs/quota.md)."""
        return self.quota.reading()

    # -- lifecycle -------------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MallClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- orders ----------------------------------------------------------------------------------------

    def iter_orders(
        self,
        *,
        status: str | list[str] | None = None,
        include_test: bool = False,
        basic: bool = True,
        page_size: int = 100,
        **filters: Any,
    ) -> Iterator[BasicOrder | int]:
        """``GET /v1/orders``, page by page: BasicOrder entries (``filter=basic``) or bare order ids.

        ``status`` is one status or a list (sent as ``in:a,b``); any other keyword is a MALL field filter
        (``customer_id=123``, ``mdp=True``, ``shipped="neq:$null"``, ``_sort="id:desc"``). Blocked orders only
        appear when asked for by status (MALL's rule).
        """
        params = self._list_params(status=status, include_test=include_test, basic=basic, filters=filters)
        yield from self._pages("/v1/orders", "GET /v1/orders", params, basic=basic, page_size=page_size)

    def list_orders(
        self,
        *,
        status: str | list[str] | None = None,
        include_test: bool = False,
        basic: bool = True,
        page_size: int = 100,
        **filters: Any,
    ) -> list[BasicOrder] | list[int]:
        """All pages of ``iter_orders``. An order that moved between pages while we read is listed once (latest copy)."""
        return _dedupe(
            self.iter_orders(status=status, include_test=include_test, basic=basic, page_size=page_size, **filters)
        )

    def list_unconfirmed(self, *, include_test: bool = False) -> list[BasicOrder]:
        """``GET /v1/orders/unconfirmed``: orders MALL changed and we have not confirmed yet (all pages)."""
        params: dict[str, Any] = {"filter": "basic"}
        if include_test:
            params["test"] = 1
        return _dedupe(
            self._pages("/v1/orders/unconfirmed", "GET /v1/orders/unconfirmed", params, basic=True, page_size=100)
        )

    def list_by_ids(self, ids: list[int], *, include_test: bool = True) -> tuple[dict[int, BasicOrder], bool]:
        """``GET /v1/orders?filter=basic&id=in:…`` over every status (blocked too), one call per page.

        Returns (the orders listed by id, honoured). ``honoured`` is False when MALL ignored the id filter (an
        order not asked for, or ``paging.total`` above the ids asked): reading stops at that page, never pages
        through every order, and the caller reads the orders one by one instead (mall-api.md §2.1: unverified)."""
        from connector.mall.statuses import ALL_STATUSES

        wanted = {_check_id(i) for i in ids}
        if not wanted:
            return {}, True
        if len(wanted) > 1000:
            raise ValueError("at most 1000 ids per list_by_ids call")
        ignored = False

        def on_paging(paging: Paging | None) -> None:
            nonlocal ignored
            if paging is not None and paging.total is not None and paging.total > len(wanted):
                ignored = True

        params = self._list_params(status=[s.value for s in ALL_STATUSES], include_test=include_test, basic=True,
                                   filters={"id": sorted(wanted)})
        listed: dict[int, BasicOrder] = {}
        for basic in self._pages("/v1/orders", "GET /v1/orders", params, basic=True, page_size=len(wanted),
                                 on_paging=on_paging):
            if ignored or basic.id not in wanted:
                return listed, False
            listed[basic.id] = basic
        return listed, not ignored

    def get_order(self, order_id: int) -> Order:
        """``GET /v1/orders/{id}``. MALL's ``data`` is an object; old examples wrap it in a one-element list."""
        path = f"/v1/orders/{_check_id(order_id)}"
        envelope = self._read(path, "GET /v1/orders/{id}")
        return self._model(Order, _single(f"GET {path}", envelope.get("data")), f"GET {path}")

    def update_order(self, order_id: int, update: StatusUpdate) -> None:
        """``PUT /v1/orders/{id}``: confirm and/or change status. Never re-sent after an ambiguous failure."""
        body = update.to_body()
        if not body:
            raise ValueError("the StatusUpdate carries nothing to send")
        self._write(f"/v1/orders/{_check_id(order_id)}", "PUT /v1/orders/{id}", body)

    def update_tracking(self, order_id: int, tracking_number: str, tracking_url: str) -> None:
        """``PUT /v1/orders/{id}/tracking``: replace tracking of a shipped order (MALL prefers it with →shipped)."""
        if not tracking_number or not tracking_url:
            raise ValueError("tracking_number and tracking_url are both required")
        body = {"tracking_number": tracking_number, "tracking_url": tracking_url}
        self._write(f"/v1/orders/{_check_id(order_id)}/tracking", "PUT /v1/orders/{id}/tracking", body)

    def stats(self, days: int = 30) -> Stats:
        """``GET /v1/orders/stats?days=N``: how many orders are in each status over the last N days."""
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise ValueError(f"days must be a positive int, not {days!r}")
        path = "/v1/orders/stats"
        envelope = self._read(path, "GET /v1/orders/stats", params={"days": days})
        return self._model(Stats, _single(f"GET {path}", envelope.get("data")), f"GET {path}")

    # -- MALL Delivery: labels, consignments, serial numbers (mall-api.md §2.6, §2.7) ----------------------

    def create_labels(self, labels: list[LabelRequest], *, labels_type: str = "pdf", labels_per_page: int = 4,
                      first_position: int = 1) -> Labels:
        """``POST /v1/orders/labels``: carrier labels for MALL Delivery orders, several orders in one call.

        Like a PUT it is never re-sent after an ambiguous failure (``MallOutcomeUnknown``): a second call would
        make a second label set. Re-read ``get_consignments`` for each order before asking again."""
        if not labels:
            raise ValueError("no orders to make labels for")
        if labels_type not in ("pdf", "zpl"):
            raise ValueError("labels_type must be pdf or zpl")
        body = {
            "labels_type": labels_type,
            "first_position": int(first_position),
            "labels_per_page": int(labels_per_page),
            "labels": [{"order_id": l.order_id, "parcel_count": l.parcel_count} for l in labels],
        }
        path = "/v1/orders/labels"
        endpoint = f"POST {path}"
        envelope = self._write(path, "POST /v1/orders/labels", body, method="POST")
        try:
            return self._model(Labels, _single(endpoint, envelope.get("data")), endpoint)
        except MallBadResponse as exc:
            # MALL answered 200, so the labels were most likely made: unreadable is "outcome unknown", never "retry".
            raise MallOutcomeUnknown(endpoint, exc.status_code, f"labels made but the answer is unreadable "
                                     f"({exc.message})", cause=exc) from exc

    def get_consignments(self, order_id: int) -> list[Consignment]:
        """``GET /v1/orders/{id}/consignments``: the label sets MALL stored for the order; [] when there is none
        (MALL answers 404 for an order without labels)."""
        from connector.mall.errors import MallNotFound

        path = f"/v1/orders/{_check_id(order_id)}/consignments"
        try:
            envelope = self._read(path, "GET /v1/orders/{id}/consignments")
        except MallNotFound:
            return []
        data = envelope.get("data")
        if data is None:
            return []
        items = data if isinstance(data, list) else [data]
        if len(items) > 1000:
            raise MallBadResponse(f"GET {path}", 200, f"{len(items)} consignments for one order", field="data")
        return [self._model(Consignment, _single(f"GET {path}", x), f"GET {path}", where=f"data.{i}")
                for i, x in enumerate(items)]

    def set_serial_numbers(self, order_id: int, item_id: str, serial_numbers: list[str]) -> None:
        """``PUT /v1/orders/{id}/items/{itemId}/serial-numbers`` with the item's whole list (a JSON array)."""
        from urllib.parse import quote

        if not isinstance(item_id, str) or not item_id or len(item_id) > 100:
            raise ValueError("item_id must be a non-empty string of at most 100 characters")
        if not isinstance(serial_numbers, list) or not all(isinstance(x, str) and x for x in serial_numbers):
            raise ValueError("serial_numbers must be a list of non-empty strings")
        path = f"/v1/orders/{_check_id(order_id)}/items/{quote(item_id, safe='')}/serial-numbers"
        self._write(path, "PUT /v1/orders/{id}/items/{itemId}/serial-numbers", list(serial_numbers))

    # -- internals -------------------------------------------------------------------------------------

    @staticmethod
    def _list_params(*, status: Any, include_test: bool, basic: bool, filters: dict[str, Any]) -> dict[str, Any]:
        clash = _RESERVED_PARAMS & filters.keys()
        if clash:
            raise ValueError(f"{', '.join(sorted(clash))} cannot be used as a filter; the client sets it")
        params: dict[str, Any] = {}
        if basic:
            params["filter"] = "basic"
        if include_test:
            params["test"] = 1
        if status is not None:
            if isinstance(status, str):
                # A modifier ("neq:open") is passed through; a bare status is checked to catch typos early.
                params["status"] = status if ":" in status else parse_status(status).value
            else:
                params["status"] = "in:" + ",".join(parse_status(s).value for s in status)
        for key, value in filters.items():
            if value is not None:
                params[key] = _filter_value(value)
        return params

    def _pages(
        self, path: str, template: str, params: dict[str, Any], *, basic: bool, page_size: int,
        on_paging: Callable[[Paging | None], None] | None = None,
    ) -> Iterator[Any]:
        """Follow ``page`` until ``paging.pages`` (or a page without paging, or an empty page)."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        endpoint = f"GET {path}"
        page, seen, per_page = 1, 0, 0
        while True:
            envelope = self._read(path, template, params={**params, "page": page, "page_size": page_size})
            paging = self._paging(endpoint, envelope.get("paging"))
            items = self._list_data(endpoint, envelope, paging, basic=basic)
            per_page = max(per_page, len(items), (paging.size or 0) if paging else 0)
            if paging is not None:
                self._check_paging(endpoint, paging, page=page, page_size=page_size, count=len(items),
                                   seen=seen, per_page=per_page)
            seen += len(items)
            if on_paging is not None:
                on_paging(paging)
            yield from items
            if paging is None or paging.pages is None or page >= paging.pages or not items:
                return
            page += 1

    def _paging(self, endpoint: str, raw: Any) -> Paging | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise MallBadResponse(endpoint, 200, f"paging is a {type(raw).__name__}, not an object", field="paging")
        return self._model(Paging, raw, endpoint, where="paging")

    def _check_paging(self, endpoint: str, paging: Paging, *, page: int, page_size: int, count: int, seen: int,
                      per_page: int) -> None:
        """A page must be the one asked for, hold no more than asked, and agree with its ``paging``: a list is
        followed for at most ``max_pages`` pages, so a ``pages: 1e9`` answer is refused, never walked."""

        def bad(field: str, why: str, limit: str | None = None) -> MallBadResponse:
            return MallBadResponse(endpoint, 200, f"{field}: {why}", field=field, limit=limit)

        if paging.pages is not None and paging.pages > self.max_pages:
            raise bad("paging.pages", f"{paging.pages} pages exceed max_pages ({self.max_pages})", "max_pages")
        if paging.page is not None and paging.page != page:
            raise bad("paging.page", f"page {paging.page} answered when page {page} was asked for")
        if count > page_size:
            raise bad("data", f"{count} items on a page of at most {page_size} (page_size)", "page_size")
        if paging.size is not None and count > paging.size:
            raise bad("paging.size", f"{count} items on the page but size says {paging.size}")
        if paging.total is not None:
            if count > paging.total or seen + count > paging.total + per_page:
                raise bad("paging.total", f"total {paging.total} but {seen + count} items listed so far")
            if paging.pages is not None and paging.pages > max(1, paging.total):
                raise bad("paging.pages", f"{paging.pages} pages for a total of {paging.total} items")
            if paging.pages is not None and per_page and paging.total > paging.pages * per_page:
                raise bad("paging.total", f"total {paging.total} does not fit {paging.pages} page(s) of {per_page}")

    def _list_data(self, endpoint: str, envelope: dict[str, Any], paging: Paging | None, *, basic: bool) -> list[Any]:
        data = envelope.get("data")
        if data is None:
            if paging is not None and paging.total == 0:
                return []  # an empty list may come without data
            raise MallBadResponse(endpoint, 200, "data is missing (null) in a list answer", field="data")
        if isinstance(data, dict) and isinstance(data.get("ids"), list):
            data = data["ids"]
        if not isinstance(data, list):
            raise MallBadResponse(endpoint, 200, f"list data is a {type(data).__name__}, not a list", field="data")
        if basic:
            for i, x in enumerate(data):
                if not isinstance(x, dict):
                    raise MallBadResponse(endpoint, 200, f"data.{i}: filter=basic list holds a {type(x).__name__}, "
                                          "not an order object", field=f"data.{i}")
            return [self._model(BasicOrder, x, endpoint, where=f"data.{i}") for i, x in enumerate(data)]
        out = []
        for i, x in enumerate(data):
            try:
                # Order ids; should MALL answer with objects anyway, take their ids.
                out.append(_as_id(x["id"] if isinstance(x, dict) else x))
            except (KeyError, TypeError, ValueError):
                raise MallBadResponse(endpoint, 200, f"data.{i}: not an order id (a positive 64-bit integer)",
                                      field=f"data.{i}") from None
        return out

    @staticmethod
    def _model(cls: type[pydantic.BaseModel], data: Any, endpoint: str, *, where: str = "data") -> Any:
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            # Field paths and reasons only: the input values may hold customer data.
            errors = exc.errors(include_url=False, include_input=False)
            paths = [".".join([where, *(str(p) for p in e["loc"])]) for e in errors]
            problems = "; ".join(f"{path}: {e['msg']}" for path, e in list(zip(paths, errors))[:5])
            raise MallBadResponse(endpoint, 200, f"unexpected {cls.__name__} data: {problems}",
                                  field=paths[0] if paths else where) from None

    def _send(self, method: str, path: str, template: str, params: dict[str, Any] | None, body: Any) -> dict[str, Any]:
        """One HTTP attempt, turned into an envelope or a typed error."""
        endpoint = f"{method} {path}"
        started = time.monotonic()
        left = deadline_transport.time_left()
        if left is not None and left <= 0:
            raise self._deadline_error(endpoint, 0)
        status_code = 0
        try:
            request = self._http.build_request(method, path, params=params, json=body)
            response = self._http.send(request, stream=True)
            status_code = response.status_code
            try:
                answer = self._read_answer(endpoint, response)
            finally:
                response.close()
        except httpx.RequestError as exc:
            self._notify(template, status_code)
            self._count(method, template, body, status_code)
            left = deadline_transport.time_left()
            never_sent = isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
            if isinstance(exc, httpx.TimeoutException) and not never_sent and left is not None and left <= 0:
                raise self._deadline_error(endpoint, status_code) from None
            err = _transport_error(endpoint, exc)
            log.debug("%s failed after %.0f ms: %s", endpoint, (time.monotonic() - started) * 1000, err.message)
            raise err from None
        except MallBadResponse:
            self._notify(template, status_code)
            self._count(method, template, body, status_code)
            raise
        self._notify(template, answer.status_code)
        self._count(method, template, body, answer.status_code)
        self.quota.observe(answer.headers)
        log.debug("%s -> HTTP %d in %.0f ms", endpoint, answer.status_code, (time.monotonic() - started) * 1000)
        return _parse_envelope(endpoint, answer)

    def _deadline_error(self, endpoint: str, status_code: int) -> MallBadResponse:
        return MallBadResponse(endpoint, status_code,
                               f"no complete answer within the call deadline of {self.deadline_s:g} s (deadline_s)",
                               limit="deadline_s")

    def _read_answer(self, endpoint: str, response: httpx.Response) -> _Answer:
        """Read the body while counting: refused past ``max_response_bytes`` (decoded or not) or the deadline.

        An error status (4xx/5xx) is decided by the status alone, so only ``ERROR_BODY_BYTES`` of its body
        are kept (for MALL's message) and the rest is not read at all."""
        status_code = response.status_code
        error = status_code >= 400
        limit = min(self.max_response_bytes, ERROR_BODY_BYTES) if error else self.max_response_bytes

        def too_large() -> MallBadResponse:
            return MallBadResponse(endpoint, status_code, f"the answer exceeds max_response_bytes "
                                   f"({self.max_response_bytes} bytes); refused", limit="max_response_bytes")

        declared = response.headers.get("content-length", "")
        if not error and declared.isdigit() and int(declared) > limit:
            raise too_large()
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if response.is_stream_consumed:
            encoding = "identity"  # built in memory (a test transport): httpx has decoded it already
        if encoding in ("gzip", "x-gzip"):
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            inflate = zlib.decompressobj()
        elif encoding in ("", "identity"):
            inflate = None
        else:
            raise MallBadResponse(endpoint, status_code, f"unsupported content-encoding {encoding[:40]!r}",
                                  field="content-encoding")
        body = bytearray()
        raw_read = 0
        try:
            for chunk in _raw_chunks(response):
                left = deadline_transport.time_left()
                if left is not None and left <= 0:
                    raise self._deadline_error(endpoint, status_code)
                raw_read += len(chunk)
                if raw_read > self.max_response_bytes:
                    raise too_large()
                while chunk:
                    if inflate is None:
                        body += chunk[: limit + 1 - len(body)]
                        chunk = b""
                    else:
                        # max_length keeps one compressed chunk from inflating past the limit (a zip bomb).
                        body += inflate.decompress(chunk, limit + 1 - len(body))
                        chunk = inflate.unconsumed_tail
                    if len(body) > limit:
                        if error:
                            return _Answer(status_code, response.headers, bytes(body[:limit]))
                        raise too_large()
        except zlib.error:
            raise MallBadResponse(endpoint, status_code, f"the {encoding} body cannot be decompressed",
                                  field="content-encoding") from None
        return _Answer(status_code, response.headers, bytes(body))

    def _count(self, method: str, template: str, body: Any, status_code: int) -> None:
        try:
            self.calls.note(kind_of(method, template, body), status_code)
        except Exception as exc:  # counting must never break a call
            log.debug("call counting failed: %s", type(exc).__name__)

    def _notify(self, template: str, status_code: int) -> None:
        if self._on_response is None:
            return
        try:
            self._on_response(template, status_code)
        except Exception as exc:  # metrics must never break a call
            log.debug("on_response hook failed: %s", type(exc).__name__)

    def _retrying(self, should_retry: Callable[[BaseException], bool]) -> Retrying:
        policy = self._retry

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, MallRateLimited) and exc.reset_s is not None:
                return min(exc.reset_s, policy.reset_cap_s)
            return policy.backoff(state.attempt_number)

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= policy.max_attempts:
                return True
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, MallRateLimited) and exc.reset_s is not None and exc.reset_s > policy.reset_cap_s:
                return True
            left = deadline_transport.time_left()
            if left is not None and (state.upcoming_sleep or 0.0) >= left:
                return True  # the wait would end past the call's deadline
            return (state.seconds_since_start or 0.0) + (state.upcoming_sleep or 0.0) > policy.max_total_s

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.debug("retry %d in %.2f s after %s", state.attempt_number, state.upcoming_sleep, exc)

        return Retrying(
            retry=retry_if_exception(should_retry),
            wait=wait,
            stop=stop,
            sleep=policy.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    def _read(self, path: str, template: str, *, params: dict[str, Any] | None = None) -> dict[str, Any]:
        def should_retry(exc: BaseException) -> bool:
            return isinstance(exc, MallError) and exc.retryable

        with deadline_transport.deadline(time.monotonic() + self.deadline_s):
            return self._retrying(should_retry)(self._send, "GET", path, template, params, None)

    def _write(self, path: str, template: str, body: Any, *, method: str = "PUT") -> dict[str, Any]:
        def should_retry(exc: BaseException) -> bool:
            # Only what MALL certainly did not act on: rate limited, or the connection never opened.
            if isinstance(exc, MallRateLimited):
                return True
            return isinstance(exc, MallTransportError) and exc.retryable and not exc.maybe_sent

        endpoint = f"{method} {path}"
        try:
            with deadline_transport.deadline(time.monotonic() + self.deadline_s):
                return self._retrying(should_retry)(self._send, method, path, template, None, body)
        except (MallServerError, MallBadResponse, MallTransportError) as exc:
            if isinstance(exc, MallTransportError) and not exc.maybe_sent:
                raise  # never reached MALL: certainly not applied
            detail = f"{type(exc).__name__}: {exc.message or 'no detail'}"
            raise MallOutcomeUnknown(
                endpoint, exc.status_code, f"may or may not have been applied ({detail})", exc.error_codes, cause=exc
            ) from exc


def _raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The raw body as it arrives; a response built in memory (a test transport) is already whole."""
    try:
        yield from response.iter_raw()
    except httpx.StreamConsumed:
        yield response.content


def _as_id(value: Any) -> int:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(value)
    value = int(value)
    if not 0 < value <= INT64_MAX:
        raise ValueError(value)
    return value


def _single(endpoint: str, data: Any) -> Any:
    """An object ``data``; a one-element list is unwrapped (old MALL examples)."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        what = type(data).__name__ if data is not None else "missing (null)"
        raise MallBadResponse(endpoint, 200, f"data is {what}, not an object", field="data")
    return data


def _dedupe(items: Iterator[Any]) -> list[Any]:
    """Keep each order once, at its first position but with its latest data (pages can shift while we read)."""
    seen: dict[int, Any] = {}
    for item in items:
        seen[item if isinstance(item, int) else item.id] = item
    return list(seen.values())
