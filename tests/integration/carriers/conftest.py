"""Carrier simulators on loopback, and a CSV shop whose config asks them."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from carriers.ceska_posta.simulator import CeskaPostaSimulator
from carriers.packeta.simulator import PacketaSimulator
from carriers.ppl.simulator import PplSimulator
from connector.sync.common import PRAGUE

# Module-level *SECRET* strings are watched by the log scan (tests/support/logscan.py): a log line with one fails.
PACKETA_API_SECRET = "packeta-test-password-9876"
PPL_CLIENT_SECRET = "ppl-sim-secret-0001-abcdef"
PPL_CLIENT_ID_SECRET = "ppl-sim-client-0001-abcdef"
FMT = "%Y-%m-%d %H:%M:%S"


@pytest.fixture
def sims():
    started = {"packeta": PacketaSimulator(api_password=PACKETA_API_SECRET).start(),
               "ceska_posta": CeskaPostaSimulator().start(),
               "ppl": PplSimulator(client_id=PPL_CLIENT_ID_SECRET, client_secret=PPL_CLIENT_SECRET).start()}
    yield started
    for sim in started.values():
        sim.stop()


def carriers_toml(sims, *, extra: str = "", packeta_password: str = PACKETA_API_SECRET) -> str:
    return f"""[carriers]
retry_base_s = 60
{extra}
[carriers.packeta]
base_url = "{sims['packeta'].url}"
api_password = "{packeta_password}"
min_interval_s = 0
timeout_s = 2
[carriers.ceska_posta]
base_url = "{sims['ceska_posta'].url}"
min_interval_s = 0
timeout_s = 2
[carriers.ppl]
base_url = "{sims['ppl'].url}"
client_id = "{PPL_CLIENT_ID_SECRET}"
client_secret = "{PPL_CLIENT_SECRET}"
min_interval_s = 0
timeout_s = 2
"""


def shipped_order(sandbox) -> tuple[int, datetime]:
    """An order MALL has had shipped for a while (not MALL Delivery), and MALL's shipped time (Prague)."""
    while True:
        (order,) = sandbox.state.create_orders(1, status="shipped")
        if not order["mdp"]:
            return order["id"], datetime.strptime(order["shipped"], FMT).replace(tzinfo=PRAGUE)


def after(shipped: datetime, fraction: float = 0.5) -> datetime:
    """A whole second between MALL's shipped time and now."""
    now = datetime.now(PRAGUE)
    return (shipped + (now - shipped) * fraction).replace(microsecond=0) + timedelta(seconds=0)
