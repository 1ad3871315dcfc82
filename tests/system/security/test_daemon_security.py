"""Security checks against the real daemon (`mall-connector --log-level debug run`) over real HTTP.

* More than 30 wrong-token requests a minute from one address get 429 until the minute has passed, the valid
  token from that address included (issue 16 item 7); other addresses are not throttled.
* Through a whole working session at DEBUG (webhooks in, a bad body, pushes, 5xx, dropped connections and a
  401 from MALL), the client_id and the webhook token never appear in the daemon's output.
* The daemon warns when the config file holding a secret is readable by others (0644), not when it is 0640.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from connector.sandbox.faults import Faults
from connector.sandbox.server import SandboxServer
from tests.conftest import TEST_CLIENT_ID, free_port
from tests.support.worlds import CsvShop, applied_status_puts

pytestmark = pytest.mark.e2e

TOKEN = "sec-token-" + "R4nd0mXq7Lz2Wv9Kp3"  # >= 128 bits, not repetitive (issue 16 item 7)
FAST = "poll_interval_s = 1\ndrain_interval_s = 1\nsweep_interval_s = 2\n"
LIMIT = 30  # [receiver] wrong_token_limit_per_minute, the default


def _wait(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Daemon:
    """The real daemon as a subprocess, its whole output in a file."""

    def __init__(self, shop: CsvShop, *args: str, env: dict | None = None):
        self.log = shop.folder / f"daemon-{time.monotonic_ns()}.log"
        self._fh = open(self.log, "w", encoding="utf-8")
        self.proc = subprocess.Popen([sys.executable, "-m", "connector", "--config", str(shop.config_path), *args,
                                      "run"], stdout=self._fh, stderr=subprocess.STDOUT, cwd=shop.folder, env=env)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self._fh.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Sandbox + CSV shop + the daemon at DEBUG with a 0640 config, the sandbox's webhooks going to it."""
    folder = tmp_path_factory.mktemp("security")
    port = free_port()
    with SandboxServer(TEST_CLIENT_ID, seed=5, webhook_interval_s=0.2) as sandbox:
        shop = CsvShop(folder, sandbox, receiver_listen=f"127.0.0.1:{port}", tokens=[TOKEN], sync=FAST)
        os.chmod(shop.config_path, 0o640)
        sandbox.webhook_url = f"http://127.0.0.1:{port}/webhooks/mall/{TOKEN}"
        daemon = Daemon(shop, "--log-level", "debug")
        base = f"http://127.0.0.1:{port}"

        def up():
            try:
                return httpx.get(base + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(up, what="the receiver")
        yield sandbox, shop, daemon, base
        daemon.stop()


def _traffic(sandbox, shop, base):
    """A working session that goes through every path that could log a secret."""
    ids = [o["id"] for o in sandbox.state.create_orders(4, status="open")]  # webhooks in → GET → outbox → PUT
    _wait(lambda: all(sandbox.state.get(oid)["confirmed"] for oid in ids), what="orders handed and confirmed")
    assert httpx.post(f"{base}/webhooks/mall/{TOKEN}", content=b'{"not": "a list"}').status_code == 400
    sandbox.faults = Faults(error_rate=1.0)  # MALL answers 500 for a while
    shop.write_feed([{"mall_order_id": ids[0], "status": "packing"}])
    _wait(lambda: sandbox.request_log.faults("5xx"), what="a 5xx")
    sandbox.faults = Faults(drop_rate=1.0)  # then drops connections
    _wait(lambda: sandbox.request_log.faults("drop"), what="a dropped connection")
    real = sandbox._client_id
    sandbox.faults = Faults()
    sandbox._client_id = b"someone-else-entirely"  # then says the client_id is wrong (401)
    shop.write_feed([{"mall_order_id": ids[0], "status": "packing"}, {"mall_order_id": ids[1], "status": "packing"}])
    _wait(lambda: sandbox.request_log.find(status_code=401), what="a 401")
    time.sleep(1.5)
    sandbox._client_id = real
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": f"T{oid}",
                      "tracking_url": f"https://t.example/{oid}"} for oid in ids])
    _wait(lambda: all(sandbox.state.get(oid)["status"] == "shipped" for oid in ids), what="pushes")
    sandbox.state.mall_event(sandbox.state.create_orders(1, status="open")[0]["id"], "customer_cancel")
    return ids


def test_wrong_tokens_get_429_for_the_rest_of_the_minute_valid_ones_never(stack):
    """Issue 16 item 7: while an address is throttled, everything from it gets 429, the right token
    included; another address (here the sandbox, sending its real webhooks from 127.0.0.1) is unaffected."""
    sandbox, shop, daemon, base = stack
    wrong = f"{base}/webhooks/mall/{TOKEN[:-1]}X"
    valid = f"{base}/webhooks/mall/{TOKEN}"
    guesser = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(timeout=5, transport=guesser) as http, httpx.Client(timeout=5) as other:
        t0 = time.monotonic()
        codes = [http.post(wrong, content=b"[1]").status_code for _ in range(LIMIT)]
        assert codes == [404] * LIMIT
        over = http.post(wrong, content=b"[1]")
        assert over.status_code == 429 and 1 <= int(over.headers["Retry-After"]) <= 60
        assert http.post(valid, content=b"[1]").status_code == 429, "a throttled address learnt a right guess"
        assert http.post(wrong + "Y", content=b"[1]").status_code == 429, "any wrong token from the address"
        assert other.post(valid, content=b"[1]").status_code == 202, "another address was throttled"
        _traffic(sandbox, shop, base)  # the minute goes by with real work (and the sandbox's valid webhooks)
        assert applied_status_puts(sandbox)
        assert time.monotonic() - t0 < 58, "the traffic took the whole minute; the check below needs some left"
        assert http.post(wrong, content=b"[1]").status_code == 429, "still within the minute"
        assert http.post(valid, content=b"[2]").status_code == 429, "still within the minute, right token too"
        assert other.post(valid, content=b"[2]").status_code == 202
        time.sleep(max(0.0, t0 + 61 - time.monotonic()))
        assert http.post(wrong, content=b"[1]").status_code == 404, "the minute has passed"
        assert http.post(valid, content=b"[3]").status_code == 202
    assert "more than 30 wrong tokens in a minute" in daemon.text()


def test_debug_output_never_carries_the_client_id_or_the_token(stack):
    sandbox, shop, daemon, base = stack
    if not applied_status_puts(sandbox):  # run alone: do the working session here
        _traffic(sandbox, shop, base)
    time.sleep(1.0)
    text = daemon.text()
    # Not vacuous: DEBUG is on and every risky path was taken.
    for seen in ("DEBUG", "401", "500", "rejected (400)", "webhook: order ids", "push shipping → shipped"):
        assert seen in text, f"{seen!r} not in the daemon's output"
    assert TEST_CLIENT_ID not in text
    assert TOKEN not in text and TOKEN[:-1] not in text
    assert "client_id=" not in text.replace("client_id=***", "")


def _start_and_stop(tmp_path: Path, sandbox, mode: int, *, secret_in_file: bool = True) -> str:
    port = free_port()
    shop = CsvShop(tmp_path, sandbox, receiver_listen=f"127.0.0.1:{port}")
    env = dict(os.environ)
    if not secret_in_file:
        text = shop.config_path.read_text(encoding="utf-8")
        shop.config_path.write_text("\n".join(ln for ln in text.splitlines() if not ln.startswith("client_id")) + "\n",
                                    encoding="utf-8")
        env["MALL_CLIENT_ID"] = TEST_CLIENT_ID
    os.chmod(shop.config_path, mode)
    daemon = Daemon(shop, env=env)
    _wait(lambda: "mall-connector running" in daemon.text(), what="the daemon to start")
    assert daemon.stop() == 0
    return daemon.text()


@pytest.mark.parametrize("mode, warned", [(0o644, True), (0o604, True), (0o640, False), (0o600, False)])
def test_the_daemon_warns_when_the_config_with_a_secret_is_readable_by_others(tmp_path, sandbox, mode, warned):
    out = _start_and_stop(tmp_path, sandbox, mode)
    line = f"{tmp_path / 'config.toml'} holds a secret and is readable by other users: run chmod 0640"
    assert (line in out) is warned, out
    assert TEST_CLIENT_ID not in out


def test_no_warning_for_a_readable_config_without_secrets(tmp_path, sandbox):
    out = _start_and_stop(tmp_path, sandbox, 0o644, secret_in_file=False)
    assert "readable by other users" not in out, out
