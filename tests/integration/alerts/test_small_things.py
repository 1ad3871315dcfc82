"""issue 14's smaller things: `sandbox --help` lists the operator endpoints; `ledger list --since` and old
skipped changes hidden unless --all; times in [shop] timezone with the zone named once, ISO with offset in JSON."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import update

from connector.ledger import schema as s
from connector.ledger import open_ledger
from tests.support.worlds import CsvShop

pytestmark = pytest.mark.e2e


def test_sandbox_help_lists_every_operator_endpoint_and_each_answers(sandbox):
    from click.testing import CliRunner

    from connector.cli import main

    # In-process: the help's curl example carries a made-up client_id the subprocess log scan would flag.
    out = CliRunner().invoke(main, ["sandbox", "--help"])
    assert out.exit_code == 0
    listed = re.findall(r"^\s+(GET|POST|DELETE) (/_sandbox/\S*)", out.output, re.M)
    assert ("GET", "/_sandbox/orders") in listed and ("POST", "/_sandbox/orders/{id}/events") in listed
    assert len(listed) >= 12
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    with httpx.Client(base_url=sandbox.url, timeout=10) as c:
        for method, path in listed:
            if method != "GET":
                continue
            r = c.get(path.replace("{id}", str(oid)))
            assert r.status_code == 200, (path, r.status_code)  # every listed GET exists on the real server


@pytest.fixture
def shop(tmp_path, sandbox):
    return CsvShop(tmp_path, sandbox)


def test_ledger_list_since_and_old_skipped_hidden_unless_all(shop, sandbox):
    a, b, c = [o["id"] for o in sandbox.state.create_orders(3, status="open")]
    shop.write_feed([{"mall_order_id": a, "status": "Nějaký stav"}, {"mall_order_id": b, "status": "Jiný stav"},
                     {"mall_order_id": c, "status": "shipped"}])  # two unmapped (skipped), one failed
    assert shop.cli("sync-once", "--no-sweep").returncode == 2
    ledger = open_ledger(f"sqlite:///{shop.folder / 'ledger.db'}")
    try:
        old = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(days=8)
        with ledger.write() as conn:
            conn.execute(update(s.changes).where(s.changes.c.mall_order_id == a).values(updated_at=old))
    finally:
        ledger.close()

    def orders(*args):
        r = shop.cli("ledger", "list", "--format", "json", *args)
        assert r.returncode == 0, r.stderr
        return sorted(x["mall_order_id"] for x in json.loads(r.stdout))

    assert orders() == sorted([b, c])  # the 8-day-old skipped change is hidden
    assert orders("--all") == sorted([a, b, c])
    table = shop.cli("ledger", "list")
    assert "1 skipped change(s) older than 7 days not shown (--all shows them)" in table.stdout
    assert orders("--all", "--since", (datetime.now() - timedelta(days=3)).strftime("%Y-%m-%d")) == sorted([b, c])
    assert orders("--since", "2999-01-01") == []
    bad = shop.cli("ledger", "list", "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr and "yesterday" in bad.stderr


def test_times_in_the_shop_zone_to_the_second_and_iso_with_offset_in_json(shop, sandbox):
    (a,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    shop.write_feed([{"mall_order_id": a, "status": "Nějaký stav"}])
    shop.cli("sync-once", "--no-sweep")
    table = shop.cli("ledger", "list")
    assert "updated (Europe/Prague)" in table.stdout
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?!\.)", table.stdout)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d+", table.stdout)  # no microseconds
    js = json.loads(shop.cli("ledger", "list", "--format", "json").stdout)
    stamp = datetime.fromisoformat(js[0]["updated"])
    assert stamp.utcoffset() in (timedelta(hours=1), timedelta(hours=2))  # Prague, winter or summer
    assert abs(stamp - datetime.now(timezone.utc)) < timedelta(minutes=10)
    show = shop.cli("ledger", "show", str(a))
    assert "(times in Europe/Prague)" in show.stdout and "history (Europe/Prague):" in show.stdout
    assert "UTC" not in show.stdout and not re.search(r"\d\d:\d\d:\d\d\.\d+", show.stdout)


def test_times_follow_a_configured_zone(tmp_path, sandbox):
    shop = CsvShop(tmp_path, sandbox)
    text = shop.config_path.read_text().replace('[shop]\n', '[shop]\ntimezone = "America/New_York"\n')
    shop.config_path.write_text(text)
    (a,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    shop.write_feed([{"mall_order_id": a, "status": "Nějaký stav"}])
    shop.cli("sync-once", "--no-sweep")
    js = json.loads(shop.cli("ledger", "list", "--format", "json").stdout)
    assert datetime.fromisoformat(js[0]["updated"]).utcoffset() in (timedelta(hours=-5), timedelta(hours=-4))
    assert "updated (America/New_York)" in shop.cli("ledger", "list").stdout


def test_outbox_file_names_carry_the_shop_zone(shop, sandbox):
    from zoneinfo import ZoneInfo

    (a,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    before = datetime.now(ZoneInfo("Europe/Prague")).replace(microsecond=0, tzinfo=None)
    assert shop.cli("sync-once").returncode == 0
    after = datetime.now(ZoneInfo("Europe/Prague")).replace(tzinfo=None)
    [name] = [p.name for p in shop.outbox.iterdir() if p.name.startswith("orders-")]
    m = re.fullmatch(r"orders-(\d{8}T\d{6})(CET|CEST)-(\d{6})\.csv", name)
    assert m, name
    stamp = datetime.strptime(m.group(1), "%Y%m%dT%H%M%S")
    assert before - timedelta(seconds=1) <= stamp <= after  # Prague wall-clock time, not UTC
    rows = shop.outbox_rows("orders-")
    assert [int(r["mall_order_id"]) for r in rows] == [a]
