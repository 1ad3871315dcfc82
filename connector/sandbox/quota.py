"""The sandbox's call quota headers: MALL's X-RateLimit-* with every window (mall-api.md §5).

MALL answers every call with all its windows, e.g.::

    X-RateLimit-Limit: 2875, 5750;w=86400;name="partner:…|domain:orders|unit:d", 2875;w=3600;…unit:h", …
    X-RateLimit-Remaining: <the smallest remaining count>
    X-RateLimit-Reset: <seconds until the window with the fewest remaining resets>

The sandbox counts every /v1 call against a day, an hour and a minute window. It only reports them (it never
refuses a call for them: its generous default limits are for trying things, not for a budget). A deterministic
budget that does answer 429 is the fault knob ``rate_limit_budget`` (faults.py); its window joins the headers.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable

#: (seconds, unit letter, default limit). The limits of the orders domain are not published (mall-api.md §8); the
#: defaults are high so that no benchmark or demo ever meets them (the client paces itself by Remaining).
DEFAULT_WINDOWS = ((86400, "d", 10_000_000), (3600, "h", 1_000_000), (60, "m", 100_000))


def _unit(seconds: int) -> str:
    return {86400: "d", 3600: "h", 60: "m"}.get(seconds, f"{seconds}s")


class SandboxQuota:
    """Calls counted per window (thread-safe); ``headers`` after counting one call."""

    def __init__(self, windows: tuple[tuple[int, str, int], ...] = DEFAULT_WINDOWS, *,
                 clock: Callable[[], float] = time.monotonic):
        self._windows = [(int(s), int(limit)) for s, _, limit in windows]
        self._clock = clock
        self._lock = threading.Lock()
        self._start: dict[int, float] = {}
        self._used: dict[int, int] = {}

    def count(self) -> list[tuple[int, int, int, int]]:
        """Count one call: (seconds, limit, remaining, reset_s) per window."""
        now = self._clock()
        out = []
        with self._lock:
            for seconds, limit in self._windows:
                start = self._start.get(seconds)
                if start is None or now >= start + seconds:
                    self._start[seconds], self._used[seconds] = now, 0
                    start = now
                self._used[seconds] += 1
                reset = max(1, math.ceil(seconds - (now - start)))
                out.append((seconds, limit, max(0, limit - self._used[seconds]), reset))
        return out


def headers(windows: list[tuple[int, int, int, int]]) -> dict[str, str]:
    """X-RateLimit-* for the windows (seconds, limit, remaining, reset_s); the first item is the tightest limit."""
    if not windows:
        return {}
    tightest = min(windows, key=lambda w: (w[2], w[3]))
    ordered = [tightest] + sorted((w for w in windows if w is not tightest), key=lambda w: -w[0])
    parts = [str(tightest[1])] + [
        f'{limit};w={seconds};name="partner:sandbox|domain:orders|unit:{_unit(seconds)}"'
        for seconds, limit, _, _ in ordered]
    return {"X-RateLimit-Limit": ", ".join(parts), "X-RateLimit-Remaining": str(tightest[2]),
            "X-RateLimit-Reset": str(tightest[3])}
