"""WooCommerce end to end: the MALL sandbox and the WooCommerce simulator over real HTTP, the real sync."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.woocommerce.simulator import WooSimulator
from connector.sync.runner import Services, sync_once
from tests.conftest import TEST_CLIENT_ID

pytestmark = pytest.mark.e2e


@pytest.fixture
def woo():
    with WooSimulator(key="ck_e2e", secret="cs_e2e") as s:
        yield s


def services(tmp_path, sandbox, woo) -> Services:
    from connector.config import load_config

    path = tmp_path / "config.toml"
    path.write_text(f"""[mall]
base_url = "{sandbox.url}"
client_id = "{TEST_CLIENT_ID}"
[ledger]
url = "sqlite:///ledger.db"
[sync]
retry_base_s = 0.05
retry_max_s = 0.2
[shop]
adapter = "woocommerce"
[shop.woocommerce]
base_url = "{woo.url}"
consumer_key = "ck_e2e"
consumer_secret = "cs_e2e"
state_dir = "woo-state"
""", encoding="utf-8")
    return Services(load_config(path))


def tick(woo, s):
    woo.clock_offset += timedelta(seconds=10)  # the shop's clock moves on between the steps


def test_full_order_life_and_a_customer_cancel(tmp_path, sandbox, woo):
    a, b = [o["id"] for o in sandbox.state.create_orders(2, status="open")]
    svc = services(tmp_path, sandbox, woo)
    try:
        sync_once(svc)
        [oa], [ob] = woo.orders_for_mall_id(str(a)), woo.orders_for_mall_id(str(b))
        assert oa["created_via"] == "mall" and oa["status"] == "processing"
        sync_once(svc)
        assert len(woo.orders_for_mall_id(str(a))) == 1  # never twice
        tick(woo, svc)
        woo.admin_update(oa["id"], status="on-hold")
        sync_once(svc)
        assert sandbox.state.get(a)["status"] == "shipping"
        tick(woo, svc)
        woo.admin_update(oa["id"], status="completed", tracking="DR1234567CZ", provider="PPL")
        sync_once(svc)
        shipped = sandbox.state.get(a)
        assert shipped["status"] == "shipped" and shipped["tracking_number"] == "DR1234567CZ"
        sandbox.state.mall_event(b, "customer_cancel")
        sync_once(svc)
        assert woo.orders[ob["id"]]["status"] == "cancelled"
        assert any(n["note"].startswith("MALL: ") for n in woo.notes[ob["id"]])
        assert len(woo.orders_for_mall_id(str(b))) == 1
    finally:
        svc.close()
