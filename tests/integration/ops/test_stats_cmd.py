"""issue 17: `mall-connector stats` shows the MALL calls per day by kind, from the ledger the engines fill."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from connector.sync.runner import Services, sync_once
from tests.integration.perf.conftest import count_sql
from tests.support.worlds import CsvShop

pytestmark = pytest.mark.e2e


def test_stats_counts_each_kind_of_call_a_pass_made_in_every_format(tmp_path, make_sandbox):
    sandbox = make_sandbox(max_page_size=100, webhook_interval_s=3600)
    shop = CsvShop(tmp_path, sandbox, sync="verify_window_s = 0\n")
    ids = [o["id"] for o in sandbox.state.create_orders(3, kind="normal", status="open")]
    sandbox.state.drain_changed()  # their webhook is lost: the sweep finds them
    services = Services(shop.config())
    try:
        sync_once(services)  # sweep, 3 reads, 3 confirms, 1 verify list
        shop.write_feed([{"mall_order_id": oid, "status": "packing", "shop_order_id": f"S{i}"}
                         for i, oid in enumerate(ids)])
        with count_sql(services.ledger.engine) as sql:
            sync_once(services, sweep=False)  # 3 pushes (the states are fresh: no read)
        # Counted once per pass, not per call: one UPDATE of today's push row (and its INSERT, the first time).
        assert len(sql.writes_to("mall_calls")) == 2
    finally:
        services.close()
    logged = sandbox.request_log.entries()
    assert len(logged) == 1 + 3 + 3 + 1 + 3
    today = datetime.now(timezone.utc).astimezone(ZoneInfo("Europe/Prague")).date().isoformat()

    done = shop.cli("stats", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 7 and rows[0]["day"] == today
    assert {k: rows[0][k] for k in ("push", "confirm", "read", "sweep", "list", "verify", "total", "errors")} == \
        {"push": 3, "confirm": 3, "read": 3, "sweep": 1, "list": 0, "verify": 1, "total": 11, "errors": 0}
    assert all(r["total"] == 0 for r in rows[1:])

    done = shop.cli("stats", "--days", "2", "--format", "csv")
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["day"] for r in table][:1] == [today] and len(table) == 2 and table[0]["total"] == "11"

    done = shop.cli("stats")
    assert done.returncode == 0 and today in done.stdout and "push" in done.stdout.splitlines()[0]
    assert "(days in Europe/Prague)" in done.stdout
    assert shop.cli("stats", "--days", "0").returncode == 2  # click's usage error
    assert "--days" in shop.cli("stats", "--help").stdout


def test_check_shows_every_quota_window_and_what_is_left(tmp_path, make_sandbox):
    sandbox = make_sandbox(quota_windows=((86400, "d", 5750), (3600, "h", 2875), (60, "m", 17250)))
    shop = CsvShop(tmp_path, sandbox)
    done = shop.cli("check")
    line = next((x for x in done.stdout.splitlines() if "MALL call quota" in x), None)
    assert line is not None, done.stdout
    assert "5750 per day, 2875 per hour, 17250 per minute" in line
    assert "2874 left in the hour window" in line  # check's one call so far
    assert line.startswith("✓")
