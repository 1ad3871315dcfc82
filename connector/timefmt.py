"""Times shown to a person: in the shop's time zone (``[shop] timezone``), to the second.

The ledger stores naive UTC. A person reads local time, and a table or message names its zone
once ("times in Europe/Prague") instead of on every cell. JSON keeps ISO 8601 with an offset, so
scripts never guess a zone.
"""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from zoneinfo import ZoneInfo

DISPLAY_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_ZONE = "Europe/Prague"


def zone(tz: tzinfo | str | None) -> tzinfo:
    """A tzinfo from a zone name (``[shop] timezone``) or a tzinfo; None means Europe/Prague."""
    if tz is None:
        return ZoneInfo(DEFAULT_ZONE)
    if isinstance(tz, str):
        return ZoneInfo(tz)
    return tz


def zone_name(tz: tzinfo | str | None) -> str:
    """The zone's name as a person knows it (``Europe/Prague``), for the one label per table or message."""
    z = zone(tz)
    return getattr(z, "key", None) or str(z)


def as_local(at: datetime, tz: tzinfo | str | None) -> datetime:
    """``at`` (aware, or naive UTC as the ledger stores it) in the display zone."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(zone(tz))


def local(at: datetime | None, tz: tzinfo | str | None, *, empty: str = "") -> str:
    """``YYYY-MM-DD HH:MM:SS`` in the display zone (no microseconds, no zone: the table names it once)."""
    if at is None:
        return empty
    return as_local(at, tz).strftime(DISPLAY_FORMAT)


def iso(at: datetime | None, tz: tzinfo | str | None = None) -> str | None:
    """ISO 8601 with the offset (for JSON), to the second; naive values are UTC."""
    if at is None:
        return None
    return as_local(at, tz if tz is not None else timezone.utc).isoformat(timespec="seconds")


def clock_time(at: datetime, tz: tzinfo | str | None, now: datetime | None = None) -> str:
    """``10:02:13`` when ``at`` is on the same local day as ``now``, else ``2026-11-30 10:02:13``."""
    t = as_local(at, tz)
    if now is not None and as_local(now, tz).date() == t.date():
        return t.strftime("%H:%M:%S")
    return t.strftime(DISPLAY_FORMAT)


def duration(seconds: float) -> str:
    """A span in plain words: ``45 s``, ``11 min``, ``3 h 5 min``, ``2 d 4 h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def file_stamp(at: datetime, tz: tzinfo | str | None) -> str:
    """The time part of a file name, in the display zone and naming it: ``20261201T100213CET``.

    Only letters and digits (outbox names allow ``A-Za-z0-9._-``): the zone's abbreviation (CET, CEST),
    or ``UTCp0300`` / ``UTCm0500`` for a zone that has none."""
    local_at = as_local(at, tz)
    abbrev = local_at.strftime("%Z")
    if not abbrev.isalpha():
        offset = local_at.strftime("%z")
        abbrev = "UTC" + ("p" if offset.startswith("+") else "m") + offset[1:]
    return local_at.strftime("%Y%m%dT%H%M%S") + abbrev
