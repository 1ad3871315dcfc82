"""The real daemon (`mall-connector run`) as a subprocess against the sandbox."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import threading
import time

import httpx
import pytest

from connector.sandbox.faults import Faults
from tests.conftest import free_port
from tests.support.worlds import CsvShop, applied_status_puts, status_puts

pytestmark = pytest.mark.e2e
TOKEN = "daemon-token-" + "Zq8rT2wXc5Vb9NmK4pLs"  # >= 128 bits, not repetitive (issue 16 item 7)
FAST = "poll_interval_s = 1\ndrain_interval_s = 1\nsweep_interval_s = 30\n"


def _wait(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc, sig=signal.SIGTERM, timeout=45):
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture
def shop(tmp_path, sandbox):
    port = free_port()
    s = CsvShop(tmp_path, sandbox, receiver_listen=f"127.0.0.1:{port}", tokens=[TOKEN], sync=FAST)
    s.port = port
    sandbox.webhook_url = f"http://127.0.0.1:{port}/webhooks/mall/{TOKEN}"
    return s


def _ready(shop):
    try:
        return httpx.get(f"http://127.0.0.1:{shop.port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_sigterm_mid_work_loses_nothing_and_restart_finishes_exactly_once(shop, sandbox):
    ids = [o["id"] for o in sandbox.state.create_orders(30, status="open")]
    sandbox.faults = Faults(latency_ms=60, methods=("PUT",))
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": f"T{oid}",
                      "tracking_url": f"https://t/{oid}"} for oid in ids])
    proc = shop.popen("run")
    _wait(lambda: len(applied_status_puts(sandbox)) >= 3, what="some pushes")
    rc, _, err = _stop(proc)
    assert rc == 0, err
    assert "stopping" in err and "stopped" in err
    done_before = len(applied_status_puts(sandbox))
    assert done_before < len(ids), "the pass finished before SIGTERM; make it longer"
    sandbox.faults = Faults()
    proc = shop.popen("run")
    _wait(lambda: all(sandbox.state.get(oid)["status"] == "shipped" for oid in ids), what="all shipped")
    rc, _, err = _stop(proc)
    assert rc == 0, err
    for oid in ids:
        assert len(status_puts(sandbox, oid)) == 1


def test_sighup_with_a_broken_mapping_keeps_the_old_one(shop, sandbox, tmp_path):
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[to_mall]\n"balíme" = "shipping"\n[ignore]\nstatuses = ["nová"]\n', encoding="utf-8")
    with shop.config_path.open("a", encoding="utf-8") as f:
        f.write("")
    text = shop.config_path.read_text(encoding="utf-8").replace('[shop]\nadapter = "generic_csv"\n',
                                                                  '[shop]\nadapter = "generic_csv"\nmapping = "mapping.toml"\n')
    shop.config_path.write_text(text, encoding="utf-8")
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    proc = shop.popen("run")
    _wait(lambda: _ready(shop), what="receiver up")
    mapping.write_text('[to_mall]\n"balíme" = "shiped"\n', encoding="utf-8")  # a typo
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    shop.write_feed([{"mall_order_id": oid, "status": "balíme"}])
    _wait(lambda: sandbox.state.get(oid)["status"] == "shipping", what="push with the old mapping")
    rc, _, err = _stop(proc)
    assert rc == 0
    assert "reload refused" in err and "'shiped' is not a MALL status" in err


def test_systemd_notify_ready_watchdog_stopping(shop, tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.5)
    got: list[str] = []

    def listen():
        while True:
            try:
                got.append(sock.recv(4096).decode())
            except socket.timeout:
                continue
            except OSError:
                return

    threading.Thread(target=listen, daemon=True).start()
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="2000000")
    proc = shop.popen("run", env=env)
    _wait(lambda: any("READY=1" in m for m in got), what="READY=1")
    _wait(lambda: sum("WATCHDOG=1" in m for m in got) >= 2, what="two watchdog pings")
    rc, _, err = _stop(proc)
    sock.close()
    assert rc == 0, err
    assert any("STOPPING=1" in m for m in got)


class _AlertSink(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_a_failed_change_is_alerted_once_not_per_poll(shop, sandbox):
    _AlertSink.received = []
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AlertSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    with shop.config_path.open("a", encoding="utf-8") as f:
        # digest_s = 1: alerts come as a digest (issue 14); the default 300 s would outlast the test.
        f.write(f'[alerts]\nwebhook_url = "http://127.0.0.1:{sink.server_port}/hook"\ndigest_s = 1\n')
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    shop.write_feed([{"mall_order_id": oid, "status": "shipped"}])  # no tracking: fails
    proc = shop.popen("run")
    _wait(lambda: any("failed" in m.get("text", "") for m in _AlertSink.received), what="the alert")
    time.sleep(4)  # several more polls
    rc, _, err = _stop(proc)
    sink.shutdown()
    assert rc == 0, err
    failed_alerts = [m for m in _AlertSink.received if str(oid) in m.get("text", "") and "failed" in m["text"]]
    assert len(failed_alerts) == 1, _AlertSink.received
    assert "tracking number" in failed_alerts[0]["text"]


def test_check_fails_on_a_wrong_client_id_with_a_clear_line(shop, sandbox):
    text = shop.config_path.read_text(encoding="utf-8").replace('client_id = "test-client-id', 'client_id = "wrong-client-id')
    shop.config_path.write_text(text, encoding="utf-8")
    result = shop.cli("check")
    assert result.returncode == 1
    assert "✗ MALL rejects the client_id (401)" in result.stdout
    assert "wrong-client-id" not in result.stdout + result.stderr


def test_check_passes_on_a_good_setup(shop, sandbox):
    result = shop.cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ MALL at" in result.stdout and "– [receiver] public_url is not set" in result.stdout


def test_run_with_a_broken_config_exits_78(shop):
    shop.config_path.write_text("[sync]\npoll_interval_s = -1\n", encoding="utf-8")
    proc = shop.popen("run")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 78
    assert "sync.poll_interval_s" in err and "Traceback" not in err
