"""``[shop.generic_csv]``: where the CSV feed is and where the outbox is (keys in config.example.toml)."""

from __future__ import annotations

from adapters.shared.sections import FeedSection


class GenericCsvConfig(FeedSection):
    encoding: str = "utf-8-sig"  # UTF-8 with or without a BOM
