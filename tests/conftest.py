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
pytest_plugins = ["tests.security.logscan",
                  "tests.pg.plugin"]  # issue 18: ledger_backend / ledger_url / pg_url, one PostgreSQL cluster


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
#: Daemon subprocesses, crashes and kill -9, database faults, chaos, the demo, packaging and the unit file:
#: `make test-fast` leaves them out (`-m "not system"`). Mark a new one with @pytest.mark.system, or list its
#: folder or file here.
SYSTEM_TESTS = (
    "tests/chaos/", "tests/daemon/", "tests/demo/", "tests/packaging/", "tests/dbfaults/",
    "tests/security/test_daemon_security.py", "tests/sync/test_crash_e2e.py", "tests/service/test_unit_file.py",
    # issue 16: the daemon as a subprocess, real nginx, the unit file under systemd-analyze
    "tests/security/test_daemon_receiver_limits.py", "tests/security/test_nginx_e2e.py",
    "tests/security/test_unit_hardening.py",
    # issue 19: the daemon as a subprocess with the Shoptet / WooCommerce simulators
    "tests/shops/test_daemon_",
    # issue 18: replicas on one PostgreSQL server, the server stopped mid-pass
    "tests/replicas/", "tests/pg/test_server_restart.py",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.split("::", 1)[0].startswith(SYSTEM_TESTS):
            item.add_marker(pytest.mark.system)
