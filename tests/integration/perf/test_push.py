"""Pushing: one PUT per change; MALL state read in batches; ledger writes batched; exactly once kept."""

from __future__ import annotations

from datetime import timedelta

from connector.ledger.repo import utcnow
from connector.sync.runner import Services, sync_once
from tests.integration.perf.conftest import count_sql, feed_rows, gets_of_orders, list_calls
from tests.support.worlds import applied_status_puts


def _known(services, ids, *, read_ago: timedelta, status: str = "open") -> None:
    """The orders as the ledger knows them from an earlier read (by webhook) ``read_ago``."""
    at = utcnow() - read_ago
    with services.ledger.write() as c:
        services.ledger.orders.insert_many(c, [{"mall_order_id": oid, "mall_status": status, "mall_confirmed": False,
                                           "mall_read_at": at} for oid in ids])


def test_pushing_100_changes_whose_state_is_fresh_does_not_get_each_order(shop, sandbox):
    ids = [o["id"] for o in sandbox.state.create_orders(100, status="open")]
    services = Services(shop.config())
    try:
        _known(services, ids, read_ago=timedelta(seconds=10))
        shop.write_feed(feed_rows(ids, "packing"))
        sandbox.request_log.clear()
        summary = sync_once(services, sweep=False)
        assert summary.push.pushed == 100
        assert gets_of_orders(sandbox) == [] and list_calls(sandbox) == []
        assert len(sandbox.request_log.puts()) == 100
    finally:
        services.close()


def test_stale_or_unknown_states_are_refreshed_with_one_list_call_per_100_orders(shop, sandbox):
    ids = [o["id"] for o in sandbox.state.create_orders(150, status="open")]
    sandbox.state.create_orders(50, status="open")  # others on MALL, not in the feed
    services = Services(shop.config())
    try:
        _known(services, ids[:80], read_ago=timedelta(hours=2))  # stale; the other 70 are unknown
        shop.write_feed(feed_rows(ids, "packing"))
        sandbox.request_log.clear()
        summary = sync_once(services, sweep=False)
        assert summary.push.pushed == 150
        assert gets_of_orders(sandbox) == []
        # Two batched refreshes (100 + 50 ids), each paged as MALL pages: at most 10 orders a page, so 15 list
        # calls in all against 150 GETs one by one.
        assert summary.push.list_reads == 2
        assert sandbox.max_page_size == 10 and len(list_calls(sandbox)) == 15
        assert all(len(applied_status_puts(sandbox, oid)) == 1 for oid in ids)
    finally:
        services.close()


def test_a_list_that_ignores_the_id_filter_falls_back_to_one_get_per_order_without_paging_it_all(shop, sandbox):
    sandbox.state.create_orders(300, status="open")  # the orders an unfiltered list would bring first
    ids = [o["id"] for o in sandbox.state.create_orders(20, status="open")]
    services = Services(shop.config())
    real_iter = services.client.iter_orders

    def ignoring_id_filter(**kw):  # a MALL that drops the id filter
        kw.pop("id", None)
        return real_iter(**kw)

    services.client.iter_orders = ignoring_id_filter
    try:
        shop.write_feed(feed_rows(ids, "packing"))
        sandbox.request_log.clear()
        summary = sync_once(services, sweep=False)
        assert summary.push.pushed == 20
        assert len(list_calls(sandbox)) == 1  # stopped at the first page; never pages through every order
        assert len(gets_of_orders(sandbox)) == 20
        assert services.outbound.list_refresh is False
    finally:
        services.close()


def test_blocked_and_test_orders_are_found_by_the_batched_read_too(shop, sandbox):
    blocked = [o["id"] for o in sandbox.state.create_orders(3, status="blocked")]
    tests = [o["id"] for o in sandbox.state.create_orders(3, kind="test", status="open")]
    services = Services(shop.config())
    try:
        shop.write_feed(feed_rows(blocked + tests, "packing"))
        sandbox.request_log.clear()
        summary = sync_once(services, sweep=False)
        assert summary.push.pushed == 3 and summary.push.skipped == 3  # blocked: waiting for payment
        assert gets_of_orders(sandbox) == [] and len(list_calls(sandbox)) == 1
    finally:
        services.close()


def test_ledger_commits_per_push_are_batched_not_two_per_change(shop, sandbox):
    ids = [o["id"] for o in sandbox.state.create_orders(200, status="open")]
    services = Services(shop.config())
    try:
        shop.write_feed(feed_rows(ids, "packing"))
        services.outbound.poll_shop()
        with count_sql(services.ledger.engine) as sql:
            result = services.outbound.push_due()
        assert result.pushed == 200
        # Before: claim + done + read snapshot = 3 commits and ~20 statements per change.
        assert sql.write_txns <= 12, sql.write_txns
        assert len(sql) <= 60, len(sql)
    finally:
        services.close()


def test_two_changes_of_one_order_in_one_batch_are_decided_one_after_the_other(shop, sandbox):
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    services = Services(shop.config())
    try:
        shop.write_feed(feed_rows([oid], "packing"))
        services.outbound.poll_shop()  # change 1: shipping
        shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "T1",
                          "tracking_url": "https://t/1"}])
        services.outbound.poll_shop()  # change 2: shipped, while change 1 is still pending
        result = services.outbound.push_due()
        assert result.pushed == 2
        bodies = [e.body for e in sandbox.request_log.puts(oid)]
        assert bodies == [{"status": "shipping", "confirmed": True},
                          {"status": "shipped", "tracking_number": "T1", "tracking_url": "https://t/1"}]
    finally:
        services.close()
