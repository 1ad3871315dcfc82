"""issue 18: the sandbox of several MALL accounts behind one API address (connector/sandbox/front.py) and
`mall-connector sandbox --accounts N`, over real HTTP on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from connector.sandbox.front import AccountsSandbox

pytestmark = pytest.mark.e2e


def _ids(front_url: str, client_id: str) -> tuple[int, set[int]]:
    r = httpx.get(f"{front_url}/v1/orders", params={"client_id": client_id, "filter": "basic"}, timeout=10)
    return r.status_code, ({o["id"] for o in r.json()["data"]} if r.status_code == 200 else set())


def test_each_client_id_reaches_its_own_sandbox_and_an_unknown_one_gets_401():
    with AccountsSandbox(["acct-one-7f3a9c", "acct-two-1e5b8d"]) as world:
        one, two = world.sandboxes.values()
        a = {o["id"] for o in one.state.create_orders(2, kind="normal", status="open")}
        b = {o["id"] for o in two.state.create_orders(3, kind="normal", status="open")}
        assert not a & b  # MALL's order ids are global: two accounts never share one
        assert _ids(world.url, "acct-one-7f3a9c") == (200, a)
        assert _ids(world.url, "acct-two-1e5b8d") == (200, b)
        status, _ = _ids(world.url, "acct-three-000000")
        assert status == 401
        assert world.front.routed == {"acct-one-7f3a9c": 1, "acct-two-1e5b8d": 1}
        assert len(one.request_log.find("GET", "/v1/orders")) == 1
        assert len(two.request_log.find("GET", "/v1/orders")) == 1


def test_sandbox_accounts_command_serves_and_prints_the_accounts(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALL_")}
    proc = subprocess.Popen([sys.executable, "-m", "connector", "sandbox", "--accounts", "2", "--orders", "3",
                             "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        lines = []
        while not lines or not lines[-1].startswith("Press Ctrl+C"):
            line = proc.stdout.readline()
            assert line, f"exited {proc.poll()}: {proc.stderr.read()}"
            lines.append(line.rstrip("\n"))
        out = "\n".join(lines)
        assert f"listening on http://127.0.0.1:{port}" in out
        assert '[accounts.a002]\nclient_id = "sandbox-a002"' in out
        front = f"http://127.0.0.1:{port}"
        boxes = {line.split()[0]: line.split()[1].removesuffix("/_sandbox") for line in lines
                 if line.startswith("  sandbox-a")}
        assert list(boxes) == ["sandbox-a001", "sandbox-a002"]
        status, ids = _ids(front, "sandbox-a002")
        assert status == 200 and ids  # the front answers with the account's own sandbox's orders
        assert (status, ids) == _ids(boxes["sandbox-a002"], "sandbox-a002")
        assert _ids(front, "sandbox-a001")[1].isdisjoint(ids)
        assert _ids(front, "sandbox-a003")[0] == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "sandbox stopped" in rest


def test_sandbox_accounts_refuses_options_it_does_not_apply():
    r = subprocess.run([sys.executable, "-m", "connector", "sandbox", "--accounts", "2", "--error-rate", "0.5"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--accounts does not combine with --error-rate" in r.stderr
    assert "Traceback" not in r.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
