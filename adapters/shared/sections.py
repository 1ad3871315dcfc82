"""Base models for an adapter's own ``[shop.<name>]`` section.

``AdapterSection`` is the base of every adapter's config model: unknown keys are an error and the
model is frozen, like every core section. ``FeedSection`` adds the keys of a shop that exports a
feed (file path or http(s) URL) and imports files from an outbox folder, with the feed limits
(issue 16: everything from outside has a bound).
"""

from __future__ import annotations

import codecs
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

MiB = 2**20


class AdapterSection(BaseModel):
    """Base of an adapter's config model: unknown keys are refused (the error names file, line, key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FeedLimits(AdapterSection):
    """The bounds on a feed. Far above any real order feed; a feed past one is refused for that poll
    (``FeedRefused``, naming the source and the key), and the previous state stays."""

    max_feed_bytes: int = Field(100 * MiB, ge=1024)
    max_line_bytes: int = Field(1 * MiB, ge=1024)
    max_rows: int = Field(500_000, ge=1)
    max_xlsx_bytes: int = Field(100 * MiB, ge=1024)
    max_xlsx_cells: int = Field(5_000_000, ge=1)
    max_xlsx_strings: int = Field(500_000, ge=1)
    fetch_deadline_s: float = Field(120.0, gt=0, le=3600)


class FeedSection(FeedLimits):
    """A shop that exports a feed and imports files from an outbox folder."""

    source: str | None = None
    outbox: Path = Path("outbox")
    encoding: str = "utf-8"
    auth_user: str | None = None
    auth_password: SecretStr | None = None
    settle_s: float = Field(2.0, ge=0)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown text encoding {v!r} (try utf-8 or cp1250)") from None
        return v

    def limits(self) -> FeedLimits:
        return FeedLimits(**{k: getattr(self, k) for k in FeedLimits.model_fields})
