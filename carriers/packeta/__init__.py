"""Packeta / Zásilkovna: the REST/XML API (``POST /api/rest``, operation ``packetTracking``)."""

from carriers.packeta.tracker import PacketaTracker

__all__ = ["PacketaTracker"]
