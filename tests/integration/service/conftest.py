"""The service tests' ledger and hand-moved clock (the SMTP and webhook sinks: tests/support/sinks.py)."""

from __future__ import annotations

import pytest

from connector.ledger import open_ledger
from tests.support.sinks import FakeClock


@pytest.fixture
def ledger(tmp_path):
    led = open_ledger("sqlite:///" + str(tmp_path / "l.db"))
    yield led
    led.close()


@pytest.fixture
def clock():
    return FakeClock()
