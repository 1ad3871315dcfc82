"""Reading the shop feed: unchanged rows cost nothing, changed rows are written in batches."""

from __future__ import annotations

import os
import time

from connector.sync.runner import Services
from tests.integration.perf.conftest import count_sql, feed_rows

N = 10_000


def _ids(n: int, first: int = 5_000_000) -> list[int]:
    return list(range(first, first + n))


def _touch(path) -> None:
    """New mtime (so a new fingerprint: the feed is read and parsed again), same content."""
    t = time.time() - 5 + 0.5
    os.utime(path, (t, t))


def test_poll_of_an_unchanged_10k_feed_writes_nothing_and_reads_in_chunks(shop):
    services = Services(shop.config())
    try:
        shop.write_feed(feed_rows(_ids(N), "packing"))
        first = services.outbound.poll_shop()
        assert first.new_changes == N
        with count_sql(services.ledger.engine) as sql:  # the same file again: not even parsed
            again = services.outbound.poll_shop()
        assert again.unchanged and len(sql) <= 4, sql.statements
        _touch(shop.feed)  # rewritten with the same rows: parsed, compared, nothing to write
        with count_sql(services.ledger.engine) as sql:
            same = services.outbound.poll_shop()
        assert same.rows == N and same.changed_rows == 0 and same.new_changes == 0
        # One read per 500 rows (BEGIN + SELECT of two columns), the feed fingerprint, no write transaction;
        # plus one constant read transaction per parsed feed for MALL Delivery parcel counts (issue 21:
        # connector/ledger/labels.py probes whether any order ever had one). Constant: not per row.
        assert len(sql) <= 2 * (N // 500) + 10, len(sql)
        assert not sql.writes_to("orders") and not sql.writes_to("changes") and not sql.writes_to("events")
        assert sql.write_txns <= 1  # the kv row of the feed fingerprint
        assert not sql.matching(r"SELECT .*orders\.snapshot"), "comparing the feed must not read snapshots"
    finally:
        services.close()


def test_poll_of_a_new_10k_feed_writes_rows_in_batches(shop):
    services = Services(shop.config())
    try:
        shop.write_feed(feed_rows(_ids(N), "packing"))
        with count_sql(services.ledger.engine) as sql:
            result = services.outbound.poll_shop()
        assert result.new_changes == N
        chunks = N // 500
        # A handful of statements per 500-row chunk (not per row), one commit per chunk.
        assert len(sql) <= 12 * chunks + 10, len(sql)
        assert sql.write_txns <= chunks + 1, sql.write_txns
        assert len(sql.writes_to("events")) <= chunks
    finally:
        services.close()


def test_poll_with_a_few_changed_rows_writes_only_their_chunk(shop):
    services = Services(shop.config())
    try:
        ids = _ids(N)
        rows = feed_rows(ids, "packing")
        shop.write_feed(rows)
        services.outbound.poll_shop()
        for r in rows[:3]:
            r["status"] = "shipped"
            r["tracking_number"] = f"T{r['mall_order_id']}"
            r["tracking_url"] = f"https://t/{r['mall_order_id']}"
        shop.write_feed(rows)
        with count_sql(services.ledger.engine) as sql:
            result = services.outbound.poll_shop()
        assert result.changed_rows == 3 and result.new_changes == 3
        assert sql.write_txns == 2  # the chunk with the changed rows, the feed fingerprint
    finally:
        services.close()
