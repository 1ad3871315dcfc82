"""The Alerter's digest on a real SMTP sink and a real webhook sink, on a hand-moved clock."""

from __future__ import annotations

import pytest

from connector.alerts import Alerter
from connector.config import AlertsConfig
from connector.ledger import open_ledger
from tests.support.sinks import FakeClock


@pytest.fixture
def ledger(tmp_path):
    led = open_ledger("sqlite:///" + str(tmp_path / "l.db"))
    yield led
    led.close()


def alerter(ledger, smtp=None, hook=None, **kw):
    args = dict(digest_s=300, repeat_after_s=3600)
    if smtp is not None:
        args.update(email_to=("ops@example.com",), smtp_host="127.0.0.1", smtp_port=smtp.port)
    if hook is not None:
        args["webhook_url"] = hook.url
    args.update(kw)
    clock = FakeClock()
    return Alerter(AlertsConfig(**args), ledger, clock=clock), clock


def test_one_message_per_channel_lists_everything_waiting(ledger, smtp, hook):
    a, clock = alerter(ledger, smtp, hook)
    a.observe("feed_rows:bad_date", "1 row rejected", "shop.csv:3: bad date")
    clock.advance(100)
    a.observe("unmapped_status:x", "status 'x' unmapped", "2 orders")
    assert a.flush() is False  # the oldest has waited 100 s of 300
    clock.advance(200)
    assert a.flush() is True
    assert len(smtp.messages) == 1 and len(hook.requests) == 1
    assert smtp.messages[0]["subject"] == "[mall-connector] 2 new: 1 row rejected and more"
    for text in (smtp.messages[0]["body"], hook.requests[0]["json"]["text"]):
        assert "New (2):" in text and "shop.csv:3: bad date" in text and "2 orders" in text
    assert a.flush() is False  # nothing more to say


def test_urgent_goes_at_once_and_takes_the_waiting_ones_along(ledger, hook):
    a, clock = alerter(ledger, hook=hook)
    a.observe("unmapped_status:x", "status 'x' unmapped", "2 orders")
    clock.advance(10)
    a.observe("mall_unauthorized", "MALL rejects the account", "401", urgent=True)
    assert a.flush() is True
    [post] = [r["json"] for r in hook.requests]
    assert post["title"] == "2 new: MALL rejects the account and more"  # the urgent one names the message
    assert "URGENT: MALL rejects the account" in post["text"] and "status 'x' unmapped" in post["text"]


def test_a_problem_gone_before_its_digest_is_never_sent(ledger, hook):
    a, clock = alerter(ledger, hook=hook)
    a.observe("feed_rows:duplicate", "1 row rejected", "dup")
    clock.advance(60)
    a.clear("feed_rows:duplicate", "fixed")
    clock.advance(600)
    assert a.flush() is False and hook.requests == []


def test_repeat_at_most_once_per_repeat_after_and_resolved_once(ledger, hook):
    a, clock = alerter(ledger, hook=hook)
    a.observe("handoff_failing", "cannot hand orders to the shop", "EACCES")
    clock.advance(300)
    assert a.flush() is True
    for _ in range(11):  # 55 min of polls
        clock.advance(300)
        a.observe("handoff_failing", "cannot hand orders to the shop", "EACCES")
        assert a.flush() is False
    clock.advance(300)  # an hour after it was sent: due again, and it waits for the digest like anything new
    a.observe("handoff_failing", "cannot hand orders to the shop", "EACCES")
    assert a.flush() is False
    clock.advance(300)
    a.observe("handoff_failing", "cannot hand orders to the shop", "EACCES")
    assert a.flush() is True
    assert hook.requests[-1]["json"]["title"] == "Still open: cannot hand orders to the shop"
    assert "seen on 14 polls" in hook.requests[-1]["json"]["text"]
    a.clear("handoff_failing", "The outbox is writable again.")
    clock.advance(300)
    assert a.flush() is True and a.flush() is False
    assert hook.requests[-1]["json"]["title"] == "Resolved: cannot hand orders to the shop"
    assert "The outbox is writable again." in hook.requests[-1]["json"]["text"]
    assert len(hook.requests) == 3


def test_failed_channel_keeps_the_digest_owed(ledger, hook):
    hook.status = 500
    a, clock = alerter(ledger, hook=hook)
    a.observe("mall_unauthorized", "MALL rejects the account", "401", urgent=True)
    assert a.flush() is False
    hook.status = 200
    clock.advance(61)  # past the sender's back-off
    assert a.flush() is True
    assert [r["json"]["title"] for r in hook.requests] == ["MALL rejects the account"] * 2


def test_without_a_channel_the_digest_is_logged(ledger, caplog):
    a, clock = alerter(ledger)
    a.observe("feed_unreadable", "shop feed unreadable", "file not found", urgent=True)
    with caplog.at_level("WARNING", logger="mall_connector.alerts"):
        assert a.flush() is True
    assert "ALERT digest: shop feed unreadable" in caplog.text


def test_a_digest_of_many_problems_is_bounded_and_urgent_ones_come_first(ledger, hook):
    a, clock = alerter(ledger, hook=hook)
    a.observe_many([(f"change_failed:{i}", f"order {i}: change failed", "x" * 5000, False) for i in range(300)])
    a.observe("feed_unusable", "shop feed unusable", "no column 'status'", urgent=True)
    assert a.flush() is True
    [post] = [r["json"] for r in hook.requests]
    text = post["text"]
    assert "New (301):" in text and "and 276 more" in text
    assert text.index("URGENT: shop feed unusable") < text.index("order 0: change failed")
    assert len(text) < 40_000  # under what chat webhooks accept
    assert a.flush() is False  # everything was told (listed or counted)


def test_a_broken_rule_neither_silences_the_others_nor_resolves_its_own(ledger, hook, caplog):
    from connector.alert_rules import Facts, Problem, Rule, evaluate

    calls = {"n": 0}

    def flaky(f):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("the ledger query broke")
        return [Problem("flaky:1", "flaky problem", "seen once")]

    rules = (Rule("flaky:", "a flaky rule", "-", "-", "no", flaky),
             Rule("steady", "a steady rule", "-", "-", "yes", lambda f: [Problem("steady", "steady", "s", True)]))
    a, clock = alerter(ledger, hook=hook)
    facts = Facts(ledger=ledger, config=None)
    evaluate(a, facts, rules=rules)
    clock.advance(300)
    with caplog.at_level("ERROR", logger="mall_connector.alerts"):
        evaluate(a, Facts(ledger=ledger, config=None), rules=rules)
    assert "alert rule flaky: failed" in caplog.text
    assert a.open_keys() == {"flaky:1", "steady"}  # not reported resolved because its check broke
    assert [r["json"]["title"] for r in hook.requests] == ["2 new: steady and more"]
