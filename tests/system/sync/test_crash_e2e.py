"""kill -9 at random moments of a `sync-once` pass, then rerun: nothing lost, nothing sent twice."""

from __future__ import annotations

import collections
import random
import signal
import time

import pytest

from connector.sandbox.faults import Faults
from tests.support.worlds import CsvShop, applied_status_puts, status_puts

pytestmark = pytest.mark.e2e


def _kill_runs(shop, delays, *args):
    """Start `sync-once` and SIGKILL it after each delay; returns how many were killed mid-pass."""
    killed = 0
    for delay in delays:
        proc = shop.popen("sync-once", *args)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.communicate(timeout=30)
    return killed


def test_sigkill_mid_push_pass_loses_nothing_and_sends_nothing_twice(tmp_path, make_sandbox):
    sandbox = make_sandbox(seed=3)
    shop = CsvShop(tmp_path, sandbox)
    ids = [o["id"] for o in sandbox.state.create_orders(40, kind="normal", status="open")]
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": f"TN{oid}",
                      "tracking_url": f"https://t/{oid}"} for oid in ids])
    sandbox.faults = Faults(seed=3, latency_ms=30, methods=("PUT", "GET"))
    rng = random.Random(20261126)
    killed = _kill_runs(shop, [rng.uniform(1.2, 2.5) for _ in range(4)], "--no-sweep")
    assert killed >= 2, "the passes ended before they could be killed: make the pass longer"
    sandbox.faults = Faults()
    final = shop.cli("sync-once", "--no-sweep", "--retry-now")
    assert final.returncode == 0, final.stdout + final.stderr
    for oid in ids:
        assert sandbox.state.get(oid)["status"] == "shipped"
        applied = applied_status_puts(sandbox, oid)
        assert len(applied) == 1, [(e.status_code, e.applied) for e in status_puts(sandbox, oid)]
        assert len(status_puts(sandbox, oid)) == 1  # not even a refused resend
    listed = shop.cli("ledger", "list")
    assert listed.stdout.strip() == "no changes waiting or needing attention"


def test_sigkill_mid_inbound_pass_hands_each_order_to_the_shop_once(tmp_path, make_sandbox):
    sandbox = make_sandbox(seed=4)
    shop = CsvShop(tmp_path, sandbox)
    ids = [o["id"] for o in sandbox.state.create_orders(40, kind="normal", status="open")]
    sandbox.faults = Faults(seed=4, latency_ms=30)
    rng = random.Random(4)
    killed = _kill_runs(shop, [rng.uniform(1.2, 2.5) for _ in range(4)])
    assert killed >= 2
    sandbox.faults = Faults()
    final = shop.cli("sync-once")
    assert final.returncode == 0, final.stdout + final.stderr
    rows_per_order = collections.Counter(int(r["mall_order_id"]) for r in shop.outbox_rows("orders-"))
    assert set(rows_per_order) == set(ids)
    for oid in ids:  # one row per item, each order in exactly one file
        assert rows_per_order[oid] == len(sandbox.state.get(oid)["items"]), oid
    files_per_order = collections.Counter()
    for f in shop.outbox.glob("orders-*.csv"):
        for oid in {int(line.split(",")[0]) for line in f.read_text(encoding="utf-8").splitlines()[1:] if line}:
            files_per_order[oid] += 1
    assert set(files_per_order.values()) == {1}, files_per_order
    assert not list(shop.outbox.glob(".*.tmp")), "a temp file was left behind"
    for oid in ids:
        assert sandbox.state.get(oid)["confirmed"] is True
