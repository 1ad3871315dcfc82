"""issue 17: [mall] reserve_share. With the daily budget nearly spent (the sandbox's rate-limit budget, over real
HTTP), optional calls wait: frequent sweeps, verification reads, `orders list --refresh`. Pushes and
confirmations go on, one alert goes out and clears itself when the budget recovers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.alerts import Alerter
from connector.daemon import evaluate_alerts
from connector.ledger.rows import utcnow
from connector.sandbox.faults import Faults
from connector.sync.ratelimit import in_reserve, quota_of
from connector.sync.runner import Services, sync_once
from tests.support.worlds import CsvShop

pytestmark = pytest.mark.e2e
DAY = 86400


def later():
    return utcnow() + timedelta(seconds=901)


def _spend_until(services, sandbox, left: int) -> None:
    """Spend the sandbox's daily budget with plain reads until ``left`` calls remain."""
    while True:
        services.client.stats(days=1)
        q = quota_of(services.client)
        assert q.window == "day" and q.day_limit == 100
        if q.day_remaining <= left:
            return


def test_below_the_reserve_optional_calls_wait_pushes_and_confirms_go_on_and_one_alert_clears(tmp_path, make_sandbox):
    # A day limit of 1000 (the tightest window once the budget fault is off), replaced by the fault's 100 meanwhile.
    sandbox = make_sandbox(max_page_size=100, webhook_interval_s=3600,
                           quota_windows=((DAY, "d", 1000), (3600, "h", 50_000), (60, "m", 10_000)))
    shop = CsvShop(tmp_path, sandbox)  # [sync] verify_window_s = 900: verified by the explicit calls below
    services = Services(shop.config())
    alerter = Alerter(services.config.alerts, services.ledger, tz=services.config.shop.timezone)
    try:
        assert services.config.mall.reserve_share == 0.1
        sandbox.faults = Faults(rate_limit_budget=100, rate_limit_window_s=DAY)
        first = [o["id"] for o in sandbox.state.create_orders(2, kind="normal", status="open")]
        sandbox.state.drain_changed()  # their webhook is lost: the sweep finds them
        sync_once(services)  # sweeps (finds the 2), reads, confirms; they wait for their verification window
        assert services.ledger.verifications.count() == 2
        _spend_until(services, sandbox, 9)
        assert in_reserve(services.client, 0.1)

        # In the reserve: a new order (by webhook) and a shop change still go through ...
        (new,) = [o["id"] for o in sandbox.state.create_orders(1, kind="normal", status="open")]
        services.ledger.inbox.enqueue(sandbox.state.drain_changed(), source="webhook")
        shop.write_feed([{"mall_order_id": first[0], "status": "packing", "shop_order_id": "S1"}])
        sandbox.request_log.clear()
        summary = sync_once(services)
        services.inbound.verify(now=later())  # the window has passed, but verification reads are optional
        log = sandbox.request_log.entries()
        assert summary.push.pushed == 1 and summary.inbound.confirmed == 1
        assert sorted(e.order_id for e in log if e.method == "PUT") == sorted([first[0], new])
        # ... but no sweep (one ran within the hour) and no verification list.
        assert not [e for e in log if e.path in ("/v1/orders/unconfirmed", "/v1/orders")]
        assert services.ledger.verifications.count() == 3  # still waiting, not dropped
        assert summary.inbound.sweep_failed and "reserve" in summary.inbound.sweep_failed

        # `orders list --refresh` is optional too: refused with the reason, the ledger not touched by MALL.
        before = len(sandbox.request_log)
        done = shop.cli("orders", "list", "--refresh")
        assert done.returncode == 1 and "reserve" in done.stderr, done.stderr
        assert len(sandbox.request_log) == before

        # One alert while it lasts ...
        for _ in range(2):
            evaluate_alerts(alerter, services.ledger, services.config, unauthorized=False, rate_limited_for_s=None,
                            quota=quota_of(services.client))
        assert [k for k in alerter.open_keys() if k == "mall_quota_reserve"] == ["mall_quota_reserve"]

        # ... cleared when the budget recovers (MALL tells a day count above the reserve again): and the waiting
        # verifications go out.
        sandbox.faults = Faults()
        services.client.stats(days=1)
        q = quota_of(services.client)
        assert (q.window, q.day_limit) == ("day", 1000) and q.day_remaining > 100
        assert not in_reserve(services.client, 0.1)
        evaluate_alerts(alerter, services.ledger, services.config, unauthorized=False, rate_limited_for_s=None,
                        quota=quota_of(services.client))
        assert "mall_quota_reserve" not in alerter.open_keys()
        sandbox.request_log.clear()
        services.inbound.verify(now=later())
        assert len(sandbox.request_log.find("GET", "/v1/orders")) == 1
        assert services.ledger.verifications.count() == 0
    finally:
        services.close()


def test_reserve_share_zero_turns_the_reserve_off(tmp_path, make_sandbox):
    sandbox = make_sandbox()
    shop = CsvShop(tmp_path, sandbox)
    services = Services(shop.config())
    try:
        sandbox.faults = Faults(rate_limit_budget=100, rate_limit_window_s=DAY)
        _spend_until(services, sandbox, 5)
        assert in_reserve(services.client, 0.1)
        assert not in_reserve(services.client, 0.0)
    finally:
        services.close()
