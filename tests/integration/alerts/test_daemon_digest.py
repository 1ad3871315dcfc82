"""The real daemon (`mall-connector run`, a subprocess) sends its alert digest to a real webhook sink on
loopback: one message for several problems, urgent ones at once, resolved once (digest_s = 1)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.conftest import free_port
from tests.support.sinks import WebhookReceiver
from tests.support.worlds import CsvShop

pytestmark = pytest.mark.e2e
TOKEN = "digest-token-Pk3Wq8Zm5Rt2Xv7Ln4Hc"  # >= 128 bits, not repetitive (issue 16 item 7)


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def resolved(hook) -> str:
    """The "Resolved" sections of every message so far."""
    return "\n".join(r["json"]["text"].partition("Resolved (")[2] for r in hook.requests)


@pytest.fixture
def hook():
    h = WebhookReceiver()
    yield h
    h.close()


def test_daemon_digest_groups_problems_urgent_at_once_and_resolves(tmp_path, sandbox, hook):
    shop = CsvShop(tmp_path, sandbox, receiver_listen=f"127.0.0.1:{free_port()}", tokens=[TOKEN],
                   sync="poll_interval_s = 1\ndrain_interval_s = 1\nsweep_interval_s = 30\n",
                   extra=f'[alerts]\nwebhook_url = "{hook.url}"\ndigest_s = 1\nrepeat_after_s = 3600\n')
    a, b = [o["id"] for o in sandbox.state.create_orders(2, status="open")]
    shop.write_feed([{"mall_order_id": a, "status": "Čeká na dodavatele"},
                     {"mall_order_id": b, "status": "delivered", "delivered_at": "2026-13-01"}])
    proc = shop.popen("run")
    try:
        wait_for(lambda: hook.requests, what="the first digest")
        time.sleep(2.5)  # a few more polls: nothing is sent again within repeat_after_s
        first = [r["json"] for r in hook.requests]
        assert len(first) == 1, [m["title"] for m in first]
        text = first[0]["text"]
        assert first[0]["title"].startswith("2 new")
        assert "Čeká na dodavatele" in text and f"{shop.feed}:3" in text and "2026-13-01" in text
        assert "Times in Europe/Prague" in text and "seen on" in text

        os.remove(shop.feed)  # the feed goes away: urgent after [shop] unreadable_polls_alert (3) polls
        wait_for(lambda: any(r["json"]["title"] == "shop feed unreadable" for r in hook.requests),
                 what="the urgent alert")
        shop.write_feed([{"mall_order_id": a, "status": "new"}, {"mall_order_id": b, "status": "new"}])
        wait_for(lambda: "shop feed unreadable" in resolved(hook) and "Čeká na dodavatele" in resolved(hook)
                 and "1 row rejected" in resolved(hook), what="all three resolved")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    titles = [r["json"]["title"] for r in hook.requests]
    assert titles.count("shop feed unreadable") == 1
    assert resolved(hook).count("shop feed unreadable") == 1  # resolved exactly once
    assert hook.url not in err and "T0K3N" not in err  # the webhook URL is a secret
