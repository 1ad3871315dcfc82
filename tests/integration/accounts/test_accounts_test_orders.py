"""[accounts.<name>] include_test_orders: each account's own setting decides about its MALL test orders, in
the inbound pass (handed to the shop or not) and in the housekeeping deadline check (MALL's 24-hour rule).

Two real sandboxes (CZ, SK) behind one API address (tests/support/accounts_world.py); SK syncs its test
orders, CZ does not ([mall] include_test_orders stays false)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from connector.accounts import include_test_by_account
from connector.daemon import Daemon
from connector.sandbox.state import FIRST_PURCHASE_ID
from connector.sync.deadlines import check_deadlines
from connector.sync.runner import Services, sync_once
from connector.sync.snapshot import order_from_snapshot
from tests.support.accounts_world import CZ_ID, SK_FIRST_PURCHASE, SK_ID, MallFront, TwoAccountShop

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(tmp_path, make_sandbox):
    cz, sk = make_sandbox(client_id=CZ_ID), make_sandbox(client_id=SK_ID)
    sk.state._next_purchase = FIRST_PURCHASE_ID + SK_FIRST_PURCHASE
    front = MallFront({CZ_ID: cz, SK_ID: sk})
    shop = TwoAccountShop(tmp_path, front, extra="include_test_orders = true\n")  # in [accounts.sk]
    text = shop.config_path.read_text(encoding="utf-8")
    shop.config_path.write_text(text.replace("sweep_interval_s = 3600\n",
                                             "sweep_interval_s = 3600\nconfirm_deadline_warn_h = 0.0003\n"),
                                encoding="utf-8")  # ~1 s: the daemon's housekeeping warns about every open order
    yield shop, cz, sk
    front.close()


def orders(cz, sk):
    (cz_test,) = [o["id"] for o in cz.state.create_orders(1, kind="test")]
    (sk_test,) = [o["id"] for o in sk.state.create_orders(1, kind="test")]
    (cz_real,) = [o["id"] for o in cz.state.create_orders(1)]
    return cz_test, sk_test, cz_real


def deadline_ids(ledger) -> set[int]:
    return {a["mall_order_id"] for a in ledger.actions.open() if a["kind"] == "deadline"}


def arrive(services, cz_test):
    # CZ's test order arrives by its webhook (the receiver queues it as CZ's; the token says so), the rest by the sweep.
    services.ledger.inbox.enqueue([cz_test], source="webhook", account="cz")
    return sync_once(services)


def test_each_account_hands_over_its_test_orders_by_its_own_setting(world):
    shop, cz, sk = world
    cz_test, sk_test, cz_real = orders(cz, sk)
    services = Services(shop.config())
    try:
        summary = arrive(services, cz_test)
        assert summary.inbound.ignored_test == 1
        handed = {c.mall_order_id for c in services.ledger.changes.list(origin="mall")}
        assert handed == {sk_test, cz_real}  # SK's test order is synced; CZ's is not
        assert sk.state.get(sk_test)["confirmed"] and not cz.state.get(cz_test)["confirmed"]
        assert services.ledger.orders.get(cz_test).test  # recorded, known as a test order

        # The deadline check: SK's test order counts, CZ's does not.
        ledger = services.ledger
        opened = order_from_snapshot(ledger.orders.get(sk_test).snapshot).open
        config = services.config
        check_deadlines(ledger, now=opened + timedelta(hours=21), include_test=config.mall.include_test_orders,
                        include_test_accounts=include_test_by_account(config))
        assert deadline_ids(ledger) == {sk_test, cz_real}
    finally:
        services.close()


def test_the_daemons_housekeeping_uses_each_accounts_setting(world):
    shop, cz, sk = world
    cz_test, sk_test, cz_real = orders(cz, sk)
    daemon = Daemon(shop.config(), config_path=str(shop.config_path))
    try:
        arrive(daemon.services, cz_test)
        time.sleep(1.5)  # past the ~1 s warning threshold of the config above
        daemon.job_housekeeping()
        assert deadline_ids(daemon.ledger) == {sk_test, cz_real}
    finally:
        daemon.services.close()
