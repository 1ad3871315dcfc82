"""issue 18, done when: a CZ and an SK account share one CSV shop; each order's push goes to the account that
owns it. Two sandboxes (distinct client_ids) behind one API address, the daemon as a subprocess
(`mall-connector run`), MALL's webhooks routed by the token in the URL; every PUT counted on each sandbox."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from connector.ledger import open_ledger
from connector.sandbox.state import FIRST_PURCHASE_ID
from tests.support.accounts_world import (CZ_ID, SK_FIRST_PURCHASE, SK_ID, TOK_CZ, TOK_SK, MallFront, TwoAccountShop,
                                  status_puts)
from tests.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.system]


def _wait(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def world(tmp_path, make_sandbox):
    cz = make_sandbox(client_id=CZ_ID, webhook_interval_s=3600)  # webhooks only when the test flushes them
    sk = make_sandbox(client_id=SK_ID, webhook_interval_s=3600)
    sk.state._next_purchase = FIRST_PURCHASE_ID + SK_FIRST_PURCHASE  # SK's ids never meet CZ's
    front = MallFront({CZ_ID: cz, SK_ID: sk})
    port = free_port()
    shop = TwoAccountShop(tmp_path, front, listen=f"127.0.0.1:{port}")
    proc = shop.popen("run")
    try:
        _wait(lambda: _healthy(port) or proc.poll() is not None, "the daemon's receiver")
        assert proc.poll() is None, proc.stderr.read()
        yield shop, cz, sk, port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        front.close()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _sweeps(box) -> int:
    return len(box.request_log.find("GET", "/v1/orders/unconfirmed"))


def test_cz_and_sk_share_one_csv_shop_each_push_goes_to_its_account(world):
    shop, cz, sk, port, proc = world
    # The start-up sweep asked each account once; after it, new orders arrive only by webhook.
    _wait(lambda: _sweeps(cz) >= 1 and _sweeps(sk) >= 1, "the first sweep of both accounts")
    cz_ids = [o["id"] for o in cz.state.create_orders(3, status="open")]
    sk_ids = [o["id"] for o in sk.state.create_orders(2, status="open")]
    cz.webhook_url = f"http://127.0.0.1:{port}/webhooks/mall/{TOK_CZ}"
    sk.webhook_url = f"http://127.0.0.1:{port}/webhooks/mall/{TOK_SK}"
    assert sorted(cz.flush_webhooks()) == sorted(cz_ids) and sorted(sk.flush_webhooks()) == sorted(sk_ids)

    # MALL → shop: every order reaches the one outbox, and is confirmed on its own account.
    def handed() -> set[int]:
        return {int(r["mall_order_id"]) for r in shop.outbox_rows("orders-")}

    _wait(lambda: handed() == set(cz_ids + sk_ids), "all orders in the shop's outbox")
    _wait(lambda: all(cz.state.get(i)["confirmed"] for i in cz_ids)
          and all(sk.state.get(i)["confirmed"] for i in sk_ids), "every order confirmed on its account")

    # Shop → MALL: the shop packs every order; each push goes to the account that owns the order.
    shop.write_feed([{"mall_order_id": oid, "status": "packing"} for oid in cz_ids + sk_ids])
    _wait(lambda: all(cz.state.get(i)["status"] == "shipping" for i in cz_ids)
          and all(sk.state.get(i)["status"] == "shipping" for i in sk_ids), "every order shipping on its account")
    time.sleep(1.5)  # one more poll: nothing may follow
    for box, mine, theirs in ((cz, cz_ids, sk_ids), (sk, sk_ids, cz_ids)):
        assert {e.order_id for e in box.request_log.puts()} == set(mine)
        for oid in mine:
            assert [e.body["status"] for e in status_puts(box, oid)] == ["shipping"], oid
        # Zero cross-account calls: the other account's orders were never asked of or sent to this one.
        assert [e for e in box.request_log.entries()
                if e.order_id in theirs or any(str(oid) in str(e.query) for oid in theirs)] == []
    assert all(e.status_code < 400 for box in (cz, sk) for e in box.request_log.puts())

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    # Every order's rows carry its account, learned from the webhook's token.
    ledger = open_ledger(shop.config().ledger.url, migrate_schema=False)
    try:
        for oid in cz_ids + sk_ids:
            want = "cz" if oid in cz_ids else "sk"
            known = ledger.accounts.lookup(oid)
            assert (known.account, known.source) == (want, "webhook"), oid
            assert ledger.orders.get(oid).account == want
            assert {ch.account for ch in ledger.changes.list(order_id=oid)} == {want}
    finally:
        ledger.close()


def test_check_and_config_check_name_each_account(tmp_path, make_sandbox):
    """`config check` says where each account's secrets came from; `check` asks MALL about each client_id."""
    cz = make_sandbox(client_id=CZ_ID)
    front = MallFront({CZ_ID: cz})  # SK's client_id is unknown to this MALL: its line must say so
    try:
        shop = TwoAccountShop(tmp_path, front)
        r = shop.cli("config", "check")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "account cz: client_id from the config file ([accounts.cz] client_id); 1 webhook token(s)" in r.stdout
        assert "account sk: client_id from the config file ([accounts.sk] client_id)" in r.stdout
        r = shop.cli("check")
        assert "✓ account cz: MALL at" in r.stdout and "accepts the client_id" in r.stdout
        assert "✗ account sk: MALL rejects the client_id (401)" in r.stdout
        assert CZ_ID not in r.stdout + r.stderr and SK_ID not in r.stdout + r.stderr
    finally:
        front.close()
