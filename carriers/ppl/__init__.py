"""PPL CZ: the CPL API ("myAPI2"), OAuth2 client credentials, up to 50 shipment numbers per call."""

from carriers.ppl.tracker import PplTracker

__all__ = ["PplTracker"]
