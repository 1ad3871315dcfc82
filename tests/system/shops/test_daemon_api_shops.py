"""The real daemon (`mall-connector run`, a subprocess) with an API shop's simulator (Shoptet, WooCommerce)
and the MALL sandbox on loopback: the order is created in the shop, `check --fix` registers the shop's
webhook at the daemon's own receiver, the simulator's signed update (Shoptet `order:update`, WooCommerce
`order.updated`) reaches /webhooks/shop/<shop>/<token>, and the statuses (shipping, shipped with tracking,
delivered) reach MALL once; a delivery with a bad signature is refused (401) and nothing is spooled. The
flow is one; what differs per shop is written out in its case below."""

from __future__ import annotations

import json
import os
import signal
import threading

import httpx
import pytest

from adapters.shared.shopapi import hmac_b64_sha256, hmac_hex_sha1
from adapters.shared.world import ShopWorld, config_text
from tests.conftest import TEST_CLIENT_ID, free_port
from tests.system.daemon.test_daemon_e2e import _wait
from tests.support.worlds import applied_status_puts

pytestmark = pytest.mark.e2e
MALL_TOKEN = "daemon-token-" + "Zq8rT2wXc5Vb9NmK4pLs"


class Shoptet:
    name = "shoptet"
    API_TOKEN, HOOK_TOKEN = "shoptet-daemon-token-4c2e", "shoptet-hook-Xk29vQp7Lm3sRt8w"
    secret_env = {"MALL_CONNECTOR_SHOPTET_API_TOKEN": API_TOKEN}
    delivered = "Doručena"  # the shop's own "the customer has it" status
    packing, shipped = "Vyřizuje se", "Vyřízena"
    event = "order:update"
    create_path = "/api/orders"

    def simulator(self):
        from adapters.shoptet.simulator import ShoptetSimulator

        sim = ShoptetSimulator(token=self.API_TOKEN)
        sim.statuses.append((88, self.delivered))
        return sim

    def section(self, sim) -> str:
        return f'base_url = "{sim.url}"\nwebhook_key = "{sim.signature_key}"\nwebhook_token = "{self.HOOK_TOKEN}"\n'

    def orders(self, sim, oid: int) -> list[dict]:
        return sim.orders_for_external(f"MALL-{oid}")

    def registered_hook(self, sim, port: int) -> str:
        [hook] = [h for h in sim.webhooks.values() if h["event"] == "order:update"]
        assert hook["url"] == f"http://127.0.0.1:{port}/webhooks/shop/shoptet/{self.HOOK_TOKEN}"
        return hook["url"]

    def forged(self, sim, order) -> tuple[bytes, dict]:
        body = json.dumps({"eshopId": sim.eshop_id, "event": "order:update", "eventInstance": order["code"]}).encode()
        return body, {"Shoptet-Webhook-Signature": hmac_hex_sha1("not-the-key", body)}

    def update(self, sim, order, status: str, tracking: str | None = None) -> None:
        sim.admin_update(order["code"], status_name=status, **({"tracking": tracking} if tracking else {}))


class WooCommerce:
    name = "woocommerce"
    KEY, API_TOKEN, HOOK_TOKEN = "ck_daemon_7d1", "cs_daemon_secret_9f4b2a", "woo-hook-Pq71vXk3Lm9sRt2w"
    HOOK_SECRET = "woo-signing-secret-5e8c1d"
    secret_env = {"MALL_CONNECTOR_WOOCOMMERCE_CONSUMER_SECRET": API_TOKEN}
    delivered = "delivered"  # a delivery plugin's status
    packing, shipped = "on-hold", "completed"
    event = "order.updated"

    @property
    def create_path(self) -> str:
        from adapters.woocommerce.simulator import PREFIX

        return f"{PREFIX}/orders"

    def simulator(self):
        from adapters.woocommerce.simulator import WooSimulator

        return WooSimulator(key=self.KEY, secret=self.API_TOKEN, statuses=[self.delivered])

    def section(self, sim) -> str:
        return (f'base_url = "{sim.url}"\nconsumer_key = "{self.KEY}"\nwebhook_secret = "{self.HOOK_SECRET}"\n'
                f'webhook_token = "{self.HOOK_TOKEN}"\n')

    def orders(self, sim, oid: int) -> list[dict]:
        return sim.orders_for_mall_id(str(oid))

    def registered_hook(self, sim, port: int) -> str:
        [hook] = [h for h in sim.webhooks.values() if h["topic"] == "order.updated"]
        assert hook["delivery_url"] == f"http://127.0.0.1:{port}/webhooks/shop/woocommerce/{self.HOOK_TOKEN}"
        assert hook["status"] == "active"
        return hook["delivery_url"]

    def forged(self, sim, order) -> tuple[bytes, dict]:
        body = json.dumps({"id": order["id"], "status": "completed"}).encode()
        return body, {"X-WC-Webhook-Topic": "order.updated",
                      "X-WC-Webhook-Signature": hmac_b64_sha256("not-the-secret", body)}

    def update(self, sim, order, status: str, tracking: str | None = None) -> None:
        sim.admin_update(order["id"], status=status, **({"tracking": tracking} if tracking else {}))


@pytest.fixture(params=[Shoptet(), WooCommerce()], ids=lambda case: case.name)
def case(request):
    return request.param


@pytest.fixture
def sim(case):
    with case.simulator() as s:
        yield s


class ApiShop(ShopWorld):
    """The daemon's folder: the shop's shipped mapping plus its delivered status, and a config whose
    receiver takes both MALL's and the shop's webhooks; the shop's API secret comes from the environment."""

    def __init__(self, folder, sandbox, sim, case, port: int):
        super().__init__(folder)
        from mappings import default_mapping_path

        shipped = default_mapping_path(case.name).read_text(encoding="utf-8")
        (folder / "mapping.toml").write_text(
            shipped.replace("[to_mall]\n", f'[to_mall]\n"{case.delivered}" = "delivered"\n', 1), encoding="utf-8")
        self.write_config(config_text(
            case.name, mall_url=sandbox.url, client_id=TEST_CLIENT_ID, mapping="mapping.toml",
            sync="poll_interval_s = 1\ndrain_interval_s = 1\nsweep_interval_s = 30\nretry_base_s = 0.05\n"
                 "retry_max_s = 0.2\n",
            sections=f'[receiver]\nlisten = "127.0.0.1:{port}"\ntokens = ["{MALL_TOKEN}"]\n'
                     f'public_url = "http://127.0.0.1:{port}"\n',
            section=case.section(sim) + f'delivered_statuses = ["{case.delivered}"]\n'))
        self.env = {**os.environ, **case.secret_env}
        self.state = folder / f"{case.name}-state"

    def run(self, *args: str):
        return self.cli(*args, env=self.env, timeout=60)

    def start(self):
        return self.popen("run", env=self.env)

    def spooled(self) -> list:
        d = self.state / "webhooks"
        return sorted(d.iterdir()) if d.is_dir() else []


def test_daemon_order_life_through_its_own_shop_webhook_receiver(tmp_path, sandbox, sim, case):
    port = free_port()
    shop = ApiShop(tmp_path, sandbox, sim, case, port)
    [oid] = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    proc = shop.start()
    try:
        _wait(lambda: len(case.orders(sim, oid)) == 1, timeout=30, what="the order in the shop")
        fix = shop.run("check", "--fix")
        assert f"registered the {case.event} webhook" in fix.stdout + fix.stderr, fix.stdout + fix.stderr
        url = case.registered_hook(sim, port)

        # a forged delivery at the daemon's receiver: refused, nothing spooled for the poll
        [order] = case.orders(sim, oid)
        body, headers = case.forged(sim, order)
        bad = httpx.post(url, content=body, headers=headers)
        assert bad.status_code == 401 and shop.spooled() == []

        case.update(sim, order, case.packing)
        sim.flush_webhooks()
        _wait(lambda: sandbox.state.get(oid)["status"] == "shipping", timeout=30, what="shipping on MALL")
        case.update(sim, order, case.shipped, tracking="DR11223344CZ")
        sim.flush_webhooks()
        _wait(lambda: sandbox.state.get(oid)["status"] == "shipped", timeout=30, what="shipped on MALL")
        assert sandbox.state.get(oid)["tracking_number"] == "DR11223344CZ"
        case.update(sim, order, case.delivered)
        sim.flush_webhooks()
        _wait(lambda: sandbox.state.get(oid)["status"] == "delivered", timeout=30, what="delivered on MALL")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=45)
    assert proc.returncode == 0, err
    assert sandbox.state.get(oid)["delivered_at"]
    # all three updates, by webhook
    assert err.count(f"shop webhook {case.name}: 1 order(s) noted for the next poll") == 3
    assert "signature does not match any configured key; refused (401)" in err
    assert [p.body["status"] for p in applied_status_puts(sandbox, oid)] == ["shipping", "shipped", "delivered"]
    assert len(case.orders(sim, oid)) == 1
    assert case.API_TOKEN not in out + err and case.HOOK_TOKEN not in err


def test_sigkill_of_the_daemon_between_shop_create_and_record_no_duplicate_and_one_confirm(tmp_path, sandbox, sim,
                                                                                            case):
    """The daemon is killed -9 while the shop has created the order but its answer has not arrived, so the
    shop's order id is recorded nowhere; after the restart the order is found by the MALL id it carries
    (Shoptet: externalCode, WooCommerce: a meta field), not created again."""
    shop = ApiShop(tmp_path, sandbox, sim, case, free_port())
    [oid] = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    created, release = threading.Event(), threading.Event()
    create = sim._create

    def create_then_hang(body, echo=True):  # the order exists in the shop; the answer waits for the kill
        order = create(body, echo)
        created.set()
        release.wait(30)
        return order

    sim._create = create_then_hang
    proc = shop.start()
    try:
        assert created.wait(30), "the daemon never created the order in the shop"
    finally:
        proc.kill()
        proc.communicate(timeout=30)
        release.set()
    sim._create = create
    assert proc.returncode == -signal.SIGKILL
    assert not (shop.state / "orders" / f"{oid}.json").exists()  # killed before the record
    assert len(case.orders(sim, oid)) == 1 and not sandbox.state.get(oid)["confirmed"]
    posts = sim.server.requests.count(("POST", case.create_path))
    assert posts == 1

    proc = shop.start()
    try:
        _wait(lambda: (shop.state / "orders" / f"{oid}.json").exists(), timeout=30,
              what="the shop order recorded after the restart")
        [order] = case.orders(sim, oid)
        case.update(sim, order, case.packing)  # no webhook registered: the poll reads it
        _wait(lambda: sandbox.state.get(oid)["status"] == "shipping", timeout=30, what="shipping on MALL")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=45)
    assert proc.returncode == 0, err
    assert len(case.orders(sim, oid)) == 1
    assert sim.server.requests.count(("POST", case.create_path)) == posts  # found again, not created again
    confirms = [p for p in sandbox.request_log.puts(oid) if p.applied and (p.body or {}).get("confirmed") is True]
    assert len(confirms) == 1 and sandbox.state.get(oid)["confirmed"]
