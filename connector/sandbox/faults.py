"""Fault knobs: the ways a real MALL (or the network to it) misbehaves, on demand and reproducibly.

A ``Faults`` value is immutable apart from its seeded RNG and rate-limit window; the server swaps the
whole object when knobs change, which also restarts the RNG sequence and the budget window.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

RATES = ("error_rate", "error_after_apply_rate", "rate_limit_rate", "drop_rate",
         "webhook_drop_rate", "webhook_duplicate_rate")


@dataclass
class Faults:
    """Knobs for the MALL API (``/v1``) and the webhook sender. Rates are probabilities 0..1.

    Request faults, checked in this order after authentication:
      latency_ms              sleep before answering
      drop_rate               close the connection without any reply
      rate_limit_budget       deterministic limit: this many requests per rate_limit_window_s, then 429
                              until the window resets (X-RateLimit-* headers on every answer)
      rate_limit_rate         random 429 with X-RateLimit-Reset = rate_limit_reset_s
      error_rate              answer ``error_status`` (5xx) without touching the order
      error_after_apply_rate  PUT and POST only: apply the change, then answer 500 (an ambiguous outcome)
    ``methods`` limits request faults to those HTTP methods (empty = all), e.g. ("PUT",).

    Webhook faults: webhook_drop_rate (a batch never arrives), webhook_duplicate_rate (sent twice),
    webhook_delay_s (wait before sending a batch).
    """

    seed: int = 0
    latency_ms: int = 0
    drop_rate: float = 0.0
    rate_limit_budget: int | None = None
    rate_limit_window_s: float = 60.0
    rate_limit_rate: float = 0.0
    rate_limit_reset_s: int = 1
    error_rate: float = 0.0
    error_status: int = 500
    error_after_apply_rate: float = 0.0
    methods: tuple[str, ...] = ()
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_delay_s: float = 0.0
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False, default_factory=threading.Lock)
    _window_start: float | None = field(init=False, repr=False, compare=False, default=None)
    _window_used: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        for name in RATES:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number from 0 to 1")
        for name in ("latency_ms", "rate_limit_reset_s", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")
        for name in ("rate_limit_window_s", "webhook_delay_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
        if self.rate_limit_window_s <= 0:
            raise ValueError("rate_limit_window_s must be positive")
        if self.rate_limit_budget is not None and (
            not isinstance(self.rate_limit_budget, int) or isinstance(self.rate_limit_budget, bool)
            or self.rate_limit_budget < 0
        ):
            raise ValueError("rate_limit_budget must be a non-negative integer or null")
        if not isinstance(self.error_status, int) or not 500 <= self.error_status <= 599:
            raise ValueError("error_status must be a 5xx status code")
        self.methods = tuple(str(m).upper() for m in self.methods)
        self._rng = random.Random(self.seed)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        """Faults from JSON-ish data; ValueError naming an unknown knob."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown fault knob(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self) if f.init}

    def replace(self, **changes: Any) -> Faults:
        """A new Faults with ``changes`` applied (fresh RNG and budget window)."""
        return Faults.from_dict({**self.to_dict(), **changes})

    def applies_to(self, method: str) -> bool:
        return not self.methods or method.upper() in self.methods

    def roll(self, rate: float) -> bool:
        """True with probability ``rate`` (seeded; 0 and 1 never consume a number)."""
        if rate <= 0:
            return False
        if rate >= 1:
            return True
        with self._lock:
            return self._rng.random() < rate

    def take_budget(self, now: float | None = None) -> tuple[bool, int, int]:
        """Count one request against the budget: (allowed, remaining, seconds until the window resets)."""
        assert self.rate_limit_budget is not None
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._window_start is None or now >= self._window_start + self.rate_limit_window_s:
                self._window_start, self._window_used = now, 0
            reset = max(1, math.ceil(self.rate_limit_window_s - (now - self._window_start)))
            if self._window_used >= self.rate_limit_budget:
                return False, 0, reset
            self._window_used += 1
            return True, self.rate_limit_budget - self._window_used, reset
