"""The Shoptet adapter against the Shoptet simulator over real HTTP on loopback; its webhooks through the
receiver's /webhooks/shop/shoptet/<token>; the whole loop with the MALL sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from adapters.base import MallChange
from adapters.shared.shopapi import ShopApiError, hmac_hex_sha1
from adapters.shoptet import ShoptetAdapter, ShoptetConfig, init_mapping
from adapters.shoptet.simulator import ShoptetSimulator
from connector.mapping import load_mapping
from connector.sync.runner import Services, sync_once
from tests.support import records
from tests.conftest import TEST_CLIENT_ID
from tests.unit.adapters.woocommerce.test_woocommerce import Receiver
from tests.support.paths import ROOT

TOKEN, HOOK_TOKEN = "shoptet-private-token-1", "shop-token-2"


def new_order(oid: int):
    return replace(records.new_order(oid), shop_status="Nevyřízená")


@pytest.fixture
def sim():
    with ShoptetSimulator(token=TOKEN) as s:
        yield s


def make(sim, tmp_path, **kw) -> ShoptetAdapter:
    cfg = ShoptetConfig(base_url=sim.url, api_token=TOKEN, webhook_key=sim.signature_key, webhook_token=HOOK_TOKEN,
                        state_dir=tmp_path / "state", retries=kw.pop("retries", 2), max_retry_wait_s=0.05,
                        delivery_methods={"PPL": "guid-ppl"}, **kw)
    return ShoptetAdapter(cfg, tmp_path / "state")


def test_new_order_has_the_mall_id_in_external_code_items_prices_vat_and_methods(sim, tmp_path):
    sim.products.discard("SKU-1")
    adapter = make(sim, tmp_path)
    adapter.stage_handoff("orders-1", "orders", [new_order(2000001)])
    assert adapter.publish_handoff("orders-1") is True
    [o] = sim.orders_for_external("MALL-2000001")
    product, shipping = o["items"]
    assert (product["name"], product["vatRate"], product["unitPriceWithVat"], product["amount"]) == (
        "Hrnek", "21.00", "149.00", "2.000")
    assert "code" not in product  # the shop has no SKU-1: a needs-action item, not a crash
    assert shipping["shippingGuid"] == "guid-ppl" and shipping["unitPriceWithVat"] == "99.00"
    assert o["email"] == "jana@example.cz" and o["billingAddress"]["countryCode"] == "CZ"
    assert o["status"]["name"] == "Nevyřízená"
    steps = adapter.manual_steps(new_order(2000001))
    assert "2000001" in steps and "SKU-1" in steps and o["code"] in steps
    assert adapter.publish_handoff("orders-1") is False and len(sim.orders_for_external("MALL-2000001")) == 1


CRASH_AFTER_CREATE = """
import os, signal, sys
from dataclasses import replace
from adapters.shared import shopapi
from adapters.shoptet import ShoptetAdapter, ShoptetConfig
from tests.support.records import new_order
shopapi.StateDir.record_shop_order = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
cfg = ShoptetConfig(base_url=sys.argv[1], api_token="%s", state_dir=sys.argv[2])
a = ShoptetAdapter(cfg, cfg.state_dir)
a.stage_handoff("orders-9", "orders", [replace(new_order(2000009), shop_status="")])
a.publish_handoff("orders-9")
""" % TOKEN


@pytest.mark.e2e
def test_sigkill_between_create_and_record_creates_no_duplicate(sim, tmp_path):
    for i in range(3):  # other orders created since, that the lookup must read past
        sim.admin_create_order(f"HEUREKA-{i}")
    done = subprocess.run([sys.executable, "-c", CRASH_AFTER_CREATE, sim.url, str(tmp_path / "state")], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert len(sim.orders_for_external("MALL-2000009")) == 1
    posts = sim.server.requests.count(("POST", "/api/orders"))
    adapter = make(sim, tmp_path)
    assert adapter.publish_handoff("orders-9") is True
    assert len(sim.orders_for_external("MALL-2000009")) == 1
    assert sim.server.requests.count(("POST", "/api/orders")) == posts  # found by externalCode, not re-created
    assert adapter.state.shop_order(2000009)["code"] == sim.orders_for_external("MALL-2000009")[0]["code"]


def test_cancel_sets_the_mapped_status_and_a_history_note(sim, tmp_path):
    adapter = make(sim, tmp_path)
    adapter.stage_handoff("orders-2", "orders", [new_order(2000002)])
    adapter.publish_handoff("orders-2")
    change = MallChange(2000002, "cancelled", "Stornována", "2026-11-30 11:00:00", None, "cancelled on MALL")
    adapter.stage_handoff("changes-1", "changes", [change])
    assert adapter.publish_handoff("changes-1") is True
    [o] = sim.orders_for_external("MALL-2000002")
    assert o["status"]["name"] == "Stornována"
    assert sim.history[o["code"]] == [{"text": "MALL: cancelled on MALL", "type": "comment"}]
    bad = MallChange(2000002, "lost", "Ztracena", "2026-11-30 12:00:00", None, "lost")
    adapter.stage_handoff("changes-2", "changes", [bad])
    with pytest.raises(ShopApiError, match="the shop has no order status 'Ztracena'"):
        adapter.publish_handoff("changes-2")


def test_more_than_three_parallel_requests_get_429_with_an_http_date_and_the_adapter_waits(sim, tmp_path):
    sim.hold.clear()
    held = [threading.Thread(target=httpx.get, args=(f"{sim.url}/api/orders/statuses",),
                             kwargs={"headers": {"Shoptet-Private-API-Token": TOKEN}, "timeout": 20}) for _ in range(3)]
    for t in held:
        t.start()
    while sim._active < 3:
        pass
    refused = httpx.get(f"{sim.url}/api/orders/statuses", headers={"Shoptet-Private-API-Token": TOKEN})
    assert refused.status_code == 429 and refused.headers["Retry-After"].endswith("GMT")
    assert refused.json()["errors"][0]["errorCode"] == "too-many-requests"
    threading.Timer(0.1, sim.hold.set).start()
    adapter = make(sim, tmp_path, retries=8)
    adapter.stage_handoff("orders-3", "orders", [new_order(2000003)])
    assert adapter.publish_handoff("orders-3") is True  # waited the 429s out
    for t in held:
        t.join()
    assert len(sim.orders_for_external("MALL-2000003")) == 1


def test_5xx_is_retried_and_an_html_page_is_a_typed_error_naming_the_endpoint(sim, tmp_path):
    sim.faults.fail_next("/api/products", 500, times=1)  # a read is repeated
    sim.faults.fail_next("/api/orders/statuses", 503, times=1)
    sim.faults.fail_next("/api/orders", 500, times=1, method="POST")  # the create is not blindly repeated
    adapter = make(sim, tmp_path)
    adapter.stage_handoff("orders-4", "orders", [new_order(2000004)])
    with pytest.raises(ShopApiError, match=r"POST .*/api/orders: HTTP 500"):
        adapter.publish_handoff("orders-4")
    assert adapter.publish_handoff("orders-4") is True  # the next attempt looks first, then creates once
    assert len(sim.orders_for_external("MALL-2000004")) == 1
    assert sim.server.requests.count(("POST", "/api/orders")) == 2
    sim.faults.fail_next("/api/orders/changes", 502, times=1, kind="html")
    from adapters.base import FeedUnavailable
    with pytest.raises(FeedUnavailable) as e:
        make(sim, tmp_path / "b", retries=0).read_feed()
    assert "/api/orders/changes" in str(e.value) and "not JSON" in str(e.value) and TOKEN not in str(e.value)


def test_feed_reads_status_names_and_tracking_and_webhooks_are_verified(sim, tmp_path):
    adapter = make(sim, tmp_path, webhook_key_previous="old-key")
    rx = Receiver(adapter)
    try:
        assert adapter.check_webhooks(rx.url) == [
            f"the order:update webhook is not registered; it must point at {rx.url}/webhooks/shop/shoptet/…"]
        assert adapter.check_webhooks(rx.url, fix=True) == ["fixed: registered the order:update webhook"]
        assert adapter.check_webhooks(rx.url) == []
        o = sim.admin_create_order("MALL-2000005")
        first = adapter.read_feed()
        assert [(r.mall_order_id, r.status) for r in first.rows] == [(2000005, "Nevyřízená")]
        sim.clock_offset = timedelta(seconds=10)
        sim.admin_update(o["code"], status_name="Vyřízena", tracking="Z123456789")
        sim.flush_webhooks()
        assert sim.server.deliveries[-1]["status"] == 202
        assert adapter.state.webhook_refs()[0] == [o["code"]]
        url = f"{rx.url}/webhooks/shop/shoptet/{HOOK_TOKEN}"
        body = json.dumps({"eshopId": 1, "event": "order:update", "eventCreated": "x", "eventInstance": "X1"}).encode()
        assert httpx.post(url, content=body, headers={"Shoptet-Webhook-Signature": hmac_hex_sha1("bad", body)}).status_code == 401
        assert adapter.state.webhook_refs()[0] == [o["code"]]  # nothing recorded
        assert httpx.post(url, content=body, headers={"Shoptet-Webhook-Signature": hmac_hex_sha1("old-key", body)}).status_code == 202
        feed = adapter.read_feed(previous_fingerprint=first.fingerprint)
        [row] = feed.rows
        assert (row.status, row.tracking_number, row.shop_order_id) == ("Vyřízena", "Z123456789", o["code"])
        again = adapter.read_feed(previous_fingerprint=feed.fingerprint)
        assert again.unchanged and adapter.state.webhook_refs()[0] == []  # spool dropped once the core stored the read
    finally:
        rx.stop()


def test_init_writes_the_shops_own_status_names_and_mapping_check_flags_an_unknown_one(sim, tmp_path):
    sim.statuses.append((77, "Čeká na díl"))
    adapter = make(sim, tmp_path)
    path = tmp_path / "shoptet.toml"
    path.write_text(init_mapping(adapter), encoding="utf-8")
    mapping = load_mapping(path)
    assert mapping.to_mall["Vyřizuje se"].value == "shipping" and "Čeká na díl" in path.read_text(encoding="utf-8")
    assert adapter.mapping_problems(mapping) == []
    shipped = load_mapping(Path(ROOT / "mappings" / "shoptet.toml"))
    assert adapter.mapping_problems(shipped) == []
    sim.statuses = [s for s in sim.statuses if s[1] != "Stornována"]
    adapter._statuses = None
    [problem] = {p for p in adapter.mapping_problems(shipped)}
    assert problem.startswith("status 'Stornována' does not exist in this Shoptet shop")


@pytest.mark.e2e
def test_end_to_end_with_the_mall_sandbox_order_life_and_customer_cancel(tmp_path, sandbox, sim):
    from connector.config import load_config

    (tmp_path / "config.toml").write_text(f"""[mall]
base_url = "{sandbox.url}"
client_id = "{TEST_CLIENT_ID}"
[ledger]
url = "sqlite:///ledger.db"
[sync]
retry_base_s = 0.05
retry_max_s = 0.2
[shop]
adapter = "shoptet"
[shop.shoptet]
base_url = "{sim.url}"
api_token = "{TOKEN}"
""", encoding="utf-8")
    a, b = [o["id"] for o in sandbox.state.create_orders(2, status="open")]
    svc = Services(load_config(tmp_path / "config.toml"))
    try:
        sync_once(svc)
        [oa], [ob] = sim.orders_for_external(f"MALL-{a}"), sim.orders_for_external(f"MALL-{b}")
        sim.clock_offset = timedelta(seconds=10)
        sim.admin_update(oa["code"], status_name="Vyřizuje se")
        sync_once(svc)
        assert sandbox.state.get(a)["status"] == "shipping"
        sim.clock_offset = timedelta(seconds=20)
        sim.admin_update(oa["code"], status_name="Vyřízena", tracking="DR99887766CZ")
        sync_once(svc)
        assert sandbox.state.get(a)["status"] == "shipped" and sandbox.state.get(a)["tracking_number"] == "DR99887766CZ"
        sandbox.state.mall_event(b, "customer_cancel")
        sync_once(svc)
        assert sim.orders[ob["code"]]["status"]["name"] == "Stornována"
        assert len(sim.orders_for_external(f"MALL-{a}")) == len(sim.orders_for_external(f"MALL-{b}")) == 1
    finally:
        svc.close()
