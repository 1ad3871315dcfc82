"""A sync pass costs the same on a young and on an old ledger: no query grows with the ledger's size."""

from __future__ import annotations

import re
from datetime import timedelta

from connector.ledger.repo import utcnow
from connector.sync.deadlines import check_deadlines
from connector.sync.runner import Services, sync_once
from tests.integration.perf.conftest import count_sql, feed_rows, fill_ledger
from tests.support.worlds import CsvShop

# Tables that grow with the ledger's age. A query may SEARCH them (by an index) but never SCAN them.
GROWING = ("orders", "changes", "events", "actions", "handoffs")


def _pass(tmp_path, sandbox, old_orders: int):
    tmp_path.mkdir()
    shop = CsvShop(tmp_path, sandbox)
    services = Services(shop.config())
    try:
        fill_ledger(services.ledger, 1, old_orders)
        ids = [o["id"] for o in sandbox.state.create_orders(20, status="open")]
        at = utcnow() - timedelta(hours=1)
        with services.ledger.write() as c:
            services.ledger.orders.insert_many(c, [{"mall_order_id": oid, "mall_status": "open", "mall_read_at": at}
                                              for oid in ids])
        shop.write_feed(feed_rows(ids, "packing"))
        with count_sql(services.ledger.engine) as sql:
            summary = sync_once(services, sweep=True)
            check_deadlines(services.ledger)
            services.ledger.health()
            services.ledger.actions.open()
            services.ledger.handoffs.open()
            services.ledger.changes.list(states=("failed",))
        assert summary.push.pushed == 20
        return sql, services.ledger.engine
    finally:
        services.close()


def test_a_sync_pass_runs_as_many_statements_on_1k_as_on_20k_orders(tmp_path, sandbox):
    small, _ = _pass(tmp_path / "a", sandbox, 1_000)
    large, _ = _pass(tmp_path / "b", sandbox, 20_000)
    assert len(large) == len(small), (len(small), len(large))
    assert large.write_txns == small.write_txns


def test_no_query_of_a_pass_scans_a_table_that_grows_with_the_ledger(tmp_path, sandbox):
    shop = CsvShop(tmp_path, sandbox)
    services = Services(shop.config())
    try:
        fill_ledger(services.ledger, 1, 2_000)
        ids = [o["id"] for o in sandbox.state.create_orders(5, status="open")]
        shop.write_feed(feed_rows(ids, "packing"))
        with count_sql(services.ledger.engine) as sql:
            sync_once(services, sweep=True)
            check_deadlines(services.ledger)
            services.ledger.health()
            services.ledger.actions.open()
            services.ledger.handoffs.open()
            services.ledger.changes.list(states=("failed",))
            services.ledger.changes.count(states=("failed", "retry", "sending"))
        selects = {(q, tuple(p) if isinstance(p, (list, tuple)) else p) for q, p in sql.statements
                   if q.lstrip().upper().startswith("SELECT")}
        scans = []
        raw = services.ledger.engine.raw_connection()
        try:
            for q, params in selects:
                plan = raw.cursor().execute("EXPLAIN QUERY PLAN " + q, params or ()).fetchall()
                for row in plan:
                    detail = row[-1]
                    m = re.match(r"SCAN (\w+)", detail)
                    if m and m.group(1) in GROWING:
                        scans.append((detail, q))
        finally:
            raw.close()
        assert not scans, scans
    finally:
        services.close()
