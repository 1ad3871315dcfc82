"""The WooCommerce adapter against the WooCommerce simulator over real HTTP on loopback, and its
webhooks through the receiver's /webhooks/shop/woocommerce/<token> route on a real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest
from werkzeug.serving import make_server

from adapters.base import MallChange
from adapters.shared.shopapi import ShopApiError, hmac_b64_sha256
from adapters.woocommerce import WooCommerceAdapter, WooCommerceConfig
from adapters.woocommerce.simulator import WooSimulator
from receiver.app import create_app
from dataclasses import replace

from tests.support import records
from tests.support.records import cancelled
from tests.support.paths import ROOT


def new_order(oid: int):
    return replace(records.new_order(oid), shop_status="processing")  # [from_mall] open of mappings/woocommerce.toml

KEY, SECRET, HOOK_SECRET, TOKEN = "ck_live_1", "cs_live_1", "hook-secret-1", "shop-token-1"


@pytest.fixture
def sim():
    with WooSimulator(key=KEY, secret=SECRET, statuses=["packing"]) as s:
        yield s


def make(sim, tmp_path, **kw) -> WooCommerceAdapter:
    cfg = WooCommerceConfig(base_url=sim.url, consumer_key=KEY, consumer_secret=SECRET, webhook_secret=HOOK_SECRET,
                            webhook_token=TOKEN, state_dir=tmp_path / "state", retries=kw.pop("retries", 2),
                            max_retry_wait_s=0.05, delivery_methods={"PPL": "ppl_cz"}, payment_methods={"card": "stripe"},
                            **kw)
    return WooCommerceAdapter(cfg, tmp_path / "state")


class Receiver:
    """The real receiver app (shop route registered) on a real loopback server."""

    def __init__(self, adapter, ledger=None):
        app = create_app(ledger=ledger, tokens=["mall-token"], metrics=None, shop_adapters=lambda: {adapter.name: adapter})
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self):
        self.server.shutdown()


def test_new_order_carries_customer_items_methods_prices_and_the_mall_id(sim, tmp_path):
    adapter = make(sim, tmp_path)
    adapter.stage_handoff("orders-1", "orders", [new_order(2000001)])
    assert sim.orders_for_mall_id("2000001") == []  # staged is not in the shop yet
    assert adapter.publish_handoff("orders-1") is True
    [o] = sim.orders_for_mall_id("2000001")
    assert o["billing"]["first_name"] == "Jana" and o["billing"]["last_name"] == "Nováková"
    assert o["billing"]["email"] == "jana@example.cz" and o["shipping"]["city"] == "Praha"
    assert [(li["product_id"], li["quantity"], li["total"]) for li in o["line_items"]] == [(11, 2, "298.00")]
    assert {"key": "_mall_vat", "value": "21"} in o["line_items"][0]["meta_data"]
    assert o["shipping_lines"][0]["method_id"] == "ppl_cz" and o["shipping_lines"][0]["total"] == "99.00"
    assert o["payment_method"] == "stripe" and o["created_via"] == "mall" and o["status"] == "processing"
    assert adapter.manual_steps(new_order(2000001)) is None
    assert adapter.publish_handoff("orders-1") is False  # already published: nothing twice
    assert len(sim.orders_for_mall_id("2000001")) == 1


def test_a_missing_product_is_a_needs_action_item_not_a_crash(sim, tmp_path):
    sim.products.pop("SKU-1")
    adapter = make(sim, tmp_path)
    adapter.stage_handoff("orders-2", "orders", [new_order(2000002)])
    assert adapter.publish_handoff("orders-2") is True
    [o] = sim.orders_for_mall_id("2000002")
    assert o["line_items"] == [] and o["fee_lines"][0]["total"] == "298.00" and "Hrnek" in o["fee_lines"][0]["name"]
    steps = adapter.manual_steps(new_order(2000002))
    assert "2000002" in steps and "SKU-1" in steps and o["number"] in steps


CRASH_AFTER_CREATE = """
import os, signal, sys
from adapters.shared import shopapi
from adapters.woocommerce import WooCommerceAdapter, WooCommerceConfig
from tests.unit.adapters.woocommerce.test_woocommerce import new_order
# kill -9 right after the shop accepted the POST, before the shop's order id is recorded
shopapi.StateDir.record_shop_order = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
cfg = WooCommerceConfig(base_url=sys.argv[1], consumer_key="%s", consumer_secret="%s", state_dir=sys.argv[2])
a = WooCommerceAdapter(cfg, cfg.state_dir)
a.stage_handoff("orders-9", "orders", [new_order(2000009)])
a.publish_handoff("orders-9")
""" % (KEY, SECRET)


@pytest.mark.e2e
def test_sigkill_between_create_and_record_creates_no_duplicate(sim, tmp_path):
    state = tmp_path / "state"
    done = subprocess.run([sys.executable, "-c", CRASH_AFTER_CREATE, sim.url, str(state)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert len(sim.orders_for_mall_id("2000009")) == 1  # the shop has it, the connector did not record it
    posts_before = sim.server.requests.count(("POST", "/wp-json/wc/v3/orders"))
    adapter = make(sim, tmp_path)  # the restarted connector: the batch is still staged
    assert adapter.publish_handoff("orders-9") is True
    assert len(sim.orders_for_mall_id("2000009")) == 1
    assert sim.server.requests.count(("POST", "/wp-json/wc/v3/orders")) == posts_before  # found again, not re-created
    assert adapter.state.shop_order(2000009)["code"] == str(sim.orders_for_mall_id("2000009")[0]["id"])


def test_mall_cancel_sets_the_mapped_status_and_adds_a_note_branch_change_only_a_note(sim, tmp_path):
    adapter = make(sim, tmp_path)
    adapter.stage_handoff("orders-3", "orders", [new_order(2000003)])
    adapter.publish_handoff("orders-3")
    branch = MallChange(2000003, "open", "", "2026-11-30 11:00:00", 4242, "pickup branch changed")
    adapter.stage_handoff("changes-1", "changes", [branch])
    adapter.publish_handoff("changes-1")
    [o] = sim.orders_for_mall_id("2000003")
    status_before = o["status"]
    assert status_before != "cancelled"
    assert any("pickup branch changed" in n["note"] and "4242" in n["note"] for n in sim.notes[o["id"]])
    adapter.stage_handoff("changes-2", "changes", [cancelled(2000003)])
    assert adapter.publish_handoff("changes-2") is True
    assert sim.orders[o["id"]]["status"] == "cancelled"
    assert any(n["note"] == "MALL: cancelled on MALL" for n in sim.notes[o["id"]])


def test_shop_answering_429_and_5xx_is_waited_out_and_an_html_page_is_a_typed_error(sim, tmp_path):
    adapter = make(sim, tmp_path, retries=3)
    sim.faults.fail_next("/wp-json/wc/v3/orders", 429, times=2)
    sim.faults.fail_next("/wp-json/wc/v3/products", 500, times=1)
    adapter.stage_handoff("orders-4", "orders", [new_order(2000004)])
    assert adapter.publish_handoff("orders-4") is True
    assert len(sim.orders_for_mall_id("2000004")) == 1
    assert sim.server.requests.count(("POST", "/wp-json/wc/v3/orders")) == 3  # two 429s, then the create
    sim.faults.fail_next("/wp-json/wc/v3/orders", 502, times=1, kind="html")
    flaky = make(sim, tmp_path / "b", retries=0)
    flaky.stage_handoff("orders-5", "orders", [new_order(2000005)])
    with pytest.raises(ShopApiError) as e:
        flaky.publish_handoff("orders-5")
    assert "POST" in str(e.value) and "/wp-json/wc/v3/orders" in str(e.value) and "not JSON" in str(e.value)
    assert sim.orders_for_mall_id("2000005") == []
    assert flaky.publish_handoff("orders-5") is True  # still staged: the next attempt creates it once
    assert len(sim.orders_for_mall_id("2000005")) == 1


def test_wrong_credentials_name_the_endpoint_and_never_the_secret(sim, tmp_path):
    cfg = WooCommerceConfig(base_url=sim.url, consumer_key=KEY, consumer_secret="cs_wrong_value", retries=0,
                            state_dir=tmp_path / "s")
    adapter = WooCommerceAdapter(cfg, tmp_path / "s")
    adapter.stage_handoff("orders-6", "orders", [new_order(2000006)])
    with pytest.raises(ShopApiError) as e:
        adapter.publish_handoff("orders-6")
    assert "401" in str(e.value) and "Consumer secret is invalid" in str(e.value)
    assert "cs_wrong_value" not in str(e.value) and KEY not in str(e.value)


def test_full_life_in_the_shop_reaches_the_feed_with_tracking(sim, tmp_path):
    adapter = make(sim, tmp_path)
    adapter.stage_handoff("orders-7", "orders", [new_order(2000007)])
    adapter.publish_handoff("orders-7")
    oid = sim.orders_for_mall_id("2000007")[0]["id"]
    feed = adapter.read_feed()
    fp = feed.fingerprint
    sim.clock_offset = sim.clock_offset.__class__(seconds=10)
    sim.admin_update(oid, status="on-hold")
    feed = adapter.read_feed(previous_fingerprint=fp)
    assert [(r.mall_order_id, r.status) for r in feed.rows] == [(2000007, "on-hold")]
    sim.clock_offset = sim.clock_offset.__class__(seconds=20)
    sim.admin_update(oid, status="completed", tracking="DR1234567CZ", provider="PPL")
    feed2 = adapter.read_feed(previous_fingerprint=feed.fingerprint)
    [row] = feed2.rows
    assert (row.status, row.tracking_number, row.carrier, row.shop_order_id) == (
        "completed", "DR1234567CZ", "PPL", sim.orders[oid]["number"])
    assert row.shop_order_id != str(oid)  # number, not the internal id
    assert adapter.read_feed(previous_fingerprint=feed2.fingerprint).unchanged
    sim.clock_offset = sim.clock_offset.__class__(seconds=30)
    sim.admin_update(oid, packeta_packet_id="4410001234")
    sim.orders[oid]["meta_data"] = [m for m in sim.orders[oid]["meta_data"] if m["key"] != "_wc_shipment_tracking_items"]
    [row] = adapter.read_feed(previous_fingerprint=feed2.fingerprint).rows
    assert (row.tracking_number, row.carrier, row.tracking_url) == (
        "Z4410001234", "packeta", "https://tracking.packeta.com/Z4410001234")


def test_signed_webhooks_are_accepted_bad_signatures_refused_with_nothing_recorded(sim, tmp_path):
    adapter = make(sim, tmp_path, webhook_secret_previous="old-secret")
    rx = Receiver(adapter)
    try:
        assert adapter.check_webhooks(rx.url) == [
            f"no order.updated webhook points at the receiver ({rx.url}/webhooks/shop/woocommerce/…)"]
        assert adapter.check_webhooks(rx.url, fix=True) == ["fixed: registered the order.updated webhook"]
        assert adapter.check_webhooks(rx.url) == []
        o = sim.admin_create_order("2000010", status="processing")
        sim.admin_update(o["id"], status="on-hold")
        sim.flush_webhooks()
        ping, delivery = sim.server.deliveries[0], sim.server.deliveries[-1]
        assert ping["body"].startswith(b"webhook_id=") and ping["status"] == 200  # unsigned ping accepted
        assert delivery["status"] == 202
        assert adapter.state.webhook_refs()[0] == [str(o["id"])]
        url = f"{rx.url}/webhooks/shop/woocommerce/{TOKEN}"
        body = json.dumps({"id": 77}).encode()
        bad = httpx.post(url, content=body, headers={"X-WC-Webhook-Signature": hmac_b64_sha256("wrong", body)})
        assert bad.status_code == 401
        assert httpx.post(url, content=body).status_code == 401  # unsigned JSON is not a ping
        assert httpx.post(f"{rx.url}/webhooks/shop/woocommerce/wrong-token", content=body,
                          headers={"X-WC-Webhook-Signature": hmac_b64_sha256(HOOK_SECRET, body)}).status_code == 404
        assert adapter.state.webhook_refs()[0] == [str(o["id"])]  # nothing recorded by the refused ones
        rotated = httpx.post(url, content=body, headers={"X-WC-Webhook-Signature": hmac_b64_sha256("old-secret", body)})
        assert rotated.status_code == 202  # the previous key still works while rotating
        assert adapter.state.webhook_refs()[0] == [str(o["id"]), "77"]
    finally:
        rx.stop()


def test_a_disabled_webhook_loses_events_the_poll_catches_up_and_check_fix_re_enables_it(sim, tmp_path):
    adapter = make(sim, tmp_path)
    rx = Receiver(adapter)
    adapter.check_webhooks(rx.url, fix=True)
    first = adapter.read_feed()
    rx.stop()  # the receiver is down: deliveries fail, WooCommerce never retries them
    orders = [sim.admin_create_order(str(2000100 + i), status="processing") for i in range(4)]
    sim.clock_offset = sim.clock_offset.__class__(seconds=10)
    for o in orders:
        sim.admin_update(o["id"], status="on-hold")
        sim.admin_update(o["id"], status="completed", tracking=f"DR{o['id']}CZ")
    sim.flush_webhooks()
    [hook] = sim.webhooks.values()
    assert hook["status"] == "disabled"  # after more than 5 failures in a row
    assert adapter.state.webhook_refs()[0] == []  # not one event arrived
    feed = adapter.read_feed(previous_fingerprint=first.fingerprint)
    assert sorted((r.mall_order_id, r.status, r.tracking_number) for r in feed.rows) == [
        (2000100 + i, "completed", f"DR{o['id']}CZ") for i, o in enumerate(orders)]
    assert adapter.check_webhooks(rx.url) == [f"webhook {hook['id']} (order.updated) is disabled, not active"]
    assert adapter.check_webhooks(rx.url, fix=True) == [f"fixed: re-enabled webhook {hook['id']} (was disabled)"]
    assert sim.webhooks[hook["id"]]["status"] == "active" and adapter.check_webhooks(rx.url) == []
