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
"""

from __future__ import annotations

import logging
import random
import re
import time
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
from connector.mall.models import BasicOrder, Order, Stats, StatusUpdate, format_mall_datetime
from connector.mall.statuses import parse_status

__all__ = ["DEFAULT_BASE_URL", "MallClient", "RetryPolicy"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://mpapi.mallgroup.com"
_URL_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_RESERVED_PARAMS = frozenset({"client_id", "page", "page_size", "filter", "test"})


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


def _snippet(response: httpx.Response) -> str:
    """The start of an unreadable body, for a human to recognise (a proxy page, a maintenance notice)."""
    text = " ".join(_URL_RE.sub("<url>", response.text[:300]).split())
    return redact(text[:80])


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


def _parse_envelope(endpoint: str, response: httpx.Response) -> dict[str, Any]:
    """The ``{result, paging, data}`` envelope, or the typed error it (or the HTTP status) stands for."""
    status_code = response.status_code
    if status_code == 204:
        return {"result": {"code": 204, "status": "OK"}}
    problem = None
    try:
        body = response.json()
    except ValueError:
        content_type = response.headers.get("content-type", "no content-type")
        problem = f"response is not JSON ({content_type}): {_snippet(response)!r}"
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
    if isinstance(order_id, bool) or not isinstance(order_id, int) or order_id <= 0:
        raise ValueError(f"order_id must be a positive int, not {order_id!r}")
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
    ) -> None:
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
        self._http = httpx.Client(
            base_url=base_url,
            params={"client_id": client_id},
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "X-Application-Name": "mall-connector",
                "X-Application-Version": __version__,
            },
            timeout=timeout_s,
            transport=transport,
            # A redirect would be re-sent elsewhere without our client_id (and a PUT re-sent): treat it as an error.
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"MallClient(base_url={redact(self.base_url)!r})"

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
        self, path: str, template: str, params: dict[str, Any], *, basic: bool, page_size: int
    ) -> Iterator[Any]:
        """Follow ``page`` until ``paging.pages`` (or a page without paging, or an empty page)."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        endpoint = f"GET {path}"
        page = 1
        while True:
            envelope = self._read(path, template, params={**params, "page": page, "page_size": page_size})
            items = self._list_data(endpoint, envelope.get("data"), basic=basic)
            yield from items
            paging = envelope.get("paging")
            pages = paging.get("pages") if isinstance(paging, dict) else None
            if not isinstance(pages, int) or page >= pages or not items:
                return
            page += 1

    def _list_data(self, endpoint: str, data: Any, *, basic: bool) -> list[Any]:
        if data is None:
            return []
        if isinstance(data, dict) and isinstance(data.get("ids"), list):
            data = data["ids"]
        if not isinstance(data, list):
            raise MallBadResponse(endpoint, 200, f"list data is a {type(data).__name__}, not a list")
        if basic:
            if not all(isinstance(x, dict) for x in data):
                raise MallBadResponse(endpoint, 200, "filter=basic list holds something other than order objects")
            return [self._model(BasicOrder, x, endpoint) for x in data]
        try:
            # Order ids; should MALL answer with objects anyway, take their ids.
            return [_as_id(x["id"] if isinstance(x, dict) else x) for x in data]
        except (KeyError, TypeError, ValueError):
            raise MallBadResponse(endpoint, 200, "list data holds something other than order ids") from None

    @staticmethod
    def _model(cls: type[pydantic.BaseModel], data: Any, endpoint: str) -> Any:
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            # Field paths and reasons only: the input values may hold customer data.
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)[:5]
            )
            raise MallBadResponse(endpoint, 200, f"unexpected {cls.__name__} data: {problems}") from None

    def _send(self, method: str, path: str, template: str, params: dict[str, Any] | None, body: Any) -> dict[str, Any]:
        """One HTTP attempt, turned into an envelope or a typed error."""
        endpoint = f"{method} {path}"
        started = time.monotonic()
        try:
            response = self._http.request(method, path, params=params, json=body)
        except httpx.RequestError as exc:
            self._notify(template, 0)
            err = _transport_error(endpoint, exc)
            log.debug("%s failed after %.0f ms: %s", endpoint, (time.monotonic() - started) * 1000, err.message)
            raise err from None
        self._notify(template, response.status_code)
        log.debug("%s -> HTTP %d in %.0f ms", endpoint, response.status_code, (time.monotonic() - started) * 1000)
        return _parse_envelope(endpoint, response)

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

        return self._retrying(should_retry)(self._send, "GET", path, template, params, None)

    def _write(self, path: str, template: str, body: dict[str, Any]) -> None:
        def should_retry(exc: BaseException) -> bool:
            # Only what MALL certainly did not act on: rate limited, or the connection never opened.
            if isinstance(exc, MallRateLimited):
                return True
            return isinstance(exc, MallTransportError) and exc.retryable and not exc.maybe_sent

        endpoint = f"PUT {path}"
        try:
            self._retrying(should_retry)(self._send, "PUT", path, template, None, body)
        except (MallServerError, MallBadResponse, MallTransportError) as exc:
            if isinstance(exc, MallTransportError) and not exc.maybe_sent:
                raise  # never reached MALL: certainly not applied
            detail = f"{type(exc).__name__}: {exc.message or 'no detail'}"
            raise MallOutcomeUnknown(
                endpoint, exc.status_code, f"may or may not have been applied ({detail})", exc.error_codes, cause=exc
            ) from exc


def _as_id(value: Any) -> int:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(value)
    return int(value)


def _single(endpoint: str, data: Any) -> Any:
    """An object ``data``; a one-element list is unwrapped (old MALL examples)."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise MallBadResponse(endpoint, 200, f"data is {type(data).__name__ if data is not None else 'missing'}, not an object")
    return data


def _dedupe(items: Iterator[Any]) -> list[Any]:
    """Keep each order once, at its first position but with its latest data (pages can shift while we read)."""
    seen: dict[int, Any] = {}
    for item in items:
        seen[item if isinstance(item, int) else item.id] = item
    return list(seen.values())
