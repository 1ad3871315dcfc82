"""A local MALL Marketplace look-alike for the demo, the tests and partners trying their mapping.

MALL no longer offers a test environment, so this speaks MALL's order API and webhooks over real HTTP,
enforces the same status rules as the connector (``connector.mall.statuses``) and can misbehave on
demand (``Faults``). Start one with ``SandboxServer`` or ``mall-connector sandbox``.
"""

from connector.sandbox.faults import Faults
from connector.sandbox.server import SandboxServer
from connector.sandbox.state import OrderStore

__all__ = ["Faults", "OrderStore", "SandboxServer"]
