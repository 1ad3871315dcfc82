"""Shop → MALL end to end: a CSV shop, the real ledger, the sandbox over real HTTP."""

from __future__ import annotations

import json

import pytest

from connector.sandbox.faults import Faults
from connector.sync.runner import Services, sync_once
from tests.support.worlds import CsvShop, applied_status_puts, status_puts

pytestmark = pytest.mark.e2e


@pytest.fixture
def shop(tmp_path, sandbox):
    return CsvShop(tmp_path, sandbox)


def _open_orders(sandbox, n, kind="normal"):
    return [o["id"] for o in sandbox.state.create_orders(n, kind=kind, status="open")]


def _run(shop, **kw):
    services = Services(shop.config())
    try:
        return sync_once(services, **kw), services
    finally:
        services.close()


def test_shipped_with_tracking_is_one_put_with_confirm_status_and_tracking(shop, sandbox):
    (oid,) = _open_orders(sandbox, 1)
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "PPL123456",
                      "tracking_url": "https://track.example/PPL123456"}])
    summary, _ = _run(shop, sweep=False)
    assert summary.push.pushed == 1 and summary.exit_code == 0
    puts = sandbox.request_log.puts(oid)
    assert len(puts) == 1
    assert puts[0].body == {"confirmed": True, "status": "shipped", "tracking_number": "PPL123456",
                            "tracking_url": "https://track.example/PPL123456"}
    assert sandbox.state.get(oid)["status"] == "shipped"
    # The same feed again: nothing new is sent.
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "PPL123456",
                      "tracking_url": "https://track.example/PPL123456"}])
    _run(shop, sweep=False)
    assert len(sandbox.request_log.puts(oid)) == 1


def test_tracking_url_built_from_the_carrier(shop, sandbox):
    (oid,) = _open_orders(sandbox, 1)
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "12345678", "carrier": "PPL"}])
    _run(shop, sweep=False)
    (put,) = sandbox.request_log.puts(oid)
    assert put.body["tracking_number"] == "12345678" and "12345678" in put.body["tracking_url"]


def test_unmapped_status_is_not_sent_and_is_listed(shop, sandbox):
    (oid,) = _open_orders(sandbox, 1)
    shop.write_feed([{"mall_order_id": oid, "status": "Čeká na sklad"}])
    summary, _ = _run(shop, sweep=False)
    assert summary.poll.unmapped == 1
    assert sandbox.request_log.puts(oid) == []
    listed = shop.cli("ledger", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["mall_order_id"] for r in rows] == [oid]
    assert rows[0]["state"] == "skipped" and "unmapped shop status 'Čeká na sklad'" in rows[0]["reason"]


def test_illegal_transition_is_skipped_with_reason(shop, sandbox):
    (oid,) = _open_orders(sandbox, 1)
    sandbox.state.mall_event(oid, "customer_cancel")
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "T1", "tracking_url": "https://t/1"}])
    summary, _ = _run(shop, sweep=False)
    assert summary.push.skipped == 1 and summary.exit_code == 0
    assert sandbox.request_log.puts(oid) == []
    out = shop.cli("ledger", "list", "--state", "skipped", "--format", "json")
    (row,) = json.loads(out.stdout)
    assert "not allowed" in row["reason"] and "cancelled" in row["reason"]


def test_shipped_without_tracking_fails_clearly_without_a_put(shop, sandbox):
    (oid,) = _open_orders(sandbox, 1)
    shop.write_feed([{"mall_order_id": oid, "status": "shipped"}])
    summary, _ = _run(shop, sweep=False)
    assert summary.push.failed == 1 and summary.exit_code == 2
    assert sandbox.request_log.puts(oid) == []
    out = shop.cli("ledger", "list", "--state", "failed", "--format", "json")
    (row,) = json.loads(out.stdout)
    assert "tracking number" in row["reason"]
    # The shop adds the tracking number: the failed change gets another go and lands once.
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "T9", "tracking_url": "https://t/9"}])
    summary, _ = _run(shop, sweep=False)
    assert summary.push.pushed == 1 and summary.exit_code == 0
    assert len(applied_status_puts(sandbox, oid)) == 1


def test_bad_rows_reported_with_line_numbers_while_good_rows_sync(shop, sandbox):
    a, b = _open_orders(sandbox, 2)
    shop.feed.write_text(
        "mall_order_id,status,tracking_number,tracking_url\n"
        f"{a},packing,,\n"
        "abc,packing,,\n"
        ",packing,,\n"
        f"{b},packing,,\n",
        encoding="utf-8",
    )
    result = shop.cli("sync-once", "--no-sweep")
    assert result.returncode == 0, result.stderr
    assert "shop.csv:3" in result.stdout + result.stderr and "shop.csv:4" in result.stdout + result.stderr
    assert sandbox.state.get(a)["status"] == "shipping" and sandbox.state.get(b)["status"] == "shipping"


def test_mdp_order_shipped_is_skipped(shop, sandbox):
    (oid,) = _open_orders(sandbox, 1, kind="mdp")
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "T1", "tracking_url": "https://t/1"}])
    summary, _ = _run(shop, sweep=False)
    assert summary.push.skipped == 1
    assert sandbox.request_log.puts(oid) == []
    out = json.loads(shop.cli("ledger", "list", "--format", "json").stdout)
    assert out[0]["reason"] == "MALL Delivery: MALL sets it from the carrier"


def test_faults_every_change_lands_and_each_put_is_applied_once(shop, sandbox):
    """30 % 5xx (half of them after applying: an ambiguous outcome) plus 429s: all changes land once."""
    ids = _open_orders(sandbox, 30)
    sandbox.faults = Faults(seed=7, error_rate=0.15, error_after_apply_rate=0.15, rate_limit_rate=0.1,
                            rate_limit_reset_s=0)
    rows = [{"mall_order_id": oid, "status": "shipped" if i % 2 else "packing", "tracking_number": f"T{i}",
             "tracking_url": f"https://t/{i}"} for i, oid in enumerate(ids)]
    shop.write_feed(rows)
    for _ in range(40):
        summary, _ = _run(shop, retry_now=True, sweep=False)
        if summary.waiting_retry == 0:
            break
    assert summary.failed_total == 0 and summary.waiting_retry == 0
    assert sandbox.request_log.faults("5xx") and sandbox.request_log.faults("5xx_after_apply")
    assert sandbox.request_log.faults("429")
    for i, oid in enumerate(ids):
        want = "shipped" if i % 2 else "shipping"
        assert sandbox.state.get(oid)["status"] == want
        applied = applied_status_puts(sandbox, oid)
        assert len(applied) == 1, (oid, [(e.status_code, e.fault) for e in status_puts(sandbox, oid)])
        # Nothing was sent for this order after the PUT that took effect.
        assert all(e.seq <= applied[0].seq for e in status_puts(sandbox, oid))
