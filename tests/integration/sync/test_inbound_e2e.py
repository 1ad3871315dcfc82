"""MALL → shop end to end: the sandbox sends real webhooks to the real receiver (waitress) on loopback."""

from __future__ import annotations

import collections
import os
import time

import httpx
import pytest

from adapters.base import HandoffError
from connector.metrics import Metrics
from connector.sandbox.faults import Faults
from connector.sync.runner import Services, sync_once
from receiver.app import create_app
from receiver.server import ReceiverServer
from tests.support.worlds import CsvShop

pytestmark = pytest.mark.e2e
TOKEN = "tok-" + "Hy7Ud3Kp9Wm2Qx6Rb4Tn8Vc5Ze1Ls0Ag"  # >= 128 bits, not repetitive (issue 16 item 7)


@pytest.fixture
def wired(tmp_path, sandbox):
    """Shop + services + receiver under waitress; the sandbox's webhooks point at the receiver."""
    shop = CsvShop(tmp_path, sandbox, tokens=[TOKEN])
    services = Services(shop.config(), metrics=Metrics())
    server = ReceiverServer(create_app(ledger=services.ledger, tokens=[TOKEN], metrics=services.metrics),
                            "127.0.0.1", 0)
    server.start()
    sandbox.webhook_url = f"http://127.0.0.1:{server.port}/webhooks/mall/{TOKEN}"
    yield shop, services, server
    server.stop()
    services.close()


def _wait_for_inbox(sandbox, services, n, timeout=10.0):
    """Send MALL's pending webhook batch now, then wait until the receiver has queued ``n`` ids.

    Flushing first means no batch can arrive after the test starts processing (which would
    legitimately cause a second GET and make the counts below depend on timing)."""
    sandbox.flush_webhooks()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if services.ledger.inbox.depth() >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"inbox has {services.ledger.inbox.depth()} ids, expected {n}")


READS_PER_NEW_ORDER = 1  # issue 17: read on arrival only; no re-read before confirming, none on the next pass


def _first_confirm_seq(sandbox, oid):
    return min(e.seq for e in sandbox.request_log.puts(oid) if e.body == {"confirmed": True})


def _gets(sandbox, oid):
    return sandbox.request_log.find("GET", f"/v1/orders/{oid}")


def test_webhooks_bring_new_orders_to_the_shop_then_confirm(wired, sandbox):
    shop, services, _ = wired
    blocked = sandbox.state.create_orders(1, kind="normal", status="blocked")[0]["id"]
    ids = [o["id"] for o in sandbox.state.create_orders(3, kind="normal", status="open")]
    sandbox.state.mall_event(blocked, "pay")  # blocked → open, like a payment arriving
    _wait_for_inbox(sandbox, services, 4)
    result = services.inbound.run()
    assert result.new_orders == 4 and result.confirmed == 4
    handed = {int(r["mall_order_id"]) for r in shop.outbox_rows("orders-")}
    assert handed == set(ids) | {blocked}
    for oid in [*ids, blocked]:
        assert sandbox.state.get(oid)["confirmed"] is True
        # Read on arrival only (issue 17): a change MALL makes between that read and the PUT comes back by its
        # webhook, or by the batched verification (tests/integration/sync/test_quota_calls.py).
        assert len(_gets(sandbox, oid)) == READS_PER_NEW_ORDER
    services.inbound.run()
    for oid in [*ids, blocked]:
        assert len(_gets(sandbox, oid)) == READS_PER_NEW_ORDER  # the next pass reads nothing again
        assert len([e for e in sandbox.request_log.puts(oid) if e.body == {"confirmed": True}]) == 1
    assert len(shop.outbox_rows("changes-")) == 0


def test_duplicate_deliveries_add_no_get(wired, sandbox):
    shop, services, server = wired
    sandbox.faults = Faults(webhook_duplicate_rate=1.0)
    ids = [o["id"] for o in sandbox.state.create_orders(5, kind="normal", status="open")]
    _wait_for_inbox(sandbox, services, 5)
    # MALL may also send the same ids again later: post them by hand twice more.
    for _ in range(2):
        r = httpx.post(f"http://127.0.0.1:{server.port}/webhooks/mall/{TOKEN}", json=ids)
        assert r.status_code == 202
    assert services.ledger.inbox.depth() == 5
    services.inbound.run()
    for oid in ids:  # exactly what a single delivery costs: the arrival read is shared by all copies
        assert len([g for g in _gets(sandbox, oid)]) == READS_PER_NEW_ORDER
        assert all(g.seq < _first_confirm_seq(sandbox, oid) for g in _gets(sandbox, oid))


def test_customer_cancel_reaches_the_shop_once(wired, sandbox):
    shop, services, _ = wired
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, kind="normal", status="open")]
    _wait_for_inbox(sandbox, services, 1)
    services.inbound.run()
    sandbox.state.mall_event(oid, "customer_cancel")
    _wait_for_inbox(sandbox, services, 1)
    result = services.inbound.run()
    assert result.mall_changes == 1
    changes = shop.outbox_rows("changes-")
    assert [(int(c["mall_order_id"]), c["mall_status"], c["shop_status"]) for c in changes] == [(oid, "cancelled", "cancelled")]
    assert "cancelled on MALL" in changes[0]["note"]
    # The sweep or a late webhook for the same state brings nothing new.
    services.ledger.inbox.enqueue([oid], source="webhook")
    services.inbound.run()
    assert len(shop.outbox_rows("changes-")) == 1


def test_our_own_push_echoing_back_is_not_handed_to_the_shop(wired, sandbox):
    shop, services, _ = wired
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, kind="normal", status="open")]
    _wait_for_inbox(sandbox, services, 1)
    services.inbound.run()
    shop.write_feed([{"mall_order_id": oid, "status": "packing"}])
    services.outbound.poll_shop()
    assert services.outbound.push_due().pushed == 1
    services.ledger.inbox.enqueue([oid])  # as if MALL notified us of the change we made
    services.inbound.run()
    assert shop.outbox_rows("changes-") == []


def test_pickup_branch_change_reaches_the_shop_and_needs_action(wired, sandbox):
    shop, services, _ = wired
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, kind="pickup", status="open")]
    _wait_for_inbox(sandbox, services, 1)
    services.inbound.run()
    old = sandbox.state.get(oid)["branch_id"]
    sandbox.state.mall_event(oid, "change_branch", branch_id=old + 1000)
    _wait_for_inbox(sandbox, services, 1)
    services.inbound.run()
    (change,) = shop.outbox_rows("changes-")
    assert int(change["branch_id"]) == old + 1000 and "pickup branch changed" in change["note"]
    kinds = [a["kind"] for a in services.ledger.actions.open()]
    assert "branch_change" in kinds


def test_missed_webhook_is_found_by_the_sweep(wired, sandbox):
    shop, services, _ = wired
    sandbox.faults = Faults(webhook_drop_rate=1.0)
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, kind="normal", status="open")]
    time.sleep(0.5)
    assert services.ledger.inbox.depth() == 0  # the webhook never came
    summary = sync_once(services)
    assert summary.inbound.swept == 1 and summary.inbound.new_orders == 1
    assert {int(r["mall_order_id"]) for r in shop.outbox_rows("orders-")} == {oid}


def test_test_and_blocked_orders_are_recorded_but_not_handed(wired, sandbox):
    shop, services, _ = wired
    test_id = sandbox.state.create_orders(1, kind="test", status="open")[0]["id"]
    blocked_id = sandbox.state.create_orders(1, kind="normal", status="blocked")[0]["id"]
    services.ledger.inbox.enqueue([test_id, blocked_id, 999999999999])
    result = services.inbound.run()
    assert result.ignored_test == 1 and result.dropped == 1
    assert shop.outbox_rows("orders-") == []
    assert services.ledger.orders.get(test_id).test is True
    assert services.ledger.orders.get(blocked_id).mall_status == "blocked"
    assert sandbox.state.get(test_id)["confirmed"] is False  # never confirm what the shop did not get


def test_adapter_failure_means_no_confirm_and_a_later_retry(wired, sandbox):
    shop, services, _ = wired
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, kind="normal", status="open")]
    _wait_for_inbox(sandbox, services, 1)
    real_stage = services.adapter.stage_handoff
    calls = collections.Counter()

    def failing(*a, **k):
        calls["stage"] += 1
        raise HandoffError("outbox folder is not writable (simulated)")

    services.adapter.stage_handoff = failing
    services.inbound.run()
    assert calls["stage"] == 1
    assert sandbox.state.get(oid)["confirmed"] is False
    assert [e for e in sandbox.request_log.puts(oid)] == []
    (batch,) = services.ledger.handoffs.open()  # the failure is recorded on the batch, which backs off
    assert batch.attempts == 1 and batch.next_attempt_at is not None
    services.adapter.stage_handoff = real_stage
    services.inbound.run(retry_now=True)
    assert {int(r["mall_order_id"]) for r in shop.outbox_rows("orders-")} == {oid}
    assert sandbox.state.get(oid)["confirmed"] is True


def test_read_only_outbox_folder_is_retried(wired, sandbox):
    shop, services, _ = wired
    if os.geteuid() == 0:
        # root ignores permissions: make the outbox path a file instead, which fails for anyone.
        shop.outbox.rmdir()  # the harness creates the folder (`run` requires it)
        shop.outbox.write_text("not a folder")
    else:
        shop.outbox.mkdir(exist_ok=True)
        shop.outbox.chmod(0o500)
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, kind="normal", status="open")]
    _wait_for_inbox(sandbox, services, 1)
    services.inbound.run()
    assert sandbox.state.get(oid)["confirmed"] is False
    assert services.ledger.handoffs.open()
    if shop.outbox.is_file():
        shop.outbox.unlink()
    else:
        shop.outbox.chmod(0o700)
    services.inbound.run(retry_now=True)
    assert sandbox.state.get(oid)["confirmed"] is True and not services.ledger.handoffs.open()
