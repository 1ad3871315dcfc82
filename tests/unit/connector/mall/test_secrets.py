"""The client_id (MALL's only credential, sent in the query string) never shows up in errors or logs."""

from __future__ import annotations

import logging
import traceback
from urllib.parse import quote

import httpx
import pytest

from connector.mall.errors import MallError, MallNotFound, MallRateLimited, MallTransportError
from connector.mall.models import StatusUpdate

from .conftest import CLIENT_ID, Recorder, error, ok

SECRET_FORMS = (CLIENT_ID, quote(CLIENT_ID, safe=""))


def assert_clean(text: str) -> None:
    for form in SECRET_FORMS:
        assert form not in text


def leaky_connect_error(request: httpx.Request) -> httpx.Response:
    # A transport error whose message embeds the full URL, as some httpx/httpcore errors can.
    raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)


def leaky_read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout(f"timed out reading {request.url}", request=request)


def echoing_401(request: httpx.Request) -> httpx.Response:
    # An error message that echoes the request URL back.
    return error(401, f"invalid key in {request.url}", codes=[{"message": f"bad client_id={CLIENT_ID}",
                                                                "errorCode": "UNAUTHORIZED", "errorAttributes": {}}])


def html_with_url(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text=f"<html>see {request.url}</html>", headers={"content-type": "text/html"})


FAILURES = {
    "read-connect-error": (lambda c: c.get_order(1), leaky_connect_error),
    "read-unauthorized": (lambda c: c.get_order(1), echoing_401),
    "read-html": (lambda c: c.list_orders(), html_with_url),
    "read-rate-limited": (lambda c: c.stats(), error(429, "limit", headers={"X-RateLimit-Reset": "999"})),
    "put-read-timeout": (lambda c: c.update_order(1, StatusUpdate(confirmed=True)), leaky_read_timeout),
    "put-connect-error": (lambda c: c.update_tracking(1, "N", "https://t.example"), leaky_connect_error),
    "put-html": (lambda c: c.update_order(1, StatusUpdate(confirmed=True)), html_with_url),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_client_id_absent_from_every_error(make_client, name):
    call, step = FAILURES[name]
    client = make_client(Recorder(step), max_attempts=2)
    with pytest.raises(MallError) as info:
        call(client)
    err = info.value
    texts = [str(err), repr(err), *map(str, err.args), "".join(traceback.format_exception(err)),
             str(err.error_codes), err.endpoint]
    cause = getattr(err, "cause", None)
    if cause is not None:
        texts += [str(cause), repr(cause)]
    for text in texts:
        assert_clean(text)
    assert "?" not in err.endpoint and err.endpoint.split(" ", 1)[1].startswith("/v1/orders")


def test_errors_strip_query_strings_given_to_them_directly():
    err = MallNotFound("GET /v1/orders/1?client_id=whatever-key&x=1", 404, "not found at https://h/v1?client_id=k2")
    assert err.endpoint == "GET /v1/orders/1"
    for text in (str(err), repr(err)):
        assert "whatever-key" not in text and "k2" not in text
    limited = MallRateLimited("GET /v1/orders?client_id=abcdef", reset_s=3)
    assert "abcdef" not in repr(limited) and limited.reset_s == 3 and limited.retryable
    transport = MallTransportError("GET /x", message="ConnectError: https://h/?client_id=zzzz1")
    assert "zzzz1" not in str(transport) and transport.maybe_sent


def test_logs_never_carry_the_client_id_or_a_url(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    rec = Recorder(
        error(503, "busy"), ok({"id": 1, "status": "open"}),  # get_order: retried once
        leaky_connect_error, ok(),                             # update_order: retried once (never sent)
        leaky_read_timeout,                                    # update_order: outcome unknown
    )
    client = make_client(rec)
    client.get_order(1)
    client.update_order(1, StatusUpdate(confirmed=True))
    with pytest.raises(MallError):
        client.update_order(1, StatusUpdate(confirmed=True))
    messages = [r.getMessage() for r in caplog.records]
    ours = [m for r, m in zip(caplog.records, messages) if r.name.startswith("connector")]
    # The client does log at debug (so this test is not vacuous) ...
    assert any("GET /v1/orders/1 -> HTTP 503" in m for m in ours)
    assert any(m.startswith("retry 1 in") for m in ours)
    # ... but never a URL or its query, and nobody (httpx included) logs the client_id.
    assert all("client_id" not in m and "https://" not in m for m in ours)
    assert_clean(caplog.text)
    for m in messages:
        assert_clean(m)
