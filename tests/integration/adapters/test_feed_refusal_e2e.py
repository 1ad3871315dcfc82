"""A refused feed over the whole stack (the sandbox on loopback): the refusal is one failed poll,
named in the summary, nothing reaches MALL, the unreadable-feed alert fires, and the next good feed
is synced as usual."""

from __future__ import annotations

import os
import time

import pytest

from connector.alerts import Alerter
from connector.config import load_config
from connector.daemon import evaluate_alerts
from connector.sync.runner import Services, sync_once
from tests.conftest import TEST_CLIENT_ID

pytestmark = pytest.mark.e2e


def write_feed(path, rows, n):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("mall_order_id;status\n" + "".join(f"{oid};{status}\n" for oid, status in rows), encoding="utf-8")
    os.replace(tmp, path)
    t = time.time() - 10 + n * 0.001  # settled, and a new mtime each time
    os.utime(path, (t, t))


def test_a_refused_feed_fails_that_poll_only_and_alerts(tmp_path, sandbox):
    feed = tmp_path / "shop-orders.csv"
    config = tmp_path / "config.toml"
    config.write_text(f"""[mall]
base_url = "{sandbox.url}"
client_id = "{TEST_CLIENT_ID}"
[ledger]
url = "sqlite:///ledger.db"
[shop]
adapter = "generic_csv"
unreadable_polls_alert = 2
[shop.generic_csv]
source = "shop-orders.csv"
settle_s = 0
max_rows = 3
""", encoding="utf-8")
    ids = [o["id"] for o in sandbox.state.create_orders(4, status="open")]
    write_feed(feed, [(oid, "packing") for oid in ids], 1)  # 4 rows: over max_rows
    sent = []

    class Sink:
        name = "test"

        def send(self, title, text):
            sent.append(title)

    services = Services(load_config(config, environ={}))
    try:
        alerter = Alerter(services.config.alerts, services.ledger, senders=[Sink()])
        for _ in range(2):
            summary = sync_once(services, sweep=False)
            assert summary.poll.unavailable == f"{feed}: refused: more than 3 rows (limit max_rows = 3)"
            evaluate_alerts(alerter, services.ledger, services.config, unauthorized=False, rate_limited_for_s=None)
        assert sandbox.request_log.puts() == []
        assert sent == ["shop feed unreadable"]

        write_feed(feed, [(oid, "packing") for oid in ids[:3]], 2)  # within the limit again
        summary = sync_once(services, sweep=False)
        assert summary.poll.unavailable is None and summary.push.pushed == 3
        assert {sandbox.state.get(oid)["status"] for oid in ids[:3]} == {"shipping"}
        assert services.ledger.kv.get("shop_feed_failures") == "0"
    finally:
        services.close()
