"""An order the shop's feed names and the ledger never saw is asked of each account once; the answer is kept.

Real sandboxes over HTTP (one per account) behind one API address (tests/support/accounts_world.py)."""

from __future__ import annotations

import pytest

from connector.ledger.types import ChangeState
from connector.sandbox.state import FIRST_PURCHASE_ID
from connector.sync.runner import Services, sync_once
from tests.support.accounts_world import CZ_ID, SK_FIRST_PURCHASE, SK_ID, MallFront, TwoAccountShop, gets_of, status_puts

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(tmp_path, make_sandbox):
    cz, sk = make_sandbox(client_id=CZ_ID), make_sandbox(client_id=SK_ID)
    sk.state._next_purchase = FIRST_PURCHASE_ID + SK_FIRST_PURCHASE  # SK's ids never meet CZ's
    front = MallFront({CZ_ID: cz, SK_ID: sk})
    shop = TwoAccountShop(tmp_path, front)
    services = Services(shop.config())
    yield shop, services, cz, sk
    services.close()
    front.close()


def test_unknown_order_is_looked_up_once_per_account_and_the_answer_kept(world):
    shop, services, cz, sk = world
    (sk_order,) = [o["id"] for o in sk.state.create_orders(1, status="open")]
    nowhere = 999_000_002  # in neither account
    shop.write_feed([{"mall_order_id": sk_order, "status": "packing"},
                     {"mall_order_id": nowhere, "status": "packing"}])
    sync_once(services, sweep=False)  # no sweep: nothing but the lookup can tell whose the orders are

    lookup = services.ledger.accounts.lookup
    assert lookup(sk_order).account == "sk" and lookup(sk_order).source == "lookup"
    assert lookup(nowhere).account is None and lookup(nowhere).asked == {"cz", "sk"}
    # Each account was asked once about the unknown order; the SK one was not asked of CZ again.
    assert len(gets_of(cz, nowhere)) == 1 and len(gets_of(sk, nowhere)) == 1
    assert len(gets_of(cz, sk_order)) == 1
    assert cz.request_log.puts() == []
    # The order reached the shop through SK, was confirmed there, and its change goes to SK only.
    for _ in range(3):
        sync_once(services, sweep=False)
    assert [e.body["status"] for e in status_puts(sk, sk_order)] == ["shipping"]
    assert sk.state.get(sk_order)["status"] == "shipping"
    assert len(gets_of(cz, sk_order)) == 1  # never asked again
    # Reported: the change of the order no account has failed, with the reason and the accounts asked.
    (failed,) = services.ledger.changes.list(states=(ChangeState.FAILED,))
    assert failed.mall_order_id == nowhere and "MALL does not know this order" in failed.reason
    assert "none of the MALL accounts (cz, sk)" in failed.last_error
    # A new change of that order (the shop moves it on) does not ask the accounts again.
    shop.write_feed([{"mall_order_id": sk_order, "status": "packing"},
                     {"mall_order_id": nowhere, "status": "shipped", "tracking_number": "Z123",
                      "tracking_url": "https://t.example/Z123"}])
    sync_once(services, sweep=False)
    assert len(gets_of(cz, nowhere)) == 1 and len(gets_of(sk, nowhere)) == 1
    states = {c.target_status: c.state for c in services.ledger.changes.list(order_id=nowhere)}
    assert states == {"shipping": ChangeState.FAILED, "shipped": ChangeState.FAILED}
    # Every row of the SK order carries its account.
    assert services.ledger.orders.get(sk_order).account == "sk"


def test_an_account_mall_rejects_does_not_hold_up_the_others(world):
    """CZ's client_id is revoked (MALL answers 401): SK's changes are still pushed; CZ's wait, not counted."""
    shop, services, cz, sk = world
    (cz_order,) = [o["id"] for o in cz.state.create_orders(1, status="open")]
    (sk_order,) = [o["id"] for o in sk.state.create_orders(1, status="open")]
    sync_once(services)  # the sweep: both orders reach the shop through their own account, confirmed there
    assert cz.state.get(cz_order)["confirmed"] and sk.state.get(sk_order)["confirmed"]
    assert services.ledger.accounts.owners([cz_order, sk_order]) == {cz_order: "cz", sk_order: "sk"}
    front = services.client.clients["cz"]  # every call of account cz now meets MALL's 401
    revoked = shop.front.by_client_id.pop(CZ_ID)
    shop.write_feed([{"mall_order_id": cz_order, "status": "packing"}, {"mall_order_id": sk_order, "status": "packing"}])
    sync_once(services, sweep=False)
    assert [e.body["status"] for e in status_puts(sk, sk_order)] == ["shipping"]
    assert status_puts(cz, cz_order) == []
    (waiting,) = services.ledger.changes.list(order_id=cz_order, origin="shop")
    assert waiting.state == ChangeState.PENDING and waiting.attempts == 0  # the 401 counts against no change
    shop.front.by_client_id[CZ_ID] = revoked  # the partner fixed the account
    sync_once(services, sweep=False)
    assert [e.body["status"] for e in status_puts(cz, cz_order)] == ["shipping"]
    assert front is services.client.clients["cz"]


def test_sync_once_account_pushes_only_that_accounts_orders(world):
    """`mall-connector sync-once --account sk` (a subprocess): SK's change is pushed, CZ's waits for its pass."""
    shop, services, cz, sk = world
    (cz_order,) = [o["id"] for o in cz.state.create_orders(1, status="open")]
    (sk_order,) = [o["id"] for o in sk.state.create_orders(1, status="open")]
    r = shop.cli("sync-once")  # both orders arrive through the sweep and are confirmed on their own account
    assert r.returncode == 0, r.stdout + r.stderr
    shop.write_feed([{"mall_order_id": cz_order, "status": "packing"}, {"mall_order_id": sk_order, "status": "packing"}])
    r = shop.cli("sync-once", "--account", "sk")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [e.body["status"] for e in status_puts(sk, sk_order)] == ["shipping"]
    assert status_puts(cz, cz_order) == []
    sweeps = len(cz.request_log.find("GET", "/v1/orders/unconfirmed"))
    r = shop.cli("sync-once", "--account", "cz", "--no-sweep")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [e.body["status"] for e in status_puts(cz, cz_order)] == ["shipping"]
    assert len(status_puts(sk, sk_order)) == 1 and len(cz.request_log.find("GET", "/v1/orders/unconfirmed")) == sweeps
    r = shop.cli("sync-once", "--account", "hu")
    assert r.returncode == 2 and "'hu' is not an account" in r.stderr
