"""Webhooks: MALL-side changes arrive as de-duplicated id batches, at most once per interval, never retried."""

from __future__ import annotations

import time

import httpx

from connector.sandbox.faults import Faults
from tests.conftest import free_port
from tests.unit.connector.sandbox.conftest import TLS


def test_changes_arrive_batched_and_deduplicated(make_sandbox, receiver):
    mall = make_sandbox(webhook_interval_s=0.5, webhook_url=receiver.url)
    (first,) = mall.state.create_orders()
    receiver.wait_for(1)  # the timer just fired: the next batch is ~0.5 s away, time enough for the changes below
    a, b = (o["id"] for o in mall.state.create_orders(2, status="blocked"))
    mall.state.mall_event(a, "pay")
    mall.state.mall_event(b, "pay")
    mall.state.mall_event(a, "customer_cancel")
    receiver.wait_for(2)
    time.sleep(0.6)  # nothing else may follow: everything was in that one batch
    assert receiver.batches() == [[first["id"]], [a, b]]
    assert {content_type for _, _, content_type in receiver.calls} == {"application/json"}
    delivery = mall.webhook_log.entries()[-1]
    assert delivery.ids == [a, b] and delivery.outcome == "delivered" and delivery.status_code == 200
    assert "tok3n-abc" not in delivery.url  # the token in the receiver URL is masked in the log


def test_partner_changes_send_no_webhook(sandbox, receiver, mall):
    (order,) = sandbox.state.create_orders()
    sandbox.state.drain_changed()
    sandbox.webhook_url = receiver.url
    mall.put(f"/v1/orders/{order['id']}", json={"confirmed": True, "status": "shipping"})
    time.sleep(0.35)
    assert receiver.batches() == []


def test_at_most_one_batch_per_interval(make_sandbox, receiver):
    interval = 0.25
    mall = make_sandbox(webhook_interval_s=interval, webhook_url=receiver.url)
    started = time.monotonic()
    created = set()
    while time.monotonic() - started < 1.4:  # a change every 20 ms
        created |= {o["id"] for o in mall.state.create_orders()}
        time.sleep(0.02)
    receiver.wait_for(1)
    time.sleep(interval + 0.2)
    times = [t for t, _, _ in receiver.calls]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert 3 <= len(times) <= 7, times
    assert min(gaps) >= interval * 0.8, gaps
    sent = [i for batch in receiver.batches() for i in batch]
    assert sorted(sent) == sorted(created)  # every change exactly once over all batches


def test_failed_delivery_is_logged_and_not_retried(sandbox, receiver):
    receiver.status = 500
    sandbox.webhook_url = receiver.url
    (order,) = sandbox.state.create_orders()
    receiver.wait_for(1)
    time.sleep(0.4)
    assert receiver.batches() == [[order["id"]]]
    (entry,) = sandbox.webhook_log.failed()
    assert entry.status_code == 500 and entry.error == "HTTP 500" and entry.ids == [order["id"]]


def test_unreachable_receiver_is_logged(sandbox):
    sandbox.webhook_url = f"http://127.0.0.1:{free_port()}/hook"
    (order,) = sandbox.state.create_orders()
    assert sandbox.flush_webhooks() == [order["id"]]
    (entry,) = sandbox.webhook_log.entries()
    assert entry.outcome == "failed" and entry.status_code is None and "ConnectError" in entry.error


def test_drop_and_duplicate_faults(sandbox, receiver):
    sandbox.webhook_url = receiver.url
    sandbox.faults = Faults(webhook_drop_rate=1.0)
    (dropped,) = sandbox.state.create_orders()
    assert sandbox.flush_webhooks() == [dropped["id"]]
    sandbox.faults = Faults(webhook_duplicate_rate=1.0)
    (twice,) = sandbox.state.create_orders()
    sandbox.flush_webhooks()
    assert receiver.batches() == [[twice["id"]], [twice["id"]]]
    assert [(e.outcome, e.duplicate) for e in sandbox.webhook_log.entries()] == [
        ("dropped", False), ("delivered", False), ("delivered", True)]


def test_delay_fault(make_sandbox, receiver):
    mall = make_sandbox(webhook_url=receiver.url, faults=Faults(webhook_delay_s=0.4), webhook_interval_s=60)
    mall.state.create_orders()
    started = time.monotonic()
    mall.flush_webhooks()
    assert receiver.calls[0][0] - started >= 0.38


def test_flush_endpoint_and_webhook_url_endpoint(make_sandbox, receiver):
    mall = make_sandbox(webhook_interval_s=60)  # the timer would not fire during this test
    with httpx.Client(base_url=f"{mall.url}/_sandbox", timeout=5, verify=TLS) as op:
        assert op.post("/webhook-url", json={"url": receiver.url}).json() == {"url": mall.webhook_url.replace("tok3n-abc", "***")}
        ids = [o["id"] for o in op.post("/orders", json={"count": 3}).json()["orders"]]
        assert op.get("/webhooks").json()["pending"] == ids
        assert op.post("/webhooks/flush").json() == {"sent": ids}
        assert receiver.batches() == [ids]
        assert op.post("/webhooks/flush").json() == {"sent": []}
        info = op.get("/webhooks").json()
        assert info["pending"] == [] and info["deliveries"][0]["ids"] == ids and info["interval_s"] == 60
        assert op.post("/webhook-url", json={"url": None}).json() == {"url": None}
    assert mall.webhook_url is None


def test_without_a_url_changes_are_not_kept_for_later(sandbox, receiver):
    sandbox.state.create_orders(2)
    time.sleep(0.3)
    sandbox.webhook_url = receiver.url
    time.sleep(0.3)
    assert receiver.batches() == [] and sandbox.webhook_log.entries() == []
