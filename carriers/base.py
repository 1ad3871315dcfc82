"""The carrier-tracker contract: what the delivery job asks a carrier, and what it gets back.

A tracker speaks one carrier's tracking API and decides nothing: it turns the carrier's answer for
a list of tracking numbers into ``TrackResult`` values (delivered with its time, returned, still on
its way, not found) or ``CarrierError`` (the call, or one number's entry, failed; tried again later).
What to push to MALL, when to ask again and when to stop is decided in ``connector.sync.delivery``.

Credentials live in the tracker's settings as ``SecretStr``; ``CarrierError`` messages are built
from status codes and fixed text, never from request URLs or bodies, so they cannot leak them.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal, Sequence
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

PRAGUE = ZoneInfo("Europe/Prague")
MAX_RESPONSE_BYTES = 2 * 1024 * 1024  # a tracking answer is a few kB; anything this big is garbage

Outcome = Literal["delivered", "returned", "in_transit", "not_found"]
ErrorKind = Literal["outage", "timeout", "server", "limited", "auth", "garbage"]


@dataclass(frozen=True)
class TrackResult:
    """What the carrier says about one parcel now. Times are timezone-aware."""

    number: str
    outcome: Outcome
    delivered_at: datetime | None = None
    first_attempt: datetime | None = None
    date_only: bool = False  # the carrier gives the delivery date without a time of day (Česká pošta)
    detail: str = ""  # the carrier's own status code and text, kept in the ledger


class CarrierError(Exception):
    """A call (or one number's entry in an answer) failed; the parcel is asked again later with backoff.

    ``kind``: outage (no connection), timeout, server (5xx), limited (429, ``retry_after_s``), auth
    (the carrier refused our credentials), garbage (an answer we cannot read)."""

    def __init__(self, carrier: str, kind: ErrorKind, message: str, *, retry_after_s: float | None = None):
        self.carrier = carrier
        self.kind = kind
        self.retry_after_s = retry_after_s
        super().__init__(f"{carrier}: {kind}: {message}")


class CarrierSettings(BaseModel):
    """``[carriers.<name>]``; every tracker extends it with its credentials (``SecretStr``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    base_url: str
    timeout_s: float = Field(10.0, gt=0, le=120)
    #: Seconds between two calls to this carrier (its own rate limit; none publish one, see docs).
    min_interval_s: float = Field(1.0, ge=0, le=60)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")

    def secrets(self) -> list[str]:
        """Every secret value, so the caller can register them with the log redactor."""
        return [v.get_secret_value() for v in self.__dict__.values() if isinstance(v, SecretStr) and v.get_secret_value()]


class Tracker:
    """Base of every carrier tracker: subclass, set the class attributes, implement ``track``."""

    name: ClassVar[str]  # registry name and [carriers.<name>] section, e.g. "packeta"
    title: ClassVar[str]  # for people, e.g. "Packeta / Zásilkovna"
    #: Carrier names a shop feed may use (compared case- and accent-insensitively).
    aliases: ClassVar[tuple[str, ...]] = ()
    #: Tracking numbers of this carrier (used when neither the feed nor the delivery method names it).
    number_re: ClassVar[re.Pattern[str]]
    batch_size: ClassVar[int] = 1  # numbers per call the carrier accepts
    settings_model: ClassVar[type[CarrierSettings]] = CarrierSettings
    #: Keys of settings_model that are secrets: read from env MALL_CARRIER_<NAME>_<KEY> or the systemd
    #: credential carrier_<name>_<key> when not in the file.
    secret_keys: ClassVar[tuple[str, ...]] = ()
    #: "module:Class" of the carrier's local simulator (``mall-connector sandbox --carriers``, tests, demo).
    simulator: ClassVar[str | None] = None

    def __init__(self, settings: CarrierSettings, *, transport: httpx.BaseTransport | None = None):
        self.settings = settings
        self._http = httpx.Client(timeout=settings.timeout_s, transport=transport, follow_redirects=False,
                                  headers={"User-Agent": "mall-connector (carrier tracking)"})
        self._pace_lock = threading.Lock()
        self._last_call = 0.0
        self.calls = 0  # HTTP requests made (each tracking call and token request)

    @classmethod
    def normalize(cls, number: str) -> str:
        """The tracking number as the carrier's API wants it."""
        return number.strip().upper()

    def track(self, numbers: Sequence[str]) -> dict[str, TrackResult | CarrierError]:
        """Ask about up to ``batch_size`` numbers in one call. Raises CarrierError when the whole call failed;
        a number missing from the answer or with an unreadable entry gets its own CarrierError."""
        raise NotImplementedError

    def close(self) -> None:
        self._http.close()

    # -- HTTP, with the carrier's pace, a size bound and errors that name no secret ---------------
    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        with self._pace_lock:
            wait = self._last_call + self.settings.min_interval_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_call = time.monotonic()
        self.calls += 1
        url = self.settings.base_url + path
        # httpx's timeout is per read; a server trickling bytes must not hold the job: a total deadline too.
        deadline = time.monotonic() + 3 * self.settings.timeout_s
        try:
            with self._http.stream(method, url, **kwargs) as resp:
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise CarrierError(self.name, "garbage", f"answer larger than {MAX_RESPONSE_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise CarrierError(self.name, "timeout", f"answer not complete within "
                                                                 f"{3 * self.settings.timeout_s:g} s")
                resp._content = bytes(body)
        except httpx.TimeoutException:
            raise CarrierError(self.name, "timeout", f"no answer within {self.settings.timeout_s:g} s") from None
        except httpx.TransportError as e:
            raise CarrierError(self.name, "outage", f"cannot reach the tracking API ({type(e).__name__})") from None
        if resp.status_code == 429:
            raise CarrierError(self.name, "limited", "rate limited (429)", retry_after_s=_retry_after(resp))
        if resp.status_code >= 500:
            raise CarrierError(self.name, "server", f"tracking API answered {resp.status_code}")
        return resp


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return min(3600.0, max(0.0, float(resp.headers.get("Retry-After", ""))))
    except ValueError:
        return None


def parse_carrier_time(text: str | None, *, carrier: str) -> datetime:
    """An ISO date-time from a carrier; without an offset it is Prague local time (see docs/reference)."""
    if not text or not isinstance(text, str):
        raise CarrierError(carrier, "garbage", "a status has no time")
    raw = text.strip()
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise CarrierError(carrier, "garbage", f"unreadable time {text[:40]!r}") from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=PRAGUE)
