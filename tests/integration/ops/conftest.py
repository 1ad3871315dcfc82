"""Fixtures for the partner-operations tests: a real ledger filled from the sandbox the way the daemon fills it.

Orders are created in the sandbox, moved over its HTTP API (partner PUTs through the real MallClient,
MALL-side events through the operator endpoints), read back with ``get_order`` and recorded with
``store_snapshot``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from connector.ledger import Ledger, open_ledger
from connector.mall.client import MallClient, RetryPolicy
from connector.mall.models import Order, StatusUpdate
from connector.sync.inbound import store_snapshot
from tests.conftest import TEST_CLIENT_ID

CENT = Decimal("0.01")


def dec(value) -> Decimal:
    """A number read back from a sheet (float) or the wire as an exact amount in cents."""
    return Decimal(str(value)).quantize(CENT)


class Mall:
    """Drives the sandbox like MALL and a partner would, and records what the daemon would record."""

    def __init__(self, sandbox, ledger: Ledger):
        self.sandbox = sandbox
        self.ledger = ledger
        self.client = MallClient(sandbox.url, TEST_CLIENT_ID, retry=RetryPolicy(max_attempts=1))
        self.operator = httpx.Client(base_url=sandbox.url)  # one client: building one per call costs ~0.1 s

    def create(self, count: int = 1, kind: str = "normal") -> list[int]:
        """New open orders, created through the operator endpoint."""
        r = self.operator.post("/_sandbox/orders", json={"count": count, "kind": kind})
        assert r.status_code == 201, r.text
        return [o["id"] for o in r.json()["orders"]]

    def create_currency(self, currency: str, kind: str = "normal", tries: int = 60) -> int:
        """A new open order in ``currency`` (the sandbox picks CZ or SK at random, seeded)."""
        for _ in range(tries):
            oid = self.create(1, kind)[0]
            if self.sandbox.state.get(oid)["currency"] == currency:
                return oid
        raise AssertionError(f"no {currency} order in {tries} tries")

    def put(self, oid: int, **fields) -> None:
        self.client.update_order(oid, StatusUpdate(**fields))

    def to_shipping(self, oid: int) -> None:
        self.put(oid, confirmed=True, status="shipping")

    def to_shipped(self, oid: int) -> None:
        if self.sandbox.state.get(oid)["status"] == "open":
            self.to_shipping(oid)
        self.put(oid, status="shipped", tracking_number=f"T{oid}", tracking_url=f"https://track.example/T{oid}")

    def to_delivered(self, oid: int, delivered_at: str) -> None:
        self.to_shipped(oid)
        self.put(oid, status="delivered", delivered_at=delivered_at, first_delivery_attempt=delivered_at)

    def mall_event(self, oid: int, action: str) -> None:
        r = self.operator.post(f"/_sandbox/orders/{oid}/events", json={"action": action})
        assert r.status_code == 200, r.text

    def record(self, *ids: int) -> list[Order]:
        """GET each order and store it, as the inbound worker does."""
        orders = [self.client.get_order(oid) for oid in ids]
        with self.ledger.write() as c:
            for o in orders:
                store_snapshot(self.ledger, c, o)
        return orders

    def wire(self, oid: int) -> dict:
        """The order as MALL has it now (for expected values computed independently of the exports)."""
        return self.sandbox.state.get(oid)


@pytest.fixture
def ledger(ledger_url):
    led = open_ledger(ledger_url.replace("ledger.db", "l.db"))  # SQLite and PostgreSQL (tests/support/pg.py)
    yield led
    led.close()


@pytest.fixture
def mall(sandbox, ledger) -> Mall:
    m = Mall(sandbox, ledger)
    yield m
    m.client.close()
    m.operator.close()


@pytest.fixture
def config_file(tmp_path: Path, sandbox) -> Path:
    """A config pointing at the sandbox and the test ledger."""
    (tmp_path / "feed.csv").write_text("mall_order_id,status\n", encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(
        f'[mall]\nclient_id = "{TEST_CLIENT_ID}"\nbase_url = "{sandbox.url}"\n\n'
        f'[ledger]\nurl = "sqlite:///{tmp_path / "l.db"}"\n\n'
        '[shop]\nadapter = "generic_csv"\n\n[shop.generic_csv]\nsource = "feed.csv"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def cli(config_file: Path):
    """Run `mall-connector --config <test config> ARGS...` in-process; returns click's Result."""
    from click.testing import CliRunner

    from connector.cli import main

    def run(*args: str):
        try:
            runner = CliRunner(mix_stderr=False)
        except TypeError:  # click >= 8.2 keeps stderr apart already
            runner = CliRunner()
        return runner.invoke(main, ["--config", str(config_file), *args], catch_exceptions=False)

    return run
