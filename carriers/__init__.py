"""Carrier trackers: one package per carrier, found through the entry-point group ``mall_connector.carriers``.

A tracker asks one carrier's tracking API about tracking numbers (``carriers.base.Tracker``); each package
also ships a local simulator of that API. The core (``connector.sync.delivery``) knows no carrier: it gets
the trackers from ``registry()`` by name, and picks one per parcel with ``guess_by_name`` /
``guess_by_number``. Adding a carrier = a package with a Tracker subclass + an entry point; nothing in the
core changes.
"""

from __future__ import annotations

import importlib
import logging
import unicodedata
from functools import lru_cache
from importlib.metadata import entry_points

from carriers.base import CarrierError, CarrierSettings, TrackResult, Tracker

log = logging.getLogger("mall_connector.carriers")

GROUP = "mall_connector.carriers"

__all__ = ["GROUP", "CarrierError", "CarrierSettings", "TrackResult", "Tracker", "registry", "guess_by_name",
           "guess_by_number", "load_simulator"]


@lru_cache(maxsize=1)
def registry() -> dict[str, type[Tracker]]:
    """{name: Tracker class} of every installed carrier, by entry point (a broken plug-in is logged and left out)."""
    out: dict[str, type[Tracker]] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception as e:  # noqa: BLE001 - one broken plug-in must not take the others down
            log.error("carrier plug-in %s (%s) cannot be loaded: %s", ep.name, ep.value, e)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Tracker)) or cls.name != ep.name:
            log.error("carrier plug-in %s (%s) is not a Tracker named %r", ep.name, ep.value, ep.name)
            continue
        out[ep.name] = cls
    return dict(sorted(out.items()))


def _fold(text: str) -> str:
    """Lower case, no accents, punctuation as spaces: "Zásilkovna - Z-BOX" -> "zasilkovna z box"."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join("".join(ch if ch.isalnum() else " " for ch in plain).split())


def guess_by_name(carrier: str | None, names: dict[str, type[Tracker]] | None = None) -> str | None:
    """The tracker for a carrier name as a shop writes it ("Zásilkovna", "PPL", "Česká pošta"), also with a
    service after it ("Zásilkovna - Z-BOX", "PPL Parcel CZ Private"); None when no carrier's name starts it."""
    if not carrier:
        return None
    folded = _fold(carrier)
    for name, cls in (names or registry()).items():
        for alias in {_fold(name), *(_fold(a) for a in cls.aliases)}:
            if folded == alias or folded.startswith(alias + " "):
                return name
    return None


def guess_by_number(number: str | None, names: dict[str, type[Tracker]] | None = None) -> str | None:
    """The tracker whose number shape fits, when exactly one does (a number two carriers could own is not guessed)."""
    if not number:
        return None
    fits = [name for name, cls in (names or registry()).items() if cls.number_re.match(number.strip().replace(" ", ""))]
    return fits[0] if len(fits) == 1 else None


def load_simulator(name: str):
    """The simulator class of a registered carrier."""
    cls = registry()[name]
    if not cls.simulator:
        raise LookupError(f"carrier {name} has no simulator")
    module, _, attr = cls.simulator.partition(":")
    return getattr(importlib.import_module(module), attr)
