"""Shared fixtures: a real ledger per test, the real app, and the app under waitress on loopback."""

from __future__ import annotations

import httpx
import pytest

from connector.ledger.repo import open_ledger
from connector.metrics import Metrics
from receiver.app import create_app
from receiver.server import ReceiverServer

TOKEN = "Tok3n-Alpha-9f8e7d6c5b4a"
TOKEN2 = "Tok3n-Bravo-0a1b2c3d4e5f"
HOOK = "/webhooks/mall/" + TOKEN


class FakeClock:
    """Monotonic clock the throttle tests move by hand, so nothing waits a minute."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def inbox(ledger) -> list[int]:
    return sorted(ledger.inbox.due(100_000))


@pytest.fixture
def ledger(tmp_path):
    led = open_ledger("sqlite:///" + str(tmp_path / "ledger.db"))
    yield led
    led.close()


@pytest.fixture
def metrics():
    return Metrics()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def make_app(ledger, metrics, clock):
    def _make(**kw):
        args = dict(ledger=ledger, tokens=[TOKEN], metrics=metrics, clock=clock, instance_id="test-instance")
        args.update(kw)
        return create_app(**args)

    return _make


@pytest.fixture
def client(make_app):
    return make_app().test_client()


@pytest.fixture
def serve():
    """Start apps under waitress on a free loopback port; every server is stopped at the end."""
    servers = []

    def _serve(app, **kw) -> ReceiverServer:
        srv = ReceiverServer(app, "127.0.0.1", 0, **kw)
        srv.start()
        servers.append(srv)
        return srv

    yield _serve
    for srv in servers:
        srv.stop(timeout=5)


@pytest.fixture
def server(make_app, serve):
    return serve(make_app())


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c
