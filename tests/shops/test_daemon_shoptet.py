"""The real daemon (`mall-connector run`, a subprocess) with the Shoptet simulator and the MALL sandbox on
loopback: the order is created in the shop, `check --fix` registers the shop's webhook at the daemon's own
receiver, the simulator's signed `order:update` reaches /webhooks/shop/shoptet/<token>, and the statuses
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

from adapters.shared.shopapi import hmac_hex_sha1
from adapters.shoptet.simulator import ShoptetSimulator
from tests.conftest import TEST_CLIENT_ID, free_port
from tests.daemon.test_daemon_e2e import _wait
from tests.sync.harness import applied_status_puts

pytestmark = pytest.mark.e2e
API_TOKEN, HOOK_TOKEN = "shoptet-daemon-token-4c2e", "shoptet-hook-Xk29vQp7Lm3sRt8w"
MALL_TOKEN = "daemon-token-" + "Zq8rT2wXc5Vb9NmK4pLs"


@pytest.fixture
def sim():
    with ShoptetSimulator(token=API_TOKEN) as s:
        s.statuses.append((88, "Doručena"))  # the shop's own "the customer has it" status
        yield s


def write_config(tmp_path, sandbox, sim, port: int) -> str:
    from mappings import default_mapping_path

    shipped = default_mapping_path("shoptet").read_text(encoding="utf-8")
    (tmp_path / "mapping.toml").write_text(shipped.replace("[to_mall]\n", '[to_mall]\n"Doručena" = "delivered"\n', 1),
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
adapter = "shoptet"
[shop.shoptet]
base_url = "{sim.url}"
webhook_key = "{sim.signature_key}"
webhook_token = "{HOOK_TOKEN}"
delivered_statuses = ["Doručena"]
""", encoding="utf-8")
    return str(path)


def cli(config: str, cwd, *args: str, popen: bool = False):
    cmd = [sys.executable, "-m", "connector", "--config", config, *args]
    env = {**os.environ, "MALL_CONNECTOR_SHOPTET_API_TOKEN": API_TOKEN}
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=60)


def spooled(tmp_path) -> list:
    d = tmp_path / "shoptet-state" / "webhooks"
    return sorted(d.iterdir()) if d.is_dir() else []


def test_daemon_order_life_through_its_own_shop_webhook_receiver(tmp_path, sandbox, sim):
    port = free_port()
    config = write_config(tmp_path, sandbox, sim, port)
    [oid] = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    proc = cli(config, tmp_path, "run", popen=True)
    try:
        _wait(lambda: len(sim.orders_for_external(f"MALL-{oid}")) == 1, timeout=30, what="the order in the shop")
        fix = cli(config, tmp_path, "check", "--fix")
        assert "registered the order:update webhook" in fix.stdout + fix.stderr, fix.stdout + fix.stderr
        [hook] = [h for h in sim.webhooks.values() if h["event"] == "order:update"]
        assert hook["url"] == f"http://127.0.0.1:{port}/webhooks/shop/shoptet/{HOOK_TOKEN}"

        # a forged delivery at the daemon's receiver: refused, nothing spooled for the poll
        url = hook["url"]
        [order] = sim.orders_for_external(f"MALL-{oid}")
        body = json.dumps({"eshopId": sim.eshop_id, "event": "order:update", "eventInstance": order["code"]}).encode()
        bad = httpx.post(url, content=body, headers={"Shoptet-Webhook-Signature": hmac_hex_sha1("not-the-key", body)})
        assert bad.status_code == 401 and spooled(tmp_path) == []

        sim.admin_update(order["code"], status_name="Vyřizuje se")
        sim.flush_webhooks()
        _wait(lambda: sandbox.state.get(oid)["status"] == "shipping", timeout=30, what="shipping on MALL")
        sim.admin_update(order["code"], status_name="Vyřízena", tracking="DR11223344CZ")
        sim.flush_webhooks()
        _wait(lambda: sandbox.state.get(oid)["status"] == "shipped", timeout=30, what="shipped on MALL")
        assert sandbox.state.get(oid)["tracking_number"] == "DR11223344CZ"
        sim.admin_update(order["code"], status_name="Doručena")
        sim.flush_webhooks()
        _wait(lambda: sandbox.state.get(oid)["status"] == "delivered", timeout=30, what="delivered on MALL")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=45)
    assert proc.returncode == 0, err
    assert sandbox.state.get(oid)["delivered_at"]
    assert err.count("shop webhook shoptet: 1 order(s) noted for the next poll") == 3  # all three updates, by webhook
    assert "signature does not match any configured key; refused (401)" in err
    assert [p.body["status"] for p in applied_status_puts(sandbox, oid)] == ["shipping", "shipped", "delivered"]
    assert len(sim.orders_for_external(f"MALL-{oid}")) == 1
    assert API_TOKEN not in out + err and HOOK_TOKEN not in err


def test_sigkill_of_the_daemon_between_shop_create_and_record_no_duplicate_and_one_confirm(tmp_path, sandbox, sim):
    """The daemon is killed -9 while the shop has created the order but its answer has not arrived, so the
    shop's order code is recorded nowhere; after the restart the order is found by externalCode."""
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
    assert not (tmp_path / "shoptet-state" / "orders" / f"{oid}.json").exists()  # killed before the record
    assert len(sim.orders_for_external(f"MALL-{oid}")) == 1 and not sandbox.state.get(oid)["confirmed"]
    posts = sim.server.requests.count(("POST", "/api/orders"))
    assert posts == 1

    proc = cli(config, tmp_path, "run", popen=True)
    try:
        _wait(lambda: (tmp_path / "shoptet-state" / "orders" / f"{oid}.json").exists(), timeout=30,
              what="the shop order recorded after the restart")
        [order] = sim.orders_for_external(f"MALL-{oid}")
        sim.admin_update(order["code"], status_name="Vyřizuje se")  # no webhook registered: the poll reads it
        _wait(lambda: sandbox.state.get(oid)["status"] == "shipping", timeout=30, what="shipping on MALL")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=45)
    assert proc.returncode == 0, err
    assert len(sim.orders_for_external(f"MALL-{oid}")) == 1
    assert sim.server.requests.count(("POST", "/api/orders")) == posts  # found again, not created again
    confirms = [p for p in sandbox.request_log.puts(oid) if p.applied and (p.body or {}).get("confirmed") is True]
    assert len(confirms) == 1 and sandbox.state.get(oid)["confirmed"]
