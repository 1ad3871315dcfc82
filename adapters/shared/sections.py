"""Base models for an adapter's own ``[shop.<name>]`` section.

``AdapterSection`` is the base of every adapter's config model: unknown keys are an error and the
model is frozen, like every core section. ``ApiShopSection`` adds what every shop spoken to over its
API has (timeouts, retries, the first poll's look-back, the webhook token). ``FeedSection`` adds the keys of a shop that exports a
feed (file path or http(s) URL) and imports files from an outbox folder, with the feed limits
(issue 16: everything from outside has a bound).
"""

from __future__ import annotations

import codecs
from pathlib import Path

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

MiB = 2**20


class AdapterSection(BaseModel):
    """Base of an adapter's config model: unknown keys are refused (the error names file, line, key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiShopSection(AdapterSection):
    """The keys every API shop section has (adapters/shared/api_shop.py): the client's and the poll's bounds."""

    #: The last part of /webhooks/shop/<adapter>/<token> on the receiver.
    webhook_token: SecretStr | None = None
    #: Which MALL value is the shop's product code or SKU.
    product_key: Literal["item_id", "article_id"] = "item_id"
    timeout_s: float = Field(30.0, gt=0, le=300)
    retries: int = Field(3, ge=0, le=10)
    max_retry_wait_s: float = Field(30.0, ge=0, le=600)
    #: On the very first poll, read orders changed in the last N hours (never the whole history).
    initial_lookback_h: float = Field(24.0, gt=0, le=24 * 30)
    max_pages: int = Field(50, ge=1, le=10_000)
    #: Shop statuses meaning "the customer has it" (map them to "delivered" in the mapping): their orders
    #: carry the order's last change time as delivered_at, which MALL requires with delivered.
    delivered_statuses: list[str] = []


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
    # Mode and group of every outbox file, whatever the umask ("0640" + the folder's group: a setgid
    # folder shared with the shop's import user works). Issue 13.
    outbox_mode: str = "0640"
    outbox_group: str | int | None = None
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

    @field_validator("outbox_mode")
    @classmethod
    def _outbox_mode(cls, v: str) -> str:
        from connector.files import parse_mode

        parse_mode(v)
        return v

    @field_validator("outbox_group")
    @classmethod
    def _outbox_group(cls, v: str | int | None) -> str | int | None:
        if isinstance(v, str) and not v.strip():
            raise ValueError("must be a group name or a numeric gid (leave it out for the outbox folder's group)")
        if isinstance(v, int) and v < 0:
            raise ValueError("a gid is a number >= 0")
        return v

    def limits(self) -> FeedLimits:
        return FeedLimits(**{k: getattr(self, k) for k in FeedLimits.model_fields})
