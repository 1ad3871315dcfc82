"""The real daemon (`mall-connector run`, a subprocess) with the WooCommerce simulator and the MALL sandbox on
loopback: the order is created in the shop, `check --fix` registers the shop's webhook at the daemon's own
receiver, the simulator's signed `order.updated` reaches /webhooks/shop/woocommerce/<token>, and the statuses
(shipping, shipped with tracking) reach MALL once; a delivery with a bad signature is refused (401) and
nothing is spooled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from adapters.shared.shopapi import hmac_b64_sha256
from adapters.woocommerce.simulator import WooSimulator
from tests.conftest import TEST_CLIENT_ID, free_port
from tests.daemon.test_daemon_e2e import _wait
from tests.sync.harness import applied_status_puts

pytestmark = pytest.mark.e2e
KEY, API_TOKEN, HOOK_TOKEN = "ck_daemon_7d1", "cs_daemon_secret_9f4b2a", "woo-hook-Pq71vXk3Lm9sRt2w"
HOOK_SECRET = "woo-signing-secret-5e8c1d"
MALL_TOKEN = "daemon-token-" + "Zq8rT2wXc5Vb9NmK4pLs"


@pytest.fixture
def sim():
    with WooSimulator(key=KEY, secret=API_TOKEN, statuses=["delivered"]) as s:  # a delivery plugin's status
        yield s


def write_config(tmp_path, sandbox, sim, port: int) -> str:
    from mappings import default_mapping_path

    shipped = default_mapping_path("woocommerce").read_text(encoding="utf-8")
    (tmp_path / "mapping.toml").write_text(shipped.replace("[to_mall]\n", '[to_mall]\n"delivered" = "delivered"\n', 1),
                                           encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(f"""[mall]
base_url = "{sandbox.url}"
client_id = "{TEST_CLIENT_ID}"
[ledger]
url = "sqlite:///ledger.db"
[receiver]
listen = "127.0.0.1:{port}"
tokens = ["{MALL_TOKEN}"]
public_url = "http://127.0.0.1:{port}"
[sync]
poll_interval_s = 1
drain_interval_s = 1
sweep_interval_s = 30
retry_base_s = 0.05
retry_max_s = 0.2
[shop]
mapping = "mapping.toml"
adapter = "woocommerce"
[shop.woocommerce]
base_url = "{sim.url}"
consumer_key = "{KEY}"
webhook_secret = "{HOOK_SECRET}"
webhook_token = "{HOOK_TOKEN}"
delivered_statuses = ["delivered"]
""", encoding="utf-8")
    return str(path)


def cli(config: str, cwd, *args: str, popen: bool = False):
    cmd = [sys.executable, "-m", "connector", "--config", config, *args]
    env = {**os.environ, "MALL_CONNECTOR_WOOCOMMERCE_CONSUMER_SECRET": API_TOKEN}
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=60)


def spooled(tmp_path) -> list:
    d = tmp_path / "woocommerce-state" / "webhooks"
    return sorted(d.iterdir()) if d.is_dir() else []


def test_woocommerce_daemon_order_life_through_its_own_shop_webhook_receiver(tmp_path, sandbox, sim):
    port = free_port()
    config = write_config(tmp_path, sandbox, sim, port)
    [oid] = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    proc = cli(config, tmp_path, "run", popen=True)
    try:
        _wait(lambda: len(sim.orders_for_mall_id(str(oid))) == 1, timeout=30, what="the order in the shop")
        fix = cli(config, tmp_path, "check", "--fix")
        assert "registered the order.updated webhook" in fix.stdout + fix.stderr, fix.stdout + fix.stderr
        [hook] = [h for h in sim.webhooks.values() if h["topic"] == "order.updated"]
        assert hook["delivery_url"] == f"http://127.0.0.1:{port}/webhooks/shop/woocommerce/{HOOK_TOKEN}"
        assert hook["status"] == "active"

        # a forged delivery at the daemon's receiver: refused, nothing spooled for the poll
        url = hook["delivery_url"]
        [order] = sim.orders_for_mall_id(str(oid))
        body = json.dumps({"id": order["id"], "status": "completed"}).encode()
        bad = httpx.post(url, content=body, headers={"X-WC-Webhook-Topic": "order.updated",
                                                     "X-WC-Webhook-Signature": hmac_b64_sha256("not-the-secret", body)})
        assert bad.status_code == 401 and spooled(tmp_path) == []

        sim.admin_update(order["id"], status="on-hold")
        sim.flush_webhooks()
        _wait(lambda: sandbox.state.get(oid)["status"] == "shipping", timeout=30, what="shipping on MALL")
        sim.admin_update(order["id"], status="completed", tracking="DR11223344CZ")
        sim.flush_webhooks()
        _wait(lambda: sandbox.state.get(oid)["status"] == "shipped", timeout=30, what="shipped on MALL")
        assert sandbox.state.get(oid)["tracking_number"] == "DR11223344CZ"
        sim.admin_update(order["id"], status="delivered")
        sim.flush_webhooks()
        _wait(lambda: sandbox.state.get(oid)["status"] == "delivered", timeout=30, what="delivered on MALL")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=45)
    assert proc.returncode == 0, err
    assert sandbox.state.get(oid)["delivered_at"]
    assert err.count("shop webhook woocommerce: 1 order(s) noted for the next poll") == 3  # all three updates, by webhook
    assert "signature does not match any configured key; refused (401)" in err
    assert [p.body["status"] for p in applied_status_puts(sandbox, oid)] == ["shipping", "shipped", "delivered"]
    assert len(sim.orders_for_mall_id(str(oid))) == 1
    assert API_TOKEN not in out + err and HOOK_TOKEN not in err


def test_sigkill_of_the_daemon_between_shop_create_and_record_no_duplicate_and_one_confirm(tmp_path, sandbox, sim):
    """The daemon is killed -9 while the shop has created the order but its answer has not arrived; after
    the restart the order is found by its MALL-id meta field, not created again."""
    from adapters.woocommerce.simulator import PREFIX

    port = free_port()
    config = write_config(tmp_path, sandbox, sim, port)
    [oid] = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    created, release = threading.Event(), threading.Event()
    create = sim._create

    def create_then_hang(body, echo=True):  # the order exists in the shop; the answer waits for the kill
        order = create(body, echo)
        created.set()
        release.wait(30)
        return order

    sim._create = create_then_hang
    proc = cli(config, tmp_path, "run", popen=True)
    try:
        assert created.wait(30), "the daemon never created the order in the shop"
    finally:
        proc.kill()
        proc.communicate(timeout=30)
        release.set()
    sim._create = create
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "woocommerce-state" / "orders" / f"{oid}.json").exists()  # killed before the record
    assert len(sim.orders_for_mall_id(str(oid))) == 1 and not sandbox.state.get(oid)["confirmed"]
    posts = sim.server.requests.count(("POST", f"{PREFIX}/orders"))
    assert posts == 1

    proc = cli(config, tmp_path, "run", popen=True)
    try:
        _wait(lambda: (tmp_path / "woocommerce-state" / "orders" / f"{oid}.json").exists(), timeout=30,
              what="the shop order recorded after the restart")
        [order] = sim.orders_for_mall_id(str(oid))
        sim.admin_update(order["id"], status="on-hold")  # no webhook registered: the modified_after poll reads it
        _wait(lambda: sandbox.state.get(oid)["status"] == "shipping", timeout=30, what="shipping on MALL")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=45)
    assert proc.returncode == 0, err
    assert len(sim.orders_for_mall_id(str(oid))) == 1
    assert sim.server.requests.count(("POST", f"{PREFIX}/orders")) == posts  # found again, not created again
    confirms = [p for p in sandbox.request_log.puts(oid) if p.applied and (p.body or {}).get("confirmed") is True]
    assert len(confirms) == 1 and sandbox.state.get(oid)["confirmed"]
