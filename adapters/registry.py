"""The installed shop adapters, found through the entry-point group ``mall_connector.adapters``.

An installed package declares, in its pyproject.toml::

    [project.entry-points."mall_connector.adapters"]
    myshop = "myshop_adapter:ADAPTER"     # an adapters.base.AdapterSpec named "myshop"

and ``[shop] adapter = "myshop"`` with a ``[shop.myshop]`` section then works without touching the
core. The lookup is cached; ``refresh()`` forgets it (a test that installs an adapter at run time).
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points
from typing import NamedTuple

from adapters.base import AdapterSpec

log = logging.getLogger("mall_connector.adapters.registry")

ENTRY_POINT_GROUP = "mall_connector.adapters"
#: Names an adapter cannot take: they are keys of [shop] itself.
RESERVED = frozenset({"adapter", "mapping", "timezone", "unreadable_polls_alert", "carrier_urls"})


class Registry(NamedTuple):
    specs: dict[str, AdapterSpec]  # name -> spec, sorted by name
    broken: dict[str, str]  # name -> why its entry point could not be used


@cache
def _load() -> Registry:
    specs: dict[str, AdapterSpec] = {}
    broken: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in specs or ep.name in broken:
            log.warning("shop adapter %r is registered twice; using the first (%s)", ep.name, ep.value)
            continue
        try:
            spec = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken third-party adapter must not stop the others
            broken[ep.name] = f"its entry point {ep.value} cannot be loaded: {e.__class__.__name__}: {e}"
            continue
        problem = _check(ep.name, spec)
        if problem:
            broken[ep.name] = f"its entry point {ep.value} {problem}"
            continue
        specs[ep.name] = spec
    for name, why in broken.items():
        log.warning("shop adapter %r is not usable: %s", name, why)
    return Registry(dict(sorted(specs.items())), broken)


def _check(name: str, spec: object) -> str | None:
    if not isinstance(spec, AdapterSpec):
        return f"names a {type(spec).__name__}, not an adapters.base.AdapterSpec"
    if spec.name != name:
        return f"names the adapter {spec.name!r}, not {name!r}"
    if name in RESERVED or not name.isidentifier():
        return f"uses the name {name!r}, which cannot be a [shop.<name>] section"
    return None


def adapters() -> dict[str, AdapterSpec]:
    """Every usable registered adapter, by name."""
    return _load().specs


def problem(name: str) -> str | None:
    """Why the registered adapter ``name`` is not usable, or None."""
    return _load().broken.get(name)


def get(name: str) -> AdapterSpec:
    """The spec for ``name``; KeyError (with the reason) when there is no usable adapter of that name."""
    registry = _load()
    if name in registry.specs:
        return registry.specs[name]
    raise KeyError(describe_unknown(name))


def describe_unknown(name: str) -> str:
    """The reason ``name`` is not an adapter, for a config error."""
    registry = _load()
    if name in registry.broken:
        return f"adapter {name!r} is installed but not usable: {registry.broken[name]}"
    installed = ", ".join(registry.specs) or "none: is mall-connector installed (pip install .)?"
    return f"unknown adapter {name!r} (installed: {installed})"


def refresh() -> None:
    """Forget the cached lookup, so adapters installed since are seen."""
    _load.cache_clear()
