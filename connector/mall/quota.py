"""MALL's call quota as the client sees it: the X-RateLimit-* windows and the calls made, per client.

MALL answers every call with (mall-api.md §5, docs/quota.md)::

    X-RateLimit-Limit: 2875, 5750;w=86400;name="partner:…|domain:orders|unit:d", 2875;w=3600;name="…unit:h", …
    X-RateLimit-Remaining: 57        (the smallest remaining count of all windows)
    X-RateLimit-Reset: 1234          (seconds until the window with the fewest remaining resets)

``QuotaState`` keeps the last reading of one ``MallClient`` (one per account: nothing here is global), and
``CallCounter`` counts the calls that client made by day and kind, for the ledger's ``mall_calls`` table.
A header that does not parse is ignored with one warning per client; it never fails the call.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger("mall_connector.quota")

DAY_S = 86400
HOUR_S = 3600
MINUTE_S = 60
#: Window names by length (the ``unit`` of MALL's policy name says the same: d, h, m).
WINDOW_NAMES = {DAY_S: "day", HOUR_S: "hour", MINUTE_S: "minute"}
UNIT_S = {"d": DAY_S, "h": HOUR_S, "m": MINUTE_S, "s": 1}
MAX_HEADER_CHARS = 2000  # a longer header is not MALL's: ignored
MAX_WINDOWS = 16
MAX_COUNT = 10**12

_ITEM = re.compile(r"^\s*(\d{1,13})\s*((?:;\s*[A-Za-z_][A-Za-z0-9_-]*\s*=\s*(?:\"[^\"]*\"|[^;,\"]*)\s*)*)$")
_PARAM = re.compile(r";\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(\"[^\"]*\"|[^;,\"]*)")


class HeaderError(ValueError):
    """An X-RateLimit-* header that is not in MALL's format."""


@dataclass(frozen=True)
class Window:
    seconds: int
    limit: int
    name: str  # day | hour | minute | "<n>s"

    @staticmethod
    def named(seconds: int) -> str:
        return WINDOW_NAMES.get(seconds, f"{seconds}s")


def _split_items(raw: str) -> list[str]:
    """Split on commas outside quotes (a policy name may, in principle, hold one)."""
    items, current, quoted = [], [], False
    for ch in raw:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise HeaderError("unbalanced quote")
    items.append("".join(current))
    return items


def parse_limit(raw: str) -> tuple[int | None, tuple[Window, ...]]:
    """``X-RateLimit-Limit`` → (the bare current limit or None, the windows ``N;w=S;name=…``).

    Strict: every item is a count with ``;key=value`` parameters; a window item needs ``w`` (seconds, 1..1 year);
    its name's ``unit:d|h|m`` must agree with ``w`` when present. HeaderError otherwise."""
    if not isinstance(raw, str) or not raw.strip():
        raise HeaderError("empty")
    if len(raw) > MAX_HEADER_CHARS:
        raise HeaderError(f"longer than {MAX_HEADER_CHARS} characters")
    items = _split_items(raw)
    if len(items) > MAX_WINDOWS + 1:
        raise HeaderError(f"more than {MAX_WINDOWS} windows")
    current: int | None = None
    windows: dict[int, Window] = {}
    for i, item in enumerate(items):
        m = _ITEM.match(item)
        if m is None:
            raise HeaderError(f"item {i + 1} {item.strip()[:40]!r} is not COUNT[;w=SECONDS;name=…]")
        count = int(m.group(1))
        if count > MAX_COUNT:
            raise HeaderError(f"item {i + 1}: count {count} is out of range")
        params = {k.lower(): v.strip().strip('"') for k, v in _PARAM.findall(m.group(2) or "")}
        if "w" not in params:
            if params or i > 0:
                raise HeaderError(f"item {i + 1} has no w= (window length in seconds)")
            current = count
            continue
        if not params["w"].isdigit() or not 1 <= int(params["w"]) <= 366 * DAY_S:
            raise HeaderError(f"item {i + 1}: w={params['w'][:20]!r} is not a window length in seconds")
        seconds = int(params["w"])
        unit = re.search(r"unit:([a-z]+)", params.get("name", ""))
        if unit and unit.group(1) in UNIT_S and UNIT_S[unit.group(1)] != seconds and unit.group(1) != "s":
            raise HeaderError(f"item {i + 1}: w={seconds} does not match its name's unit:{unit.group(1)}")
        windows[seconds] = Window(seconds, count, Window.named(seconds))
    if not windows and current is None:
        raise HeaderError("no window")
    return current, tuple(sorted(windows.values(), key=lambda w: w.seconds))


def parse_count(raw: str, header: str) -> int:
    """``X-RateLimit-Remaining`` / ``-Reset``: one non-negative integer (a first item of a list is accepted)."""
    text = (raw or "").split(",")[0].split(";")[0].strip()
    if not text.isdigit() or int(text) > MAX_COUNT:
        raise HeaderError(f"{header} {raw[:40]!r} is not a non-negative integer")
    return int(text)


@dataclass(frozen=True)
class QuotaReading:
    """The last X-RateLimit-* reading of one client. ``remaining`` is MALL's smallest remaining count and
    ``window`` the window it belongs to (the shortest window at least as long as ``reset_s``: the one that resets
    then). ``day_remaining`` is the daily budget left: told by MALL when the smallest count was the day's, else
    the last daily count told, less the calls made since (None until MALL told one)."""

    windows: tuple[Window, ...] = ()
    remaining: int | None = None
    reset_s: float | None = None
    window: str | None = None
    day_remaining: int | None = None
    read_at: float | None = None  # time.time() of the answer
    age_s: float | None = None

    @property
    def day_limit(self) -> int | None:
        for w in self.windows:
            if w.seconds == DAY_S:
                return w.limit
        return None

    def limit_of(self, name: str) -> int | None:
        return next((w.limit for w in self.windows if w.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"windows": {w.name: w.limit for w in self.windows}, "remaining": self.remaining,
                "reset_s": self.reset_s, "window": self.window, "day_remaining": self.day_remaining,
                "day_limit": self.day_limit, "age_s": self.age_s}


class QuotaState:
    """The quota reading of one MallClient, updated from every answer's headers (thread-safe)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self._lock = threading.Lock()
        self._clock, self._wall = clock, wall
        self._windows: tuple[Window, ...] = ()
        self._remaining: int | None = None
        self._reset_at: float | None = None
        self._window: str | None = None
        self._day_remaining: int | None = None
        self._day_reset_at: float | None = None  # clock() when the day window told last resets
        self._read_at: float | None = None  # clock()
        self._read_wall: float | None = None
        self._warned = False
        self.malformed = 0  # headers ignored (for tests and the check command)

    def observe(self, headers: Any) -> None:
        """Read the X-RateLimit-* headers of one answer (any status); no header: nothing changes."""
        raw_limit = headers.get("X-RateLimit-Limit")
        raw_remaining = headers.get("X-RateLimit-Remaining")
        raw_reset = headers.get("X-RateLimit-Reset")
        if raw_limit is None and raw_remaining is None:
            with self._lock:
                if self._day_remaining is not None:
                    self._day_remaining = max(0, self._day_remaining - 1)
            return
        try:
            windows = parse_limit(raw_limit)[1] if raw_limit is not None else None
            remaining = parse_count(raw_remaining, "X-RateLimit-Remaining") if raw_remaining is not None else None
            reset = parse_count(raw_reset, "X-RateLimit-Reset") if raw_reset is not None else None
        except HeaderError as e:
            with self._lock:
                self.malformed += 1
                warn, self._warned = not self._warned, True
            if warn:
                log.warning("MALL sent an X-RateLimit header the connector cannot read (%s); it is ignored", e)
            return
        now = self._clock()
        with self._lock:
            if windows is not None:
                self._windows = windows
            if remaining is None:
                return
            self._remaining = remaining
            self._reset_at = now + reset if reset is not None else None
            self._read_at, self._read_wall = now, self._wall()
            self._window = self._window_of(reset)
            if self._day_reset_at is not None and now >= self._day_reset_at:
                self._day_remaining = self._day_reset_at = None  # a new day: unknown until MALL tells it
            if self._window == "day":
                self._day_remaining = remaining
                self._day_reset_at = self._reset_at
            elif self._day_remaining is not None:
                # Not the day's count: the daily budget is at least this, and one call less than last known.
                self._day_remaining = max(remaining, self._day_remaining - 1)

    def _window_of(self, reset: int | None) -> str | None:
        if not self._windows:
            return None
        if reset is None:
            return self._windows[0].name if len(self._windows) == 1 else None
        for w in self._windows:
            if reset <= w.seconds:
                return w.name
        return self._windows[-1].name

    def reading(self) -> QuotaReading:
        with self._lock:
            now = self._clock()
            if self._day_reset_at is not None and now >= self._day_reset_at:
                self._day_remaining = self._day_reset_at = None
            return QuotaReading(
                windows=self._windows, remaining=self._remaining,
                reset_s=max(0.0, self._reset_at - now) if self._reset_at is not None else None,
                window=self._window, day_remaining=self._day_remaining, read_at=self._read_wall,
                age_s=(now - self._read_at) if self._read_at is not None else None)


# -- counting calls by kind --------------------------------------------------------------------------

#: What a call was for, set by the caller for calls whose endpoint alone does not say (a verification list).
_call_kind: contextvars.ContextVar[str | None] = contextvars.ContextVar("mall_call_kind", default=None)


@contextlib.contextmanager
def call_kind(kind: str) -> Iterator[None]:
    """Count the MALL calls made inside as ``kind`` (e.g. ``verify``)."""
    token = _call_kind.set(kind)
    try:
        yield
    finally:
        _call_kind.reset(token)


def kind_of(method: str, template: str, body: Any) -> str:
    """The kind of a call from its endpoint (and, for a PUT, its body): push, confirm, read, sweep, list, …"""
    explicit = _call_kind.get()
    if explicit:
        return explicit
    if template == "PUT /v1/orders/{id}":
        return "confirm" if isinstance(body, dict) and set(body) == {"confirmed"} else "push"
    if template == "PUT /v1/orders/{id}/tracking":
        return "push"
    if template.startswith("PUT /v1/orders/{id}/items"):
        return "serials"
    if template == "GET /v1/orders/{id}":
        return "read"
    if template == "GET /v1/orders/unconfirmed":
        return "sweep"
    if template == "GET /v1/orders":
        return "list"
    if template == "GET /v1/orders/stats":
        return "stats"
    if "labels" in template or "consignments" in template:
        return "labels"
    return "other"


@dataclass
class CallCounter:
    """Calls of one client by (day, kind), waiting to be added to the ledger (``take`` empties it)."""

    tz: ZoneInfo | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _counts: dict[tuple[str, str], list[int]] = field(default_factory=dict, repr=False)

    def note(self, kind: str, status_code: int, *, at: datetime | None = None) -> None:
        at = at or datetime.now(timezone.utc)
        day = (at.astimezone(self.tz) if self.tz else at).strftime("%Y-%m-%d")
        with self._lock:
            entry = self._counts.setdefault((day, kind), [0, 0])
            entry[0] += 1
            if not status_code or status_code >= 400:
                entry[1] += 1

    def take(self) -> dict[tuple[str, str], tuple[int, int]]:
        with self._lock:
            counts, self._counts = self._counts, {}
        return {k: (v[0], v[1]) for k, v in counts.items()}

    def give_back(self, counts: dict[tuple[str, str], tuple[int, int]]) -> None:
        """Counts ``take`` returned that could not be stored: kept for the next flush."""
        with self._lock:
            for key, (calls, errors) in counts.items():
                entry = self._counts.setdefault(key, [0, 0])
                entry[0] += calls
                entry[1] += errors

    def pending(self) -> int:
        with self._lock:
            return sum(v[0] for v in self._counts.values())
