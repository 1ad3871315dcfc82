"""Load of the delivery path, counted (statements, transactions, requests), never timed."""

from __future__ import annotations

import pytest

from connector.sync.runner import Services, sync_once
from tests.integration.carriers.conftest import carriers_toml, shipped_order
from tests.integration.perf.conftest import count_sql, feed_rows
from tests.support.worlds import CsvShop

pytestmark = pytest.mark.e2e

N = 5_000


def test_a_feed_with_tracking_numbers_and_dates_is_recorded_in_batches(tmp_path, sandbox):
    shop = CsvShop(tmp_path, sandbox)
    rows = [{**r, "tracking_number": f"Z{r['mall_order_id']:010d}", "carrier": "Zásilkovna",
             "delivered_at": "2026-11-30 10:00:00"} for r in feed_rows(range(6_000_000, 6_000_000 + N), "packing")]
    services = Services(shop.config())
    try:
        shop.write_feed(rows)
        with count_sql(services.ledger.engine) as first:
            services.outbound.poll_shop()
        shop.write_feed([{**r, "delivered_at": "2026-11-30 11:00:00"} for r in rows])  # every row changes again
        with count_sql(services.ledger.engine) as second:
            services.outbound.poll_shop()
    finally:
        services.close()
    chunks = N // 500
    for sql in (first, second):
        assert len(sql.writes_to("parcels")) <= 3 * chunks, len(sql.writes_to("parcels"))
        assert sql.write_txns <= chunks + 1


def test_a_pass_over_watched_parcels_that_are_not_due_writes_nothing_and_calls_nobody(tmp_path, sandbox, sims):
    rows = []
    for i in range(30):
        oid, shipped = shipped_order(sandbox)
        rows.append({"mall_order_id": oid, "status": "shipped", "tracking_number": f"Z{8100000000 + i}",
                     "carrier": "Packeta"})
    shop = CsvShop(tmp_path, sandbox, extra=carriers_toml(sims))
    shop.write_feed(rows)
    services = Services(shop.config())
    try:
        first = sync_once(services, sweep=False)  # asks Packeta once per parcel: not found, next in 4 h
        calls, mall_requests = sims["packeta"].request_count(), len(sandbox.request_log)
        with count_sql(services.ledger.engine) as sql:
            again = services.delivery.run()
    finally:
        services.close()
    assert first.delivery.polled == 30 and first.delivery.calls == 30
    assert again.watched == 30 and again.polled == 0
    assert sims["packeta"].request_count() == calls and len(sandbox.request_log) == mall_requests
    assert sql.write_txns == 0 and len(sql) <= 8, sql.statements


def test_stuck_and_untrackable_parcels_cost_no_write_per_pass(tmp_path, sandbox, sims):
    from datetime import timedelta, timezone

    stuck, shipped = shipped_order(sandbox)
    untrackable, _ = shipped_order(sandbox)
    shop = CsvShop(tmp_path, sandbox, extra=carriers_toml(sims))
    shop.write_feed([{"mall_order_id": stuck, "status": "shipped", "tracking_number": "Z8200000001", "carrier": "Packeta"},
                     {"mall_order_id": untrackable, "status": "shipped", "tracking_number": "XX-1", "carrier": ""}])
    services = Services(shop.config())
    try:
        later = shipped + timedelta(days=12)
        services.delivery.clock = lambda: later.astimezone(timezone.utc)
        first = sync_once(services, sweep=False)
        with count_sql(services.ledger.engine) as sql:
            again = services.delivery.run()
        actions = [a["kind"] for a in services.ledger.actions.open() if a["mall_order_id"] in (stuck, untrackable)]
    finally:
        services.close()
    assert first.delivery.stuck == 2 and again.stuck == 0 and again.polled == 0
    assert sorted(actions) == ["not_delivered", "not_delivered"]
    assert sql.write_txns == 0, sql.statements


def test_parcels_past_their_age_are_closed_in_one_transaction_per_pass(tmp_path, sandbox, sims):
    """A ledger catching up on old shipped orders (e.g. one upgraded from before carrier tracking) closes each
    pass's batch in one transaction, not one per order."""
    from datetime import timedelta, timezone

    from connector.ledger.types import ParcelState

    orders = [shipped_order(sandbox) for _ in range(40)]
    shop = CsvShop(tmp_path, sandbox, extra=carriers_toml(sims))
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": f"Z83000000{i:02d}",
                      "carrier": "Packeta"} for i, (oid, _) in enumerate(orders)])
    services = Services(shop.config())
    try:
        sync_once(services, sweep=False)  # recorded and watched; Packeta asked once each
        latest = max(shipped for _, shipped in orders)
        later = latest + timedelta(days=services.config.carriers.max_age_days + 1)
        services.delivery.clock = lambda: later.astimezone(timezone.utc)
        with count_sql(services.ledger.engine) as sql:
            services.delivery.run()
        with services.ledger.read() as c:
            rows = [services.ledger.parcels.get(c, oid) for oid, _ in orders]
    finally:
        services.close()
    assert all(r is not None and r.state == ParcelState.EXPIRED for r in rows), [r and r.state for r in rows]
    assert sql.write_txns == 1, sql.statements  # the 40 closes (parcel, event, action) together
