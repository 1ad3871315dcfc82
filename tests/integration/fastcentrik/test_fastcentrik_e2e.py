"""FastCentrik end to end: an XML export feed (file and URL) → the sandbox; MALL changes → needs-action list."""

from __future__ import annotations

import json

import pytest

from connector.sync.runner import sync_once
from tests.support.worlds import FcShop, feed_xml

pytestmark = pytest.mark.e2e


@pytest.fixture
def fc(tmp_path, sandbox):
    return FcShop(tmp_path, sandbox)


def test_czech_and_slovak_statuses_reach_mall(fc, sandbox):
    a, b, c, d = [o["id"] for o in sandbox.state.create_orders(4, status="open")]
    fc.write([
        {"ORDER_ID": "1", "MALL_ORDER_ID": a, "STATUS": "nevyřízená"},
        {"ORDER_ID": "2", "MALL_ORDER_ID": b, "STATUS": "Vyřizuje se"},
        {"ORDER_ID": "3", "MALL_ORDER_ID": c, "STATUS": "Vybavená", "CARRIER": "Zásilkovna", "TRACKING_NUMBER": "Z123456"},
        {"ORDER_ID": "4", "MALL_ORDER_ID": d, "STATUS": "Stornovaná"},
        {"ORDER_ID": "5", "MALL_ORDER_ID": "", "STATUS": "vyřízená"},  # the shop's own order
    ], encoding="windows-1250")
    services = fc.services()
    try:
        summary = sync_once(services, sweep=False)
    finally:
        services.close()
    assert summary.push.pushed == 3 and summary.exit_code == 0
    assert sandbox.request_log.puts(a) == []
    assert sandbox.state.get(b)["status"] == "shipping"
    shipped = sandbox.state.get(c)
    assert shipped["status"] == "shipped" and shipped["tracking_number"] == "Z123456" and "Z123456" in shipped["tracking_url"]
    assert sandbox.state.get(d)["status"] == "cancelled"


def test_order_disappearing_from_the_feed_pushes_nothing(fc, sandbox):
    a, b = [o["id"] for o in sandbox.state.create_orders(2, status="open")]
    fc.write([{"MALL_ORDER_ID": a, "STATUS": "vyřizuje se"}, {"MALL_ORDER_ID": b, "STATUS": "nevyřízená"}])
    services = fc.services()
    try:
        sync_once(services, sweep=False)
        before = len(sandbox.request_log.puts())
        fc.write([{"MALL_ORDER_ID": a, "STATUS": "vyřizuje se"}])  # b vanished
        summary = sync_once(services, sweep=False)
    finally:
        services.close()
    assert summary.poll.new_changes == 0 and len(sandbox.request_log.puts()) == before
    assert sandbox.state.get(b)["status"] == "open"


def test_unreachable_feed_alerts_after_n_polls_and_pushes_nothing(tmp_path, sandbox):
    fc = FcShop(tmp_path, sandbox, source="http://127.0.0.1:9/orders.xml")
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    services = fc.services()
    from connector.alerts import Alerter
    from connector.daemon import evaluate_alerts

    try:
        for _ in range(3):
            summary = sync_once(services, sweep=False)
            assert summary.poll.unavailable and "127.0.0.1:9" in summary.poll.unavailable
        assert services.ledger.kv.get("shop_feed_failures") == "3"
        assert sandbox.request_log.puts() == []
        # The daemon's alert rule fires once the count reaches [shop] unreadable_polls_alert (2).
        sent = []

        class Sink:
            name = "test"

            def send(self, title, text):
                sent.append((title, text))

        alerter = Alerter(services.config.alerts, services.ledger, senders=[Sink()])
        for _ in range(2):  # two evaluations, one alert
            evaluate_alerts(alerter, services.ledger, services.config, unauthorized=False, rate_limited_for_s=None)
        assert [t for t, _ in sent] == ["shop feed unreadable"]
    finally:
        services.close()


def test_mall_side_changes_become_needs_action_items(fc, sandbox, tmp_path):
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    fc.write([])
    services = fc.services()
    try:
        sync_once(services)
        sandbox.state.mall_event(oid, "customer_cancel")
        sync_once(services)
    finally:
        services.close()
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "connector", "--config", str(fc.config_path), "ledger", "list",
                          "--needs-action", "--format", "json"], capture_output=True, text=True, timeout=60)
    items = json.loads(out.stdout)
    texts = [i["what to do"] for i in items]
    assert any(f"New MALL order {oid}" in t and "nevyřízená" in t for t in texts)
    cancel = [i for i in items if "cancelled by the customer" in i["what to do"]]
    assert len(cancel) == 1 and "stornováno" in cancel[0]["what to do"]
    done = subprocess.run([sys.executable, "-m", "connector", "--config", str(fc.config_path), "ledger", "done",
                           str(cancel[0]["id"])], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    out = subprocess.run([sys.executable, "-m", "connector", "--config", str(fc.config_path), "ledger", "list",
                          "--needs-action", "--format", "json"], capture_output=True, text=True, timeout=60)
    assert all("cancelled by the customer" not in i["what to do"] for i in json.loads(out.stdout))
    # The changes also went to the CSV outbox.
    assert any(p.name.startswith("changes-") for p in (tmp_path / "outbox").iterdir())


def test_feed_over_http_with_basic_auth(tmp_path, sandbox):
    import base64
    import http.server
    import threading

    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    body = feed_xml([{"MALL_ORDER_ID": oid, "STATUS": "vyřizuje se"}])

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"exp:s3cret-pass").decode():
                self.send_response(401)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    fc = FcShop(tmp_path, sandbox, source=f"http://127.0.0.1:{srv.server_port}/export/orders",
                extra='auth_user = "exp"\nauth_password = "s3cret-pass"\n')
    services = fc.services()
    try:
        sync_once(services, sweep=False)
    finally:
        services.close()
        srv.shutdown()
    assert sandbox.state.get(oid)["status"] == "shipping"
