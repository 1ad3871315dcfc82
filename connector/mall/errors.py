"""Typed errors for calls to the MALL API.

The sync layer decides on the type (retry later, re-read the order, alert a human), so every failure of a
MALL call is one of these. They carry what MALL said (``result.message`` and the ``errorCodes`` list) and
the endpoint as ``"METHOD /path"`` -- never the query string, because the client_id (the account's only
secret) travels there. Every text is also passed through ``connector.logs.redact`` as a second line of defence.
"""

from __future__ import annotations

from typing import Any

from connector.logs import redact

__all__ = [
    "MallError",
    "MallUnauthorized",
    "MallForbidden",
    "MallNotFound",
    "MallRateLimited",
    "MallValidationError",
    "MallServerError",
    "MallTransportError",
    "MallBadResponse",
    "MallOutcomeUnknown",
    "error_for_status",
]


def _safe_endpoint(endpoint: str) -> str:
    """``"GET /v1/orders/1?client_id=x"`` -> ``"GET /v1/orders/1"``: a query string never reaches a message."""
    return redact(str(endpoint).split("?", 1)[0].strip())


def _normalise_error_codes(error_codes: Any) -> list[dict[str, Any]]:
    """MALL's ``errorCodes`` items as ``{message, errorCode, errorAttributes}``; junk items are dropped."""
    out: list[dict[str, Any]] = []
    if not isinstance(error_codes, (list, tuple)):
        return out
    for item in error_codes:
        if not isinstance(item, dict):
            continue
        out.append(
            {
                "message": None if item.get("message") is None else redact(str(item.get("message"))),
                "errorCode": None if item.get("errorCode") is None else redact(str(item.get("errorCode"))),
                "errorAttributes": item.get("errorAttributes"),
            }
        )
    return out


class MallError(Exception):
    """A MALL call failed. ``status_code`` is the HTTP status (0 when no response arrived)."""

    #: Whether repeating the same request later may succeed (used by the client's retry rules).
    _retryable = False

    def __init__(
        self,
        endpoint: str,
        status_code: int,
        message: str | None = None,
        error_codes: list[dict[str, Any]] | None = None,
    ) -> None:
        self.endpoint = _safe_endpoint(endpoint)
        self.status_code = int(status_code or 0)
        self.message = redact(str(message)) if message else ""
        self.error_codes = _normalise_error_codes(error_codes)
        super().__init__(self._describe())

    @property
    def retryable(self) -> bool:
        return self._retryable

    @property
    def codes(self) -> list[str]:
        """Just the ``errorCode`` names (e.g. ``["RESOURCE_NOT_FOUND"]``), for decisions in the sync layer."""
        return [c["errorCode"] for c in self.error_codes if c.get("errorCode")]

    def _describe(self) -> str:
        where = f"HTTP {self.status_code}" if self.status_code else "no response"
        text = f"{self.endpoint}: {where}"
        if self.message:
            text += f": {self.message}"
        if self.error_codes:
            parts = []
            for c in self.error_codes:
                part = c.get("errorCode") or "?"
                if c.get("message"):
                    part += f" ({c['message']})"
                parts.append(part)
            text += " [" + "; ".join(parts) + "]"
        return redact(text)

    def __str__(self) -> str:
        return self._describe()

    def __repr__(self) -> str:
        return redact(
            f"{type(self).__name__}(endpoint={self.endpoint!r}, status_code={self.status_code}, "
            f"message={self.message!r}, error_codes={self.error_codes!r})"
        )


class MallUnauthorized(MallError):
    """401: missing or invalid client_id, or the account is disabled. A human has to act."""


class MallForbidden(MallError):
    """403: the account may not use this endpoint."""


class MallNotFound(MallError):
    """404: no such order (or endpoint)."""


class MallValidationError(MallError):
    """400/422: MALL refused the request as invalid (e.g. a transition it does not allow). Never retried."""


class MallServerError(MallError):
    """5xx: MALL failed. A read may be retried; a write may or may not have been applied."""

    _retryable = True


class MallRateLimited(MallError):
    """429 (or ``result.status`` LIMITED). ``reset_s``: seconds until the limit window resets, when MALL said."""

    _retryable = True

    def __init__(
        self,
        endpoint: str,
        status_code: int = 429,
        message: str | None = None,
        error_codes: list[dict[str, Any]] | None = None,
        *,
        reset_s: float | None = None,
    ) -> None:
        self.reset_s = reset_s
        super().__init__(endpoint, status_code, message, error_codes)

    def _describe(self) -> str:
        text = super()._describe()
        if self.reset_s is not None:
            text += f" (limit resets in {self.reset_s:g} s)"
        return text


class MallTransportError(MallError):
    """No usable HTTP response: timeout, refused or dropped connection, protocol error.

    ``maybe_sent`` is False only when the request certainly never reached MALL (connect failure, connect or
    pool timeout); only then may a write be sent again without first re-reading the order.
    """

    def __init__(
        self,
        endpoint: str,
        status_code: int = 0,
        message: str | None = None,
        error_codes: list[dict[str, Any]] | None = None,
        *,
        maybe_sent: bool = True,
        retryable: bool = True,
    ) -> None:
        self.maybe_sent = maybe_sent
        self._retryable = retryable
        super().__init__(endpoint, status_code, message, error_codes)


class MallBadResponse(MallError):
    """MALL answered something we cannot read: not JSON, no ``result`` envelope, or data of the wrong shape.

    ``field`` names the part of the answer that is wrong (``data.purchase_id``, ``paging.pages``) and ``limit``
    the bound it broke (``max_response_bytes``, ``deadline_s``, ``max_depth``, ``max_pages``), when one applies:
    an answer that does not fit is always this error, never a crash of the job that asked.
    """

    def __init__(
        self,
        endpoint: str,
        status_code: int = 0,
        message: str | None = None,
        error_codes: list[dict[str, Any]] | None = None,
        *,
        field: str | None = None,
        limit: str | None = None,
    ) -> None:
        self.field = redact(str(field)) if field else None
        self.limit = limit
        super().__init__(endpoint, status_code, message, error_codes)


class MallOutcomeUnknown(MallError):
    """A write failed ambiguously: MALL may or may not have applied it. Re-read the order before anything else.

    ``cause`` is the underlying error (a transport error after sending, a 5xx, an unreadable 2xx answer).
    """

    def __init__(
        self,
        endpoint: str,
        status_code: int = 0,
        message: str | None = None,
        error_codes: list[dict[str, Any]] | None = None,
        *,
        cause: BaseException | None = None,
    ) -> None:
        self.cause = cause
        super().__init__(endpoint, status_code, message, error_codes)


_BY_STATUS: dict[int, type[MallError]] = {
    400: MallValidationError,
    401: MallUnauthorized,
    403: MallForbidden,
    404: MallNotFound,
    422: MallValidationError,
}


def error_for_status(
    endpoint: str,
    status_code: int,
    message: str | None = None,
    error_codes: list[dict[str, Any]] | None = None,
    *,
    reset_s: float | None = None,
) -> MallError:
    """The typed error for an HTTP (or ``result.code``) status; unknown 4xx become a plain MallError."""
    if status_code == 429:
        return MallRateLimited(endpoint, status_code, message, error_codes, reset_s=reset_s)
    if status_code == 408:
        # The server gave up waiting for our request: like a timeout, worth another try for reads.
        return MallTransportError(endpoint, status_code, message, error_codes, maybe_sent=True)
    if 500 <= status_code <= 599:
        return MallServerError(endpoint, status_code, message, error_codes)
    cls = _BY_STATUS.get(status_code, MallError)
    return cls(endpoint, status_code, message, error_codes)
