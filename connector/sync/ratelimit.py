"""Pacing by MALL's rate-limit headers, so a long catch-up spends the budget without provoking a 429.

MALL answers every call with ``X-RateLimit-Remaining`` (calls left in the window) and ``X-RateLimit-Reset``
(seconds until the window resets). The client already waits ``X-RateLimit-Reset`` after a 429; this transport
goes one step earlier: when the last answer said the budget is spent, the next request waits for the reset
instead of being sent into a certain 429. It wraps the HTTP transport of ``MallClient`` (its ``transport=``
argument), so it sees every call of that client: pushes, reads, sweeps, confirmations.

A reset further away than ``max_wait_s`` (an hourly or daily quota) is not waited for here: the request goes
out, MALL answers 429, and the ledger schedules the retry for after the reset, as before.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from typing import Callable
from urllib.parse import urlsplit

import httpx

from connector.mall.quota import QuotaReading  # noqa: F401 - the type quota_of returns

log = logging.getLogger("mall_connector.ratelimit")

MAX_WAIT_S = 60.0  # the same bound as the client's wait after a 429 (RetryPolicy.reset_cap_s)


def _number(raw: str | None) -> float | None:
    """The first number of a header value (``"57"``, or ``"57, 57;w=60"``); None when there is none."""
    if not raw:
        return None
    try:
        value = float(raw.split(",")[0].split(";")[0].strip())
    except ValueError:
        return None
    return value if value >= 0 else None


class RateLimitPacer(httpx.BaseTransport):
    """An httpx transport that waits for the rate-limit window to reset when MALL said the budget is spent.

    ``waits`` and ``waited_s`` count the pauses (for tests and the benchmark)."""

    def __init__(self, inner: httpx.BaseTransport, *, max_wait_s: float = MAX_WAIT_S,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self._inner = inner
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._remaining: float | None = None  # calls left in the window, as last told (minus those sent since)
        self._reset_at: float | None = None  # clock() when the window resets
        self.waits = 0
        self.waited_s = 0.0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._wait_for_budget()
        response = self._inner.handle_request(request)
        self._observe(response)
        return response

    def close(self) -> None:
        self._inner.close()

    def _wait_for_budget(self) -> None:
        with self._lock:
            wait = 0.0
            if self._remaining is not None and self._reset_at is not None and self._remaining < 1:
                wait = self._reset_at - self._clock()
                if wait > self.max_wait_s:
                    wait = 0.0  # a long quota: let MALL say 429, the ledger retries after the reset
                self._remaining = self._reset_at = None  # a new window, of unknown size until the next answer
            elif self._remaining is not None:
                self._remaining -= 1  # counted before the answer, so concurrent callers do not overshoot
            if wait > 0:
                log.debug("MALL's rate-limit budget is spent: waiting %.2f s for the window to reset", wait)
                self.waits += 1
                self.waited_s += wait
                self._sleep(wait)  # under the lock: every caller waits for the same reset

    def _observe(self, response: httpx.Response) -> None:
        remaining = _number(response.headers.get("X-RateLimit-Remaining"))
        reset = _number(response.headers.get("X-RateLimit-Reset"))
        if remaining is None or reset is None:
            return
        with self._lock:
            self._remaining = remaining
            self._reset_at = self._clock() + reset


def http_transport_for(base_url: str) -> httpx.BaseTransport:
    """The plain transport MallClient would use, proxy from the environment included (httpx ignores the
    environment's proxies once a transport is given, so it is looked up here)."""
    from connector.mall.transport import DeadlineTransport  # holds every socket operation to the call's deadline

    parts = urlsplit(base_url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return DeadlineTransport(proxy=proxy)
    return DeadlineTransport()


def paced_transport(base_url: str, **kwargs) -> RateLimitPacer:
    return RateLimitPacer(http_transport_for(base_url), **kwargs)


# -- quota awareness (issue 17): the public reading of one client's quota, and the reserve ---------------

def quota_of(client) -> "QuotaReading | None":
    """The client's last X-RateLimit-* reading (connector/mall/quota.py), or None for a client without one."""
    reading = getattr(client, "quota_reading", None)
    return reading() if callable(reading) else None


QUOTA_KV = "mall_quota"  # the last reading, for one-shot commands (`orders list --refresh`, `sync-once`)


def _stored_quota(ledger) -> dict | None:
    import json

    try:
        raw = ledger.kv.get(QUOTA_KV)
        data = json.loads(raw) if raw else None
    except Exception:  # noqa: BLE001 - a missing or unreadable reading is just unknown
        return None
    if not isinstance(data, dict):
        return None
    now = time.time()
    if not isinstance(data.get("read_at"), (int, float)) or now - data["read_at"] > 86400:
        return None
    if isinstance(data.get("day_reset_at"), (int, float)) and now >= data["day_reset_at"]:
        return None  # the day window has reset since
    return data


def in_reserve(client, share: float, ledger=None) -> bool:
    """True while MALL's daily budget left is below ``share`` of the daily limit ([mall] reserve_share): then
    optional calls wait (sweeps more often than hourly, verification reads, `orders list --refresh`); pushes and
    confirmations go on. The client's own reading counts; without one (a fresh one-shot command) the last reading
    the ledger keeps (``ledger``). Unknown (no day window told yet): False."""
    if share <= 0:
        return False
    q = quota_of(client)
    if q is not None and q.day_limit is not None and q.day_remaining is not None:
        return q.day_remaining < share * q.day_limit
    stored = _stored_quota(ledger) if ledger is not None else None
    if stored and isinstance(stored.get("day_limit"), int) and isinstance(stored.get("day_remaining"), int):
        return stored["day_remaining"] < share * stored["day_limit"]
    return False


def store_quota(ledger, c, client) -> None:
    """Keep the client's last reading in the ledger (inside the caller's transaction)."""
    import json

    q = quota_of(client)
    if q is None or q.remaining is None or q.read_at is None:
        return
    day_reset_at = q.read_at + (q.reset_s or 0) + (q.age_s or 0) if q.window == "day" and q.reset_s is not None else None
    ledger.kv.set(c, QUOTA_KV, json.dumps({**q.to_dict(), "read_at": q.read_at, "day_reset_at": day_reset_at}))


def flush_calls(ledger, client, account: str = "default") -> int:
    """Add the client's counted calls to the ledger (``mall_calls``) in one transaction: once per pass or job,
    never a commit per call. A failure keeps the counts for the next flush. Returns the calls stored."""
    counter = getattr(client, "calls", None)
    if counter is None or not hasattr(counter, "take"):
        return 0
    counts = counter.take()
    if not counts:
        return 0
    try:
        with ledger.write() as c:
            ledger.calls.add(c, counts, account=account)
            store_quota(ledger, c, client)
    except Exception as e:  # noqa: BLE001 - counting must never stop the sync; kept for the next try
        counter.give_back(counts)
        log.warning("could not store the MALL call counts (kept for the next pass): %s", e)
        return 0
    return sum(calls for calls, _ in counts.values())
