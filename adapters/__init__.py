"""Shop adapters. ``make_adapter`` builds the one the config names, found in the registry
(entry-point group ``mall_connector.adapters``, see adapters/registry.py and adapters/README.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # connector.config builds its Config model from the registry: no import at load time
    from adapters.base import ShopAdapter
    from connector.config import Config


def make_adapter(config: "Config") -> "ShopAdapter":
    """The configured shop adapter. Raises ConfigError (naming the config file) for a bad adapter setting."""
    from adapters import registry
    from adapters.base import AdapterContext
    from connector.config import ConfigError

    name = config.shop.adapter
    try:
        spec = registry.get(name)
    except KeyError as e:
        raise ConfigError(config.source_path, "shop.adapter", e.args[0], _line(config, "shop.adapter")) from None
    section = getattr(config.shop, name)
    try:
        return spec.build(section, AdapterContext(tz=config.shop.tz, config_path=config.source_path))
    except ConfigError as e:
        if e.path is None and config.source_path is not None:  # adapters don't know the file; we do
            raise ConfigError(config.source_path, e.key, e.reason, _line(config, e.key)) from None
        raise


def _line(config: "Config", key: str | None) -> int | None:
    from connector.config import find_key_line

    if not key or config.source_path is None:
        return None
    try:
        text = config.source_path.read_text(encoding="utf-8")
    except OSError:
        return None
    return find_key_line(text, key) or find_key_line(text, key.rpartition(".")[0])
