"""parse_shop_datetime: every accepted format, with and without offsets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from adapters.generic_csv import parse_shop_datetime

PRAGUE = ZoneInfo("Europe/Prague")
UTC = timezone.utc


@pytest.mark.parametrize("text,expected", [
    ("2026-11-26 10:15:00", datetime(2026, 11, 26, 10, 15, tzinfo=PRAGUE)),
    ("2026-11-26 10:15", datetime(2026, 11, 26, 10, 15, tzinfo=PRAGUE)),
    ("2026-11-26T10:15:00", datetime(2026, 11, 26, 10, 15, tzinfo=PRAGUE)),
    ("2026-11-26T10:15:00.250", datetime(2026, 11, 26, 10, 15, 0, 250000, tzinfo=PRAGUE)),
    ("2026-11-26T10:15:00Z", datetime(2026, 11, 26, 10, 15, tzinfo=UTC)),
    ("2026-11-26T10:15:00+02:00", datetime(2026, 11, 26, 8, 15, tzinfo=UTC)),
    ("2026-11-26T10:15:00+0200", datetime(2026, 11, 26, 8, 15, tzinfo=UTC)),
    ("2026-11-26 10:15:00-05:00", datetime(2026, 11, 26, 15, 15, tzinfo=UTC)),
    ("2026-11-26", datetime(2026, 11, 26, 0, 0, tzinfo=PRAGUE)),
    ("26.11.2026 10:15", datetime(2026, 11, 26, 10, 15, tzinfo=PRAGUE)),
    ("26.11.2026 10:15:30", datetime(2026, 11, 26, 10, 15, 30, tzinfo=PRAGUE)),
    ("6.7.2026", datetime(2026, 7, 6, tzinfo=PRAGUE)),
    ("6. 7. 2026 8:05", datetime(2026, 7, 6, 8, 5, tzinfo=PRAGUE)),
    ("  2026-11-26 10:15:00  ", datetime(2026, 11, 26, 10, 15, tzinfo=PRAGUE)),
])
def test_formats(text, expected):
    value = parse_shop_datetime(text, PRAGUE)
    assert value == expected
    assert value.tzinfo is not None


def test_no_offset_uses_the_shop_timezone_with_dst():
    winter = parse_shop_datetime("2026-01-15 12:00:00", PRAGUE)
    summer = parse_shop_datetime("15.07.2026 12:00", PRAGUE)
    assert winter.utcoffset() == timedelta(hours=1)
    assert summer.utcoffset() == timedelta(hours=2)
    bratislava_utc = parse_shop_datetime("2026-01-15 12:00:00", ZoneInfo("Europe/London"))
    assert bratislava_utc.utcoffset() == timedelta(0)


def test_explicit_offset_wins_over_shop_timezone():
    assert parse_shop_datetime("2026-01-15T12:00:00Z", PRAGUE).utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "yesterday", "2026/11/26", "26-11-2026", "11/26/2026", "2026-11-26T25:00",
                                  "31.02.2026", "2026-13-01", "26.11.26", "1764151200"])
def test_rejected(text):
    with pytest.raises(ValueError, match="date"):
        parse_shop_datetime(text, PRAGUE)
