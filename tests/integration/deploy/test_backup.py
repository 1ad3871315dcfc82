"""`ledger backup FILE` while the daemon runs, and a restore from that backup that carries on exactly once."""

from __future__ import annotations

import json
import os
import signal
import stat
import time

import httpx
import pytest

from tests.conftest import free_port
from tests.support.worlds import CsvShop

pytestmark = pytest.mark.e2e
TOKEN = "backup-token-Jm5Qw8Zr3Tx7Lp2Vn6Kd"  # >= 128 bits, not repetitive (issue 16 item 7)


def _wait(pred, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _orders(shop) -> dict:
    r = shop.cli("orders", "list", "--format", "json")
    assert r.returncode == 0, r.stderr
    return {o["order"]: o["status"] for o in json.loads(r.stdout)}


def test_backup_while_running_then_restore(tmp_path, sandbox):
    port = free_port()
    shop = CsvShop(tmp_path, sandbox, receiver_listen=f"127.0.0.1:{port}", tokens=[TOKEN],
                   sync="poll_interval_s = 1\ndrain_interval_s = 1\nsweep_interval_s = 30\n")
    sandbox.webhook_url = f"http://127.0.0.1:{port}/webhooks/mall/{TOKEN}"
    ids = [o["id"] for o in sandbox.state.create_orders(3, status="open")]
    proc = shop.popen("run")
    try:
        _wait(lambda: all(sandbox.state.get(i)["confirmed"] for i in ids), "three confirmed orders")
        backup = tmp_path / "backup.db"
        r = shop.cli("ledger", "backup", str(backup))  # while the daemon runs
        assert r.returncode == 0, r.stderr
        assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
        assert shop.cli("ledger", "backup", str(backup)).returncode != 0  # never overwrites
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    before = _orders(shop)
    assert set(before) == set(ids)

    # Restore: the ledger is lost; the backup goes in its place; the service goes on without re-handing anything.
    ledger = tmp_path / "ledger.db"
    for suffix in ("", "-wal", "-shm"):
        p = tmp_path / f"ledger.db{suffix}"
        if p.exists():
            p.unlink()
    os.replace(backup, ledger)
    assert _orders(shop) == before
    handed = sorted(p.name for p in shop.outbox.iterdir())
    puts = len(sandbox.request_log.puts())
    r = shop.cli("sync-once")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in shop.outbox.iterdir()) == handed  # nothing handed twice
    assert len(sandbox.request_log.puts()) == puts  # nothing confirmed twice
