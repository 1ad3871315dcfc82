"""Small helpers shared by the sync engines: time formats, backoff, snapshots."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from typing import Callable

from connector.ledger.repo import utcnow

PRAGUE = ZoneInfo("Europe/Prague")  # MALL's datetimes carry no offset and are Prague local time


def mall_time(dt: datetime | None) -> str | None:
    """An aware datetime in MALL's wire format: ``YYYY-MM-DD HH:MM:SS`` Prague local time."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=PRAGUE)
    return dt.astimezone(PRAGUE).strftime("%Y-%m-%d %H:%M:%S")


def backoff_at(attempts: int, base_s: float, max_s: float, *, at_least_s: float = 0.0,
               rng: random.Random | None = None) -> datetime:
    """When to try again: exponential from ``base_s`` with ±10 % jitter, capped, never before ``at_least_s``."""
    delay = min(max_s, base_s * (2 ** max(0, attempts - 1)))
    delay *= (rng or random).uniform(0.9, 1.1)
    return utcnow() + timedelta(seconds=max(delay, at_least_s))


def fingerprint(values: dict) -> str:
    """A stable digest of a shop row, to tell 'same as last seen' without keeping the row."""
    raw = json.dumps(values, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


class Engine:
    """What the outbound and inbound engines share: their collaborators and the mapping in force."""

    def __init__(self, *, ledger, client, adapter, mapping, config, metrics=None):
        self.ledger = ledger
        self.client = client
        self.adapter = adapter
        self._mapping = mapping  # a Mapping, or a callable returning the one in force (reload swaps it)
        self.config = config
        self.metrics = metrics
        #: Called between items: returns True when the process is stopping (and proves progress to the watchdog).
        self.should_stop: Callable[[], bool] = lambda: False

    @property
    def mapping(self):
        return self._mapping() if callable(self._mapping) else self._mapping
