"""Retry rules: reads retry on transient failures within bounds; writes are re-sent only when MALL surely did not act.

Sleeps go to an injected function (the ``sleeps`` list), so these tests never wait for real.
"""

from __future__ import annotations

import httpx
import pytest

from connector.mall.errors import (
    MallBadResponse,
    MallNotFound,
    MallOutcomeUnknown,
    MallRateLimited,
    MallServerError,
    MallTransportError,
    MallValidationError,
)
from connector.mall.models import StatusUpdate

from .conftest import Recorder, error, ok

ORDER = ok({"id": 1, "status": "open"})
PUT_OK = ok()
CONFIRM = StatusUpdate(confirmed=True)


def limited(reset: str | None = None) -> httpx.Response:
    headers = {"X-RateLimit-Reset": reset} if reset is not None else None
    return error(429, "limit reached", result_status="LIMITED", headers=headers)


# -- reads -------------------------------------------------------------------------------------------


def test_read_429_sleeps_exactly_the_reset_seconds(make_client, sleeps):
    rec = Recorder(limited("7"), ORDER)
    assert make_client(rec).get_order(1).id == 1
    assert rec.count == 2 and sleeps == [7.0]


def test_reset_is_capped_and_a_reset_beyond_the_cap_is_not_waited_for(make_client, sleeps):
    rec = Recorder(limited("3600"), ORDER)
    with pytest.raises(MallRateLimited) as info:
        make_client(rec, reset_cap_s=60).get_order(1)
    assert info.value.reset_s == 3600 and rec.count == 1 and sleeps == []


def test_429_without_reset_backs_off_exponentially(make_client, sleeps):
    rec = Recorder(limited(), limited(), ORDER)
    make_client(rec, base_s=1.0, max_backoff_s=100).get_order(1)
    assert rec.count == 3
    # retry n waits base * 2**(n-1) plus up to base of jitter
    assert 1.0 <= sleeps[0] <= 2.0 and 2.0 <= sleeps[1] <= 3.0


@pytest.mark.parametrize(
    "failure",
    [error(500, "oops"), error(503, "busy"), httpx.Response(502, text="<html>bad gateway</html>"),
     httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError, httpx.Response(408)],
    ids=["500", "503", "502-html", "read-timeout", "connect-error", "protocol-error", "408"],
)
def test_reads_retry_transient_failures_then_succeed(make_client, sleeps, failure):
    rec = Recorder(failure, failure, ORDER)
    assert make_client(rec).get_order(1).id == 1
    assert rec.count == 3 and len(sleeps) == 2


def test_reads_are_bounded_in_attempts_and_reraise_the_typed_error(make_client, sleeps):
    rec = Recorder(error(503, "still busy"))
    with pytest.raises(MallServerError) as info:
        make_client(rec, max_attempts=3).list_orders()
    assert rec.count == 3 and len(sleeps) == 2 and info.value.message == "still busy"


def test_backoff_never_exceeds_max_backoff(make_client, sleeps):
    rec = Recorder(httpx.ConnectError)
    with pytest.raises(MallTransportError):
        make_client(rec, max_attempts=6, base_s=10, max_backoff_s=15, max_total_s=1000).get_order(1)
    assert rec.count == 6 and len(sleeps) == 5 and max(sleeps) == 15 and min(sleeps) >= 10


def test_no_retry_starts_past_max_total(make_client, sleeps):
    rec = Recorder(limited("5"), ORDER)
    with pytest.raises(MallRateLimited):
        make_client(rec, max_total_s=1.0).get_order(1)
    assert rec.count == 1 and sleeps == []
    rec = Recorder(error(500), ORDER)
    with pytest.raises(MallServerError):
        make_client(rec, base_s=5, max_backoff_s=30, max_total_s=1.0).get_order(1)
    assert rec.count == 1


@pytest.mark.parametrize("failure", [error(404, "gone"), error(400, "bad"), httpx.Response(200, text="<html/>")])
def test_final_read_errors_are_not_retried(make_client, sleeps, failure):
    rec = Recorder(failure, ORDER)
    with pytest.raises((MallNotFound, MallValidationError, MallBadResponse)):
        make_client(rec).get_order(1)
    assert rec.count == 1 and sleeps == []


def test_a_failure_on_page_two_retries_that_page_only(make_client, sleeps):
    pages = [ok([{"id": 1, "status": "open"}], paging={"pages": 2}), error(503),
             ok([{"id": 2, "status": "open"}], paging={"pages": 2})]
    rec = Recorder(*pages)
    assert [o.id for o in make_client(rec).list_orders()] == [1, 2]
    assert [r.url.params["page"] for r in rec.requests] == ["1", "2", "2"]


# -- writes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.RemoteProtocolError,
     error(500, "internal"), error(503, "unavailable"), httpx.Response(504, text="<html>gateway timeout</html>"),
     httpx.Response(200, text="<html>ok?</html>"), httpx.Response(408)],
    ids=["read-timeout", "write-timeout", "connection-reset", "protocol-error", "500", "503", "504-html",
         "unreadable-200", "408"],
)
def test_ambiguous_put_failure_is_outcome_unknown_and_sent_once(make_client, sleeps, failure):
    rec = Recorder(failure, PUT_OK)
    with pytest.raises(MallOutcomeUnknown) as info:
        make_client(rec).update_order(77, StatusUpdate(status="shipping", confirmed=True))
    err = info.value
    assert rec.count == 1 and sleeps == []
    assert err.endpoint == "PUT /v1/orders/77" and not err.retryable
    assert isinstance(err.cause, (MallTransportError, MallServerError, MallBadResponse))
    assert err.status_code == err.cause.status_code


def test_ambiguous_tracking_put_is_outcome_unknown_too(make_client):
    rec = Recorder(httpx.ReadTimeout, PUT_OK)
    with pytest.raises(MallOutcomeUnknown, match="PUT /v1/orders/5/tracking"):
        make_client(rec).update_tracking(5, "N1", "https://t.example/N1")
    assert rec.count == 1


def test_put_429_is_retried_with_the_same_body(make_client, sleeps):
    rec = Recorder(limited("2"), PUT_OK)
    make_client(rec).update_order(9, StatusUpdate(status="shipping", confirmed=True))
    assert rec.count == 2 and sleeps == [2.0]
    assert rec.body(0) == rec.body(1) == {"confirmed": True, "status": "shipping"}


@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
def test_put_that_never_left_is_retried(make_client, sleeps, failure):
    rec = Recorder(failure, PUT_OK)
    make_client(rec).update_order(9, CONFIRM)
    assert rec.count == 2 and len(sleeps) == 1


def test_put_that_never_left_after_all_attempts_is_a_transport_error_not_unknown(make_client):
    rec = Recorder(httpx.ConnectError)
    with pytest.raises(MallTransportError) as info:
        make_client(rec, max_attempts=3).update_order(9, CONFIRM)
    assert rec.count == 3 and info.value.maybe_sent is False


def test_put_rate_limited_every_time_is_bounded(make_client):
    rec = Recorder(limited("1"))
    with pytest.raises(MallRateLimited):
        make_client(rec, max_attempts=3).update_order(9, CONFIRM)
    assert rec.count == 3


def test_put_4xx_is_final(make_client, sleeps):
    codes = [{"message": "Cannot change status", "errorCode": "STATUS_TRANSITION_NOT_ALLOWED", "errorAttributes": {}}]
    rec = Recorder(error(400, "Invalid status", codes=codes), PUT_OK)
    with pytest.raises(MallValidationError) as info:
        make_client(rec).update_order(9, StatusUpdate(status="delivered", confirmed=True))
    assert rec.count == 1 and sleeps == [] and info.value.codes == ["STATUS_TRANSITION_NOT_ALLOWED"]


def test_put_429_then_ambiguous_failure_stops_there(make_client):
    rec = Recorder(limited("1"), httpx.ReadTimeout, PUT_OK)
    with pytest.raises(MallOutcomeUnknown):
        make_client(rec).update_order(9, CONFIRM)
    assert rec.count == 2
