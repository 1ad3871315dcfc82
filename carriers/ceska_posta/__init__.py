"""Česká pošta (incl. Balíkovna): the public ParcelHistory JSON service (no key, up to 10 numbers a call)."""

from carriers.ceska_posta.tracker import CeskaPostaTracker

__all__ = ["CeskaPostaTracker"]
