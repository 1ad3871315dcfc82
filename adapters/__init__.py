"""Shop adapters. ``make_adapter`` picks the one the config names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connector.config import Config, ConfigError, find_key_line

if TYPE_CHECKING:
    from adapters.base import ShopAdapter


def make_adapter(config: Config) -> "ShopAdapter":
    """The configured shop adapter. Raises ConfigError (naming the config file) for a bad adapter setting."""
    kind = config.shop.adapter
    try:
        if kind == "generic_csv":
            from adapters.generic_csv import GenericCsvAdapter

            return GenericCsvAdapter(config.shop.generic_csv, config.shop.tz)
        if kind == "fastcentrik":
            from adapters.fastcentrik import FastCentrikAdapter

            return FastCentrikAdapter(config.shop.fastcentrik, config.shop.tz)
    except ConfigError as e:
        if e.path is None and config.source_path is not None:  # adapters don't know the file; we do
            line = _line(config, e.key)
            raise ConfigError(config.source_path, e.key, e.reason, line) from None
        raise
    raise ConfigError(config.source_path, "shop.adapter", f"unknown adapter {kind!r} (generic_csv or fastcentrik)")


def _line(config: Config, key: str | None) -> int | None:
    if not key or config.source_path is None:
        return None
    try:
        text = config.source_path.read_text(encoding="utf-8")
    except OSError:
        return None
    return find_key_line(text, key) or find_key_line(text, key.rpartition(".")[0])
