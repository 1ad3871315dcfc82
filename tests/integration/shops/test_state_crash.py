"""The API shop adapters' state folder across kill -9 (adapters/shared/shopapi.py StateDir, used by
adapters/shared/api_shop.py): every file is replaced whole (temp + fsync + rename + folder fsync), and
a kill between the shop's create and the map write never makes a second shop order, also when the
attempt lookup misses (the shop's clock is off): Shoptet's unique externalCode answers 409, which is
recognised as "already created"; WooCommerce has no such key, so its lookup reads a day before the
attempt. Real simulators over real HTTP on loopback, the connector side in a subprocess killed -9."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.base import MallChange, NewOrder, NewOrderItem
from adapters.shared import shopapi
from adapters.shared.shopapi import StateDir
from adapters.shoptet import ShoptetAdapter, ShoptetConfig
from adapters.shoptet.simulator import ShoptetSimulator
from adapters.woocommerce import WooCommerceAdapter, WooCommerceConfig
from adapters.woocommerce.simulator import WooSimulator

ROOT = Path(__file__).resolve().parents[2]
TOKEN, KEY, SECRET = "shoptet-state-token", "ck_state", "cs_state"


def order(oid: int, shop_status: str, sku: str = "SKU-1") -> NewOrder:
    return NewOrder(
        mall_order_id=oid, purchase_id=oid * 10, status="open", shop_status=shop_status,
        created_at="2026-11-30 10:00:00", ship_date=None, delivery_date=None, customer_name="Jana Nováková",
        company="", street="Dlouhá 1", city="Praha", zip="11000", country="CZ", phone="+420 777 123 456",
        email="jana@example.cz", delivery_method="PPL", branch_id=None, payment_type="card", cod=0.0,
        delivery_price=99.0, currency="CZK",
        items=(NewOrderItem(item_id=sku, article_id=5, title="Hrnek", quantity=2, price=149.0, vat=21.0),))


# The connector killed -9 right after the shop accepted the POST, before the shop's code is recorded.
KILL_BEFORE_RECORD = """
from adapters.shared import shopapi
shopapi.StateDir.record_shop_order = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
"""
# A state write killed with the new content complete in its temp file, before the rename.
KILL_BEFORE_RENAME = """
from adapters.shared.shopapi import StateDir
s = StateDir(sys.argv[1])
os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
s.spool_webhook(["202"]) if sys.argv[2] == "spool" else s.record_shop_order(7, "NEW-" * 1000)
"""


def run_killed(script: str, *args: str) -> None:
    """Run ``script`` in a fresh interpreter (the connector), which must end killed by SIGKILL."""
    done = subprocess.run([sys.executable, "-c", "import os, signal, sys\n" + script, *args], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr


# -- the files themselves ------------------------------------------------------------------------

def test_a_kill_before_the_rename_leaves_the_old_map_entry_and_no_half_file_is_ever_read(tmp_path):
    state = StateDir(tmp_path / "state")
    state.record_shop_order(7, "OLD-CODE")
    state.spool_webhook(["101"])
    # Killed before the rename: the old entry stands, the half-done delivery is not a delivery.
    for what in ("map", "spool"):
        run_killed(KILL_BEFORE_RENAME, str(tmp_path / "state"), what)
    leftovers = [p.name for p in (tmp_path / "state").rglob("*.tmp")]
    assert len(leftovers) == 2, leftovers  # the killed writers' temp files, under hidden names
    again = StateDir(tmp_path / "state")
    assert again.shop_order(7) == {"code": "OLD-CODE"}
    refs, files = again.webhook_refs()
    assert refs == ["101"] and len(files) == 1
    again.record_shop_order(7, "NEXT")  # a leftover temp file never blocks the next write
    assert again.shop_order(7) == {"code": "NEXT"}


def test_state_files_are_private_and_a_planted_symlink_is_replaced_not_written_through(tmp_path):
    state = StateDir(tmp_path / "state")
    state.note_attempt(5, 1.0)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the connector's", encoding="utf-8")
    (tmp_path / "state" / "orders").mkdir()
    (tmp_path / "state" / "orders" / "5.json").symlink_to(outside)
    state.record_shop_order(5, "CODE-5")
    assert outside.read_text(encoding="utf-8") == "not the connector's"
    mapped = tmp_path / "state" / "orders" / "5.json"
    assert not mapped.is_symlink() and state.shop_order(5) == {"code": "CODE-5"}
    assert stat.S_IMODE(mapped.stat().st_mode) == 0o600
    assert state.attempt(5) is None  # the record clears the attempt


def test_two_deliveries_spooled_in_the_same_nanosecond_are_both_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(shopapi.time, "time_ns", lambda: 1_700_000_000_000_000_000)
    state = StateDir(tmp_path / "state")
    state.spool_webhook(["1"])
    state.spool_webhook(["2"])
    assert sorted(state.webhook_refs()[0]) == ["1", "2"]


# -- kill -9 between the shop's create and the map write ---------------------------------------------

@pytest.fixture
def shoptet():
    with ShoptetSimulator(token=TOKEN) as s:
        yield s


@pytest.fixture
def woo():
    with WooSimulator(key=KEY, secret=SECRET) as s:
        yield s


SHOPTET_CRASH = KILL_BEFORE_RECORD + """
from adapters.shoptet import ShoptetAdapter, ShoptetConfig
cfg = ShoptetConfig(base_url=sys.argv[1], api_token=sys.argv[3], state_dir=sys.argv[2])
ShoptetAdapter(cfg, cfg.state_dir).publish_handoff("orders-1")
"""


@pytest.mark.e2e
def test_shoptet_duplicate_external_code_on_the_retry_is_recognised_as_already_created(shoptet, tmp_path):
    # The shop's clock is two hours behind: its creationTime is before the attempt, so the lookup that
    # follows the attempt marker misses the order, and the retry's POST meets the unique externalCode.
    shoptet.clock_offset = -timedelta(hours=2)
    cfg = ShoptetConfig(base_url=shoptet.url, api_token=TOKEN, state_dir=tmp_path / "state", max_retry_wait_s=0.05)
    ShoptetAdapter(cfg, tmp_path / "state").stage_handoff("orders-1", "orders", [order(2100001, "")])
    run_killed(SHOPTET_CRASH, shoptet.url, str(tmp_path / "state"), TOKEN)
    assert len(shoptet.orders_for_external("MALL-2100001")) == 1
    assert shoptet.server.requests.count(("POST", "/api/orders")) == 1
    adapter = ShoptetAdapter(cfg, tmp_path / "state")  # the restarted connector: the batch is still staged
    assert adapter.state.attempt(2100001) is not None and adapter.state.shop_order(2100001) is None
    assert adapter.publish_handoff("orders-1") is True
    assert shoptet.server.requests.count(("POST", "/api/orders")) == 2  # the retry was refused: 409
    [o] = shoptet.orders_for_external("MALL-2100001")
    assert adapter.state.shop_order(2100001) == {"code": o["code"]} and adapter.state.attempt(2100001) is None
    assert adapter.publish_handoff("orders-1") is False  # done: nothing is created or asked again


WOO_CRASH = KILL_BEFORE_RECORD + """
from adapters.woocommerce import WooCommerceAdapter, WooCommerceConfig
cfg = WooCommerceConfig(base_url=sys.argv[1], consumer_key=sys.argv[3], consumer_secret=sys.argv[4],
                        state_dir=sys.argv[2])
WooCommerceAdapter(cfg, cfg.state_dir).publish_handoff("orders-1")
"""


@pytest.mark.e2e
def test_woocommerce_kill_after_create_with_the_shops_clock_behind_creates_no_second_order(woo, tmp_path):
    woo.clock_offset = -timedelta(hours=2)  # the order's date_created_gmt is before the attempt
    cfg = WooCommerceConfig(base_url=woo.url, consumer_key=KEY, consumer_secret=SECRET, state_dir=tmp_path / "state",
                            max_retry_wait_s=0.05)
    lacking = order(2200001, "processing", sku="NOT-IN-SHOP")
    WooCommerceAdapter(cfg, tmp_path / "state").stage_handoff("orders-1", "orders", [lacking])
    run_killed(WOO_CRASH, woo.url, str(tmp_path / "state"), KEY, SECRET)
    assert len(woo.orders_for_mall_id("2200001")) == 1
    posts = woo.server.requests.count(("POST", "/wp-json/wc/v3/orders"))
    adapter = WooCommerceAdapter(cfg, tmp_path / "state")  # the restarted connector: the batch is still staged
    assert adapter.publish_handoff("orders-1") is True
    [o] = woo.orders_for_mall_id("2200001")
    assert woo.server.requests.count(("POST", "/wp-json/wc/v3/orders")) == posts  # found, not created again
    assert adapter.state.shop_order(2200001) == {"code": str(o["id"]), "number": o["number"]}
    # The product the shop lacks was noted before the kill, so the person still hears of it.
    steps = adapter.manual_steps(lacking)
    assert "NOT-IN-SHOP" in steps and o["number"] in steps


WOO_CHANGES_CRASH = """
from adapters.woocommerce import WooCommerceAdapter, WooCommerceConfig
notes = []
add_note = WooCommerceAdapter.add_note

def add_note_then_die(self, code, text):  # killed -9 as the second change's note is about to go out
    if notes:
        os.kill(os.getpid(), signal.SIGKILL)
    notes.append(text)
    add_note(self, code, text)

WooCommerceAdapter.add_note = add_note_then_die
cfg = WooCommerceConfig(base_url=sys.argv[1], consumer_key=sys.argv[3], consumer_secret=sys.argv[4],
                        state_dir=sys.argv[2])
WooCommerceAdapter(cfg, cfg.state_dir).publish_handoff("changes-1")
"""


@pytest.mark.e2e
def test_a_publish_killed_halfway_goes_on_from_the_next_record_no_note_twice(woo, tmp_path):
    first, second = (woo.admin_create_order(str(m), status="processing") for m in (2300001, 2300002))
    changes = [MallChange(2300001, "cancelled", "cancelled", "2026-11-30 11:00:00", None, "cancelled on MALL"),
               MallChange(2300002, "cancelled", "cancelled", "2026-11-30 11:00:00", None, "cancelled on MALL")]
    cfg = WooCommerceConfig(base_url=woo.url, consumer_key=KEY, consumer_secret=SECRET, state_dir=tmp_path / "state",
                            max_retry_wait_s=0.05)
    WooCommerceAdapter(cfg, tmp_path / "state").stage_handoff("changes-1", "changes", changes)
    run_killed(WOO_CHANGES_CRASH, woo.url, str(tmp_path / "state"), KEY, SECRET)

    def mall_notes(order):
        return [n["note"] for n in woo.notes.get(order["id"], []) if n["note"].startswith("MALL: ")]

    assert mall_notes(first) == ["MALL: cancelled on MALL"] and mall_notes(second) == []
    assert woo.orders[second["id"]]["status"] == "cancelled"  # its status went out, its note did not
    adapter = WooCommerceAdapter(cfg, tmp_path / "state")  # the restarted connector
    assert adapter.publish_handoff("changes-1") is True
    assert mall_notes(first) == ["MALL: cancelled on MALL"]  # not again
    assert mall_notes(second) == ["MALL: cancelled on MALL"]
    assert adapter.publish_handoff("changes-1") is False
    assert sorted(p.name for p in (tmp_path / "state" / "staged").iterdir()) == []  # batch and progress gone
