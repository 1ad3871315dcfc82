"""Shared fixtures: a real MALL sandbox on loopback for any test that needs MALL.

    def test_something(sandbox):
        sandbox.state.create_orders(2, kind="cod")
        client = MallClient(sandbox.url, TEST_CLIENT_ID)

``sandbox`` starts empty (no orders, no webhook URL, no faults) with webhooks every 0.1 s;
``make_sandbox(**kwargs)`` builds others (seeded orders, faults, webhook_url ...) and stops them after.
"""

from __future__ import annotations

import socket
from typing import Callable, Iterator

import pytest

from connector.sandbox.server import SandboxServer

TEST_CLIENT_ID = "test-client-id-0123456789"

# Fails any test during which a log line (ours or a subprocess's) carried the client_id or a token.
pytest_plugins = ["tests.support.logscan",
                  "tests.support.sinks",  # the smtp and hook fixtures: real loopback sinks
                  "tests.support.users",  # open_tmp, world_bin: parts of the connector run as other users
                  "tests.support.pg"]  # issue 18: ledger_backend / ledger_url / pg_url, one PostgreSQL cluster


@pytest.fixture(autouse=True)
def _isolated_secret_registry():
    """Secrets registered by one test (e.g. a password "wrong") must not mask words in another's messages."""
    from connector import logs

    saved = set(logs._secrets)
    yield
    with logs._lock:
        logs._secrets.clear()
        logs._secrets.update(saved)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for subprocesses that need a port up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Factory for started sandboxes; keyword arguments go to SandboxServer (client_id TEST_CLIENT_ID)."""
    started: list[SandboxServer] = []

    def make(**kwargs) -> SandboxServer:
        kwargs.setdefault("webhook_interval_s", 0.1)
        server = SandboxServer(kwargs.pop("client_id", TEST_CLIENT_ID), host="127.0.0.1", port=0, **kwargs)
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def sandbox(make_sandbox) -> SandboxServer:
    """A started, empty SandboxServer on a free loopback port (client_id TEST_CLIENT_ID, webhooks every 0.1 s)."""
    return make_sandbox()


# -- system tests ---------------------------------------------------------------------------------
#: The processes as they are deployed: daemon subprocesses, crashes and kill -9, database faults, chaos, the
#: demo, packaging, the service as the unit runs it, the unit file under systemd-analyze, real nginx, a real
#: browser. They live under tests/system/ (tests/README.md) and `make test-fast` leaves them out
#: (`-m "not system"`); elsewhere, mark one with @pytest.mark.system.
SYSTEM_TESTS = ("tests/system/",)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.split("::", 1)[0].startswith(SYSTEM_TESTS):
            item.add_marker(pytest.mark.system)
