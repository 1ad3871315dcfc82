"""The client paces itself by MALL's X-RateLimit-Remaining/Reset: a catch-up spends the budget, never a 429."""

from __future__ import annotations

import httpx

from connector.sandbox.faults import Faults
from connector.sync.ratelimit import RateLimitPacer
from connector.sync.runner import Services, sync_once
from tests.integration.perf.conftest import feed_rows


class Clock:
    def __init__(self):
        self.t = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def _server(budget: int, window: float, clock: Clock):
    state = {"start": clock(), "used": 0, "limited": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if clock() >= state["start"] + window:
            state["start"], state["used"] = clock(), 0
        reset = max(1, round(state["start"] + window - clock()))
        if state["used"] >= budget:
            state["limited"] += 1
            return httpx.Response(429, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
        state["used"] += 1
        return httpx.Response(200, headers={"X-RateLimit-Remaining": str(budget - state["used"]),
                                            "X-RateLimit-Reset": str(reset)})

    return handler, state


def test_the_pacer_waits_for_the_reset_instead_of_sending_into_a_429():
    clock = Clock()
    handler, state = _server(budget=5, window=10.0, clock=clock)
    pacer = RateLimitPacer(httpx.MockTransport(handler), sleep=clock.sleep, clock=clock)
    with httpx.Client(transport=pacer, base_url="http://mall.test") as c:
        codes = [c.get("/v1/orders/1").status_code for _ in range(23)]
    assert codes == [200] * 23 and state["limited"] == 0
    assert len(clock.sleeps) == 4 and pacer.waits == 4  # 23 calls at 5 per window: 4 waits for a reset


def test_a_long_reset_is_not_waited_for_here():
    clock = Clock()
    handler, state = _server(budget=2, window=3600.0, clock=clock)
    pacer = RateLimitPacer(httpx.MockTransport(handler), sleep=clock.sleep, clock=clock, max_wait_s=60)
    with httpx.Client(transport=pacer, base_url="http://mall.test") as c:
        codes = [c.get("/x").status_code for _ in range(3)]
    assert codes == [200, 200, 429] and clock.sleeps == []  # an hourly quota: the ledger retries later


def test_without_headers_nothing_waits():
    clock = Clock()
    pacer = RateLimitPacer(httpx.MockTransport(lambda r: httpx.Response(200)), sleep=clock.sleep, clock=clock)
    with httpx.Client(transport=pacer, base_url="http://mall.test") as c:
        for _ in range(10):
            c.get("/x")
    assert clock.sleeps == []


def test_a_catch_up_against_a_rate_limit_provokes_no_429(shop, sandbox):
    ids = [o["id"] for o in sandbox.state.create_orders(14, status="open")]
    services = Services(shop.config())
    try:
        shop.write_feed(feed_rows(ids, "packing"))
        sandbox.faults = Faults(rate_limit_budget=6, rate_limit_window_s=1.0)
        sandbox.request_log.clear()
        summary = sync_once(services, sweep=False)
        assert summary.push.pushed == 14
        assert sandbox.request_log.faults("429") == []
        assert len(sandbox.request_log.puts()) == 14  # nothing was sent twice
    finally:
        services.close()
