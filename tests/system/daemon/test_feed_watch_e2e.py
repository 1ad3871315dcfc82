"""React in seconds (issue 17 item 3): the daemon watches a file feed with inotify. The poll interval is an hour,
so only the watcher can explain a PUT that arrives after the feed was renamed into place; the test waits with a
generous deadline and asserts that the PUT arrived, never how fast."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import free_port
from tests.support.worlds import FEED_COLUMNS, CsvShop, applied_status_puts

pytestmark = pytest.mark.e2e
SLOW_POLL = "poll_interval_s = 3600\ndrain_interval_s = 1\nsweep_interval_s = 3600\n"


def _wait(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _polled_once(port: int) -> bool:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    except httpx.HTTPError:
        return False
    return bool(r.json().get("checks", {}).get("recent_jobs", {}).get("poll"))


def _rename_into_place(shop: CsvShop, rows: list[dict]) -> None:
    """As a shop does it: a temp file in the same folder, then a rename; the mtime is now (not settled yet)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FEED_COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    tmp = shop.feed.with_name(".shop.csv.part")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, shop.feed)


@pytest.fixture
def daemon(tmp_path, sandbox):
    port = free_port()
    shop = CsvShop(tmp_path, sandbox, receiver_listen=f"127.0.0.1:{port}", sync=SLOW_POLL)
    text = shop.config_path.read_text(encoding="utf-8").replace("settle_s = 0", "settle_s = 1")
    shop.config_path.write_text(text, encoding="utf-8")
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "connector", "--config", str(shop.config_path), "run"],
                                stdout=log, stderr=log, cwd=tmp_path)
    try:
        _wait(lambda: _polled_once(port), what="the first scheduled poll")
        _wait(lambda: "watching shop feed" in log_path.read_text(encoding="utf-8"), what="the watcher")
        yield shop, proc, log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(45)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_renamed_feed_is_pushed_without_waiting_for_the_poll(daemon, sandbox):
    shop, proc, log_path = daemon
    first, second = [o["id"] for o in sandbox.state.create_orders(2, status="open")]
    assert applied_status_puts(sandbox) == []
    _rename_into_place(shop, [{"mall_order_id": first, "status": "shipped", "tracking_number": "T1",
                               "tracking_url": "https://t/1"}])
    _wait(lambda: len(applied_status_puts(sandbox, first)) == 1, what="the PUT of the first change")
    # A second change is seen too (the watch survives the rename that replaced the file's inode).
    _rename_into_place(shop, [{"mall_order_id": first, "status": "shipped", "tracking_number": "T1",
                               "tracking_url": "https://t/1"},
                              {"mall_order_id": second, "status": "shipped", "tracking_number": "T2",
                               "tracking_url": "https://t/2"}])
    _wait(lambda: len(applied_status_puts(sandbox, second)) == 1, what="the PUT of the second change")
    assert len(applied_status_puts(sandbox, first)) == 1  # exactly once
    assert proc.poll() is None
    text = log_path.read_text(encoding="utf-8")
    assert "is not watched" not in text and "Traceback" not in text
