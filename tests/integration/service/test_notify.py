"""The systemd notify client against real AF_UNIX datagram sockets."""

from __future__ import annotations

import os
import re
import socket
import uuid

import pytest

from connector import notify


@pytest.fixture
def listener(tmp_path, monkeypatch):
    """A bound datagram socket standing in for systemd, with $NOTIFY_SOCKET pointing at it."""
    path = tmp_path / "n.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    yield sock
    sock.close()


def nothing_received(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        sock.recv(4096)
    except (TimeoutError, socket.timeout):
        return True
    return False


def test_states_reach_the_socket(listener):
    assert notify.ready() is True
    assert listener.recv(4096) == b"READY=1"
    assert notify.watchdog() is True
    assert listener.recv(4096) == b"WATCHDOG=1"
    assert notify.status("synced 12 orders,\n0 failed") is True
    assert listener.recv(4096) == b"STATUS=synced 12 orders, 0 failed"
    assert notify.stopping() is True
    assert listener.recv(4096) == b"STOPPING=1"
    assert notify.notify("EXTEND_TIMEOUT_USEC=5000000") is True
    assert listener.recv(4096) == b"EXTEND_TIMEOUT_USEC=5000000"


def test_reloading_carries_a_monotonic_timestamp(listener):
    assert notify.reloading() is True
    msg = listener.recv(4096).decode()
    m = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", msg)
    assert m, msg
    now_usec = __import__("time").clock_gettime_ns(__import__("time").CLOCK_MONOTONIC) // 1000
    assert 0 < now_usec - int(m.group(1)) < 5_000_000


def test_abstract_socket(monkeypatch):
    name = f"mall-connector-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.ready() is True
        assert sock.recv(4096) == b"READY=1"


def test_no_op_outside_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.notify("READY=1") is False
    assert notify.ready() is False and notify.watchdog() is False and notify.stopping() is False


def test_socket_errors_never_raise(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    assert notify.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")  # a form we do not speak
    assert notify.ready() is False


def test_watchdog_interval(monkeypatch):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert notify.watchdog_interval_s() is None
    monkeypatch.setenv("WATCHDOG_USEC", "120000000")
    assert notify.watchdog_interval_s() == 120.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert notify.watchdog_interval_s() == 120.0
    for bad in ("0", "-5", "soon", ""):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert notify.watchdog_interval_s() is None


def test_watchdog_meant_for_another_process_is_left_alone(listener, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "120000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert notify.watchdog_interval_s() is None
    assert notify.watchdog() is False
    assert nothing_received(listener)
    assert notify.ready() is True  # only the watchdog is someone else's
    listener.settimeout(2)
    assert listener.recv(4096) == b"READY=1"
