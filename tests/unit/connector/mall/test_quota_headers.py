"""issue 17: MALL's X-RateLimit-* windows read per client, strictly, never crashing on a bad header."""

from __future__ import annotations

import logging

import httpx
import pytest

from connector.mall.client import MallClient
from connector.mall.quota import HeaderError, QuotaState, parse_limit
from connector.metrics import Metrics

# mall-api.md §5, the example MALL documents (the `other` domain).
MALL_EXAMPLE = ('2875, 5750;w=86400;name="partner:abc|domain:other|unit:d", '
                '2875;w=3600;name="partner:abc|domain:other|unit:h", '
                '17250;w=60;name="partner:abc|domain:other|unit:m"')


def test_every_window_of_malls_documented_example_is_read():
    current, windows = parse_limit(MALL_EXAMPLE)
    assert current == 2875
    assert [(w.name, w.seconds, w.limit) for w in windows] == [
        ("minute", 60, 17250), ("hour", 3600, 2875), ("day", 86400, 5750)]


@pytest.mark.parametrize("raw", [
    "", "abc", "10;w=abc", "10, 20;w=60;name=\"unterminated", "-5, 10;w=60", "10, 20", "10, 20;w=0",
    '10, 20;w=60;name="x|unit:h"',  # a minute window named as an hour one
    "1" * 3000,
])
def test_a_malformed_limit_header_is_refused_with_a_reason(raw):
    with pytest.raises(HeaderError):
        parse_limit(raw)


def _state(*answers):
    state = QuotaState(clock=lambda: 1000.0, wall=lambda: 5000.0)
    for headers in answers:
        state.observe(httpx.Headers(headers))
    return state


def test_remaining_belongs_to_the_window_that_resets_when_mall_says():
    r = _state({"X-RateLimit-Limit": MALL_EXAMPLE, "X-RateLimit-Remaining": "40", "X-RateLimit-Reset": "1200"}).reading()
    assert (r.remaining, r.window, r.reset_s) == (40, "hour", 1200.0)
    assert r.day_limit == 5750 and r.day_remaining is None  # the day's count was not told yet
    r = _state({"X-RateLimit-Limit": MALL_EXAMPLE, "X-RateLimit-Remaining": "500", "X-RateLimit-Reset": "40000"},
               {"X-RateLimit-Limit": MALL_EXAMPLE, "X-RateLimit-Remaining": "30", "X-RateLimit-Reset": "50"}).reading()
    assert (r.window, r.remaining) == ("minute", 30)
    assert r.day_remaining == 499  # last told 500 for the day, one call since


def test_a_malformed_header_is_ignored_with_one_warning_and_keeps_the_last_good_reading(caplog):
    state = _state({"X-RateLimit-Limit": MALL_EXAMPLE, "X-RateLimit-Remaining": "70", "X-RateLimit-Reset": "90000"})
    with caplog.at_level(logging.WARNING, logger="mall_connector.quota"):
        for bad in ({"X-RateLimit-Limit": "lots", "X-RateLimit-Remaining": "1"},
                    {"X-RateLimit-Limit": MALL_EXAMPLE, "X-RateLimit-Remaining": "-3"},
                    {"X-RateLimit-Limit": MALL_EXAMPLE, "X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "soon"}):
            state.observe(httpx.Headers(bad))
    assert state.malformed == 3
    assert len([r for r in caplog.records if "X-RateLimit" in r.getMessage()]) == 1
    r = state.reading()
    assert (r.remaining, r.window, r.day_remaining) == (70, "day", 70)


def test_each_client_keeps_its_own_reading_over_real_http(make_sandbox):
    """One client per account: two sandboxes (two accounts) with different quotas, read independently."""
    small = make_sandbox(quota_windows=((86400, "d", 1000), (3600, "h", 100), (60, "m", 50)))
    big = make_sandbox()
    a = MallClient(small.url, "test-client-id-0123456789")
    b = MallClient(big.url, "test-client-id-0123456789")
    try:
        for _ in range(3):
            a.list_unconfirmed()
        b.list_unconfirmed()
        qa, qb = a.quota_reading(), b.quota_reading()
        assert {w.name: w.limit for w in qa.windows} == {"day": 1000, "hour": 100, "minute": 50}
        assert (qa.remaining, qa.window) == (47, "minute")
        assert {w.name: w.limit for w in qb.windows} == {"day": 10_000_000, "hour": 1_000_000, "minute": 100_000}
        assert qb.remaining == 99_999
        metrics = Metrics()
        metrics.bind_client(a, 0.1)
        text = metrics.render().decode()
        assert 'mall_connector_mall_ratelimit_limit{window="day"} 1000.0' in text
        assert 'mall_connector_mall_ratelimit_limit{window="minute"} 50.0' in text
        assert 'mall_connector_mall_ratelimit_remaining{window="minute"} 47.0' in text
        assert "mall_connector_mall_quota_reserve 0.0" in text
    finally:
        a.close()
        b.close()
