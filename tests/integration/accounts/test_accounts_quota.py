"""issue 17 on top of issue 18: the batched verification asks each account for its own orders only, and the MALL
calls of each account are counted as that account's (`mall-connector stats --account`).

Real sandboxes over HTTP (one per account) behind one API address (tests/support/accounts_world.py)."""

from __future__ import annotations

import json

import pytest

from connector.sandbox.state import FIRST_PURCHASE_ID
from connector.sync.runner import Services, sync_once
from tests.support.accounts_world import CZ_ID, SK_FIRST_PURCHASE, SK_ID, MallFront, TwoAccountShop

pytestmark = pytest.mark.e2e


def _id_filter(entry) -> set[int]:
    raw = entry.query.get("id", "")
    assert raw.startswith("in:"), entry.query
    return {int(x) for x in raw[3:].split(",")}


def test_verification_and_call_counts_stay_with_each_account(tmp_path, make_sandbox):
    cz, sk = make_sandbox(client_id=CZ_ID, max_page_size=100), make_sandbox(client_id=SK_ID, max_page_size=100)
    sk.state._next_purchase = FIRST_PURCHASE_ID + SK_FIRST_PURCHASE
    front = MallFront({CZ_ID: cz, SK_ID: sk})
    shop = TwoAccountShop(tmp_path, front)
    text = shop.config_path.read_text(encoding="utf-8")
    shop.config_path.write_text(text.replace("sweep_interval_s = 3600\n", "sweep_interval_s = 3600\nverify_window_s = 0\n"),
                                encoding="utf-8")
    cz_ids = [o["id"] for o in cz.state.create_orders(2, kind="normal", status="open")]
    sk_ids = [o["id"] for o in sk.state.create_orders(3, kind="normal", status="open")]
    services = Services(shop.config())
    try:
        assert services.config.sync.verify_window_s == 0
        sync_once(services)  # each account's sweep, one read and one confirm per order, then the verification
        sync_once(services, sweep=False)
    finally:
        services.close()
        front.close()
    for sandbox, mine in ((cz, cz_ids), (sk, sk_ids)):
        confirms = [e for e in sandbox.request_log.puts() if e.body == {"confirmed": True}]
        assert sorted(e.order_id for e in confirms) == sorted(mine)
        verify = [e for e in sandbox.request_log.find("GET", "/v1/orders") if "id" in e.query]
        assert len(verify) == 1 and _id_filter(verify[0]) == set(mine)  # one batched call, its own orders only

    def calls(account: str) -> dict:
        done = shop.cli("stats", "--days", "1", "--format", "json", "--account", account)
        assert done.returncode == 0, done.stderr
        (today,) = json.loads(done.stdout)
        return today

    for account, sandbox, n in (("cz", cz, 2), ("sk", sk, 3)):
        today = calls(account)
        assert (today["confirm"], today["read"], today["verify"]) == (n, n, 1)
        assert today["total"] == len(sandbox.request_log.entries())  # every call this account made, and no other
    bad = shop.cli("stats", "--account", "czz")
    assert bad.returncode == 2 and "did you mean 'cz'" in bad.stderr
