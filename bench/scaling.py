"""Scaling: a sync pass with 100 changes over ledgers of 1 k .. 1 M orders (filled with bulk inserts), and the
shop feed parse of 10 k and 100 k rows (time and tracemalloc peak)."""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

from bench.common import SandboxProcess, Shop, StatementCounter, http_counts, now, shop_rows, tempdir, write_feed

FINAL_MIX = ["delivered"] * 14 + ["cancelled"] * 3 + ["returned", "shipped", "shipping"]
CHUNK = 20_000


def fill_ledger(ledger, n: int, seed: int = 1) -> float:
    """Add ``n`` old orders with SQLAlchemy executemany (driver-level rows, so 1 M orders take seconds, not
    minutes): each order with one done shop change and one event, as a ledger that ran for years has.
    Returns the seconds it took."""
    from datetime import datetime

    rng = random.Random(seed)
    t0 = now()
    at = (datetime.now() - timedelta(days=400)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with ledger.write() as c:
        for start in range(1, n + 1, CHUNK):
            ids = range(start, min(n, start + CHUNK - 1) + 1)
            orders, changes, events = [], [], []
            for oid in ids:
                status = FINAL_MIX[rng.randrange(len(FINAL_MIX))]
                orders.append((oid, f"S{oid}", status, 1, at, 0, 0, "Jana Nováková", "PPL", status, f"{oid:032x}",
                               at, at, "open", 0, at, at))
                changes.append((f"shop:{oid}:{status}", oid, "shop", "status", status, status, "{}", "done", "push",
                                1, at, at, at))
                events.append((oid, at, "pushed", f"MALL accepted {status}"))
            c.exec_driver_sql(
                "INSERT INTO orders (mall_order_id, shop_order_id, mall_status, mall_confirmed, mall_read_at, mdp, "
                "test, customer, delivery_method, shop_status, shop_fingerprint, shop_seen_at, handed_at, "
                "handed_status, needs_confirm, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", orders)
            c.exec_driver_sql(
                "INSERT INTO changes (key, mall_order_id, origin, kind, shop_status, target_status, payload, state, "
                "reason, attempts, created_at, updated_at, done_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                changes)
            c.exec_driver_sql("INSERT INTO events (mall_order_id, at, kind, message) VALUES (?, ?, ?, ?)", events)
    return now() - t0


def sync_pass(sandbox: SandboxProcess, size: int, folder: Path, changes: int = 100, passes: int = 3) -> dict:
    """Fill a ledger with ``size`` orders, then ``passes`` sync passes with ``changes`` new changes each; the median
    pass is reported (each pass's statement count too: they must be equal)."""
    from sqlalchemy import insert

    from connector.ledger import schema as s
    from connector.ledger.repo import utcnow
    from connector.sync.deadlines import check_deadlines
    from connector.sync.runner import Services, sync_once

    shop = Shop(folder, sandbox.url)
    services = Services(shop.config())
    try:
        fill_s = fill_ledger(services.ledger, size)
        raw = services.ledger.engine.raw_connection()  # a ledger in steady state: the fill's WAL written back
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
        runs = []
        for _ in range(passes):
            ids = sandbox.create_orders(changes)
            t = utcnow()
            with services.ledger.write() as c:  # the changed orders are known from a read an hour ago (stale)
                c.execute(insert(s.orders), [{
                    "mall_order_id": oid, "mall_status": "open", "mall_confirmed": False,
                    "mall_read_at": t - timedelta(hours=1), "mdp": False, "test": False, "needs_confirm": False,
                    "created_at": t, "updated_at": t} for oid in ids])
            services.ledger.engine.dispose()  # start the pass with new connections, like a new process
            shop.write_feed(shop_rows(ids, "packing"))
            sandbox.clear_requests()
            counter = StatementCounter(services.ledger.engine)
            t0, c0 = now(), time.process_time()
            summary = sync_once(services, wait_for_settle=False, sweep=True)
            elapsed, cpu = now() - t0, time.process_time() - c0
            statements = counter.count
            counter.reset()
            t0 = now()
            check_deadlines(services.ledger)
            housekeeping_s = now() - t0
            counter.reset()
            t0 = now()
            services.ledger.health()
            health_s = now() - t0
            counter.close()
            if summary.push.pushed != changes:
                raise RuntimeError(f"size {size}: pushed {summary.push.pushed} of {changes}")
            runs.append({"pass_s": elapsed, "pass_cpu_s": cpu, "statements": statements, "http": http_counts(sandbox.requests()),
                         "housekeeping_s": housekeeping_s, "health_s": health_s})
        mid = sorted(runs, key=lambda r: r["pass_s"])[len(runs) // 2]
        db = Path(folder / "ledger.db")
        return {"orders": size, "fill_s": fill_s, **mid, "pass_times": [r["pass_s"] for r in runs],
                "pass_cpu_s": statistics.median(r["pass_cpu_s"] for r in runs),
                "pass_statements": [r["statements"] for r in runs],
                "housekeeping_s": statistics.median(r["housekeeping_s"] for r in runs),
                "health_s": statistics.median(r["health_s"] for r in runs), "db_mb": db.stat().st_size / 2**20}
    finally:
        services.close()


def feed_parse(rows: int, folder: Path) -> dict:
    """Parse a generic CSV feed of ``rows`` rows through the adapter: seconds (best of 5) and tracemalloc peak."""
    from zoneinfo import ZoneInfo

    from adapters.generic_csv.adapter import GenericCsvAdapter
    from connector.config import GenericCsvConfig

    path = folder / f"feed-{rows}.csv"
    data = shop_rows(list(range(10_000_000, 10_000_000 + rows)), "shipped")
    for i, r in enumerate(data):
        r["delivered_at"] = "2026-11-20 14:30:00" if i % 3 == 0 else ""
        r["tracking_url"] = f"https://www.ppl.cz/vyhledat-zasilku?shipmentId={r['tracking_number']}"
    write_feed(path, data)
    adapter = GenericCsvAdapter(GenericCsvConfig(source=str(path), settle_s=0), ZoneInfo("Europe/Prague"))
    times, cpu = [], []
    for _ in range(5):
        gc.collect()
        t, c = now(), time.process_time()
        feed = adapter.read_feed()
        times.append(now() - t)
        cpu.append(time.process_time() - c)
        assert len(feed.rows) == rows, (len(feed.rows), feed.problems[:3])
        del feed
    gc.collect()
    tracemalloc.start()
    feed = adapter.read_feed()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del feed
    return {"rows": rows, "seconds": min(times), "cpu_s": min(cpu), "peak_mib": peak / 2**20,
            "file_mib": path.stat().st_size / 2**20}


def run(sizes=(1_000, 10_000, 100_000, 1_000_000), feed_sizes=(10_000, 100_000)) -> dict:
    passes = []
    with SandboxProcess() as sandbox:
        with tempdir("warm") as folder:  # warm the sandbox and the imports; not reported
            sync_pass(sandbox, 100, folder)
        for size in sizes:
            with tempdir(f"scale-{size}") as folder:
                passes.append(sync_pass(sandbox, size, folder))
    with tempdir("feed") as folder:
        feeds = [feed_parse(n, folder) for n in feed_sizes]
    return {"passes": passes, "feeds": feeds}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="1000,10000,100000,1000000")
    p.add_argument("--feeds", default="10000,100000")
    a = p.parse_args()
    print(json.dumps(run(tuple(int(x) for x in a.sizes.split(",")), tuple(int(x) for x in a.feeds.split(","))),
                     indent=2))
