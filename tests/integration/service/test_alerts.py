"""Alerter against a real SMTP sink and a real webhook receiver on loopback, with a real ledger."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from connector.alerts import Alerter, EmailSender, WebhookSender
from connector.config import AlertsConfig
from connector.ledger import schema as s
from connector.logs import register_secret
from tests.conftest import free_port

HOUR = 3600


def config(smtp=None, hook=None, **kw) -> AlertsConfig:
    args = dict(repeat_after_s=HOUR)
    if smtp is not None:
        args.update(email_to=("ops@example.com", "boss@example.com"), email_from="connector@example.com",
                    smtp_host="127.0.0.1", smtp_port=smtp.port)
    if hook is not None:
        args["webhook_url"] = hook.url
    args.update(kw)
    return AlertsConfig(**args)


def row(ledger, key):
    with ledger.read() as c:
        return c.execute(select(s.alerts).where(s.alerts.c.key == key)).first()


def test_one_alert_per_problem_per_period_then_a_reminder(smtp, hook, ledger, clock):
    a = Alerter(config(smtp, hook), ledger, clock=clock)

    assert a.problem("feed_unreadable", "Shop feed unreadable", "HTTP 503 from the shop") is True
    assert len(smtp.messages) == 1 and len(hook.requests) == 1
    mail = smtp.messages[0]
    assert mail["subject"] == "[mall-connector] Shop feed unreadable"
    assert mail["msg"].get_content_type() == "text/plain"
    assert mail["rcpt"] == ["<ops@example.com>", "<boss@example.com>"]
    assert "HTTP 503 from the shop" in mail["body"] and "feed_unreadable" in mail["body"]
    req = hook.requests[0]
    assert req["content_type"] == "application/json"
    assert req["json"]["title"] == "Shop feed unreadable"
    assert "HTTP 503 from the shop" in req["json"]["text"]

    for _ in range(3):  # the daemon reports it every poll; nobody hears about it again within the hour
        clock.advance(600)
        assert a.problem("feed_unreadable", "Shop feed unreadable", "HTTP 503 again") is False
    assert len(smtp.messages) == 1 and len(hook.requests) == 1

    clock.advance(HOUR - 1800)  # exactly one period after the first alert
    assert a.problem("feed_unreadable", "Shop feed unreadable", "still HTTP 503") is True
    assert len(smtp.messages) == 2 and len(hook.requests) == 2
    assert "Reminder" in smtp.messages[1]["body"] and "still HTTP 503" in smtp.messages[1]["body"]
    # issue 14: plain words; "reported 5x" read like five messages were sent.
    assert "seen on 5 polls" in smtp.messages[1]["body"] and "reported" not in smtp.messages[1]["body"]
    assert "Open since 12:00:00 (1 h)" in smtp.messages[1]["body"]  # 10:00 UTC in May = 12:00 Prague
    assert "Times in Europe/Prague" in smtp.messages[1]["body"]
    assert row(ledger, "feed_unreadable").count == 5


def test_different_problems_are_separate(hook, ledger, clock):
    a = Alerter(config(hook=hook), ledger, clock=clock)
    assert a.problem("change_failed:1", "Change failed", "order 1") is True
    assert a.problem("change_failed:2", "Change failed", "order 2") is True
    assert a.problem("change_failed:1", "Change failed", "order 1") is False
    assert len(hook.requests) == 2


def test_resolved_message_exactly_once(smtp, hook, ledger, clock):
    a = Alerter(config(smtp, hook), ledger, clock=clock)
    a.problem("mall_unauthorized", "MALL refuses the client_id", "401 on GET /v1/orders")
    clock.advance(120)

    assert a.resolved("mall_unauthorized", "MALL accepts the client_id again.") is True
    assert a.resolved("mall_unauthorized") is False
    clock.advance(5 * HOUR)
    assert a.resolved("mall_unauthorized") is False

    assert [m["subject"] for m in smtp.messages] == [
        "[mall-connector] MALL refuses the client_id",
        "[mall-connector] Resolved: MALL refuses the client_id",
    ]
    assert "MALL accepts the client_id again." in smtp.messages[1]["body"]
    assert hook.requests[1]["json"]["title"] == "Resolved: MALL refuses the client_id"
    r = row(ledger, "mall_unauthorized")
    assert r.state == "resolved" and r.resolved_at is not None
    assert a.open_problems() == []


def test_no_resolved_message_for_a_problem_never_opened(smtp, hook, ledger, clock):
    a = Alerter(config(smtp, hook), ledger, clock=clock)
    assert a.resolved("rate_limited") is False
    assert a.resolved("rate_limited", "fine") is False
    assert smtp.connections == 0 and hook.requests == []
    assert row(ledger, "rate_limited") is None


def test_a_problem_back_after_resolved_is_alerted_again(hook, ledger, clock):
    a = Alerter(config(hook=hook), ledger, clock=clock)
    a.problem("handoff_failing", "Outbox not writable", "permission denied")
    a.resolved("handoff_failing")
    clock.advance(60)
    assert a.problem("handoff_failing", "Outbox not writable", "disk full") is True
    assert [r["json"]["title"] for r in hook.requests] == [
        "Outbox not writable", "Resolved: Outbox not writable", "Outbox not writable"]
    assert row(ledger, "handoff_failing").count == 1


def test_state_survives_a_restart(smtp, ledger, clock):
    Alerter(config(smtp), ledger, clock=clock).problem("action:7", "Confirm order 7 by hand", "branch closed")
    clock.advance(300)

    restarted = Alerter(config(smtp), ledger, clock=clock)
    assert restarted.problem("action:7", "Confirm order 7 by hand", "branch closed") is False
    assert len(smtp.messages) == 1
    [p] = restarted.open_problems()
    assert p["key"] == "action:7" and p["title"] == "Confirm order 7 by hand"
    assert p["message"] == "branch closed" and p["count"] == 2 and p["last_sent_at"] is not None

    assert restarted.resolved("action:7") is True
    assert Alerter(config(smtp), ledger, clock=clock).resolved("action:7") is False
    assert len(smtp.messages) == 2


def test_failing_webhook_does_not_raise_and_is_retried(hook, ledger, clock, caplog):
    hook.status = 500
    a = Alerter(config(hook=hook), ledger, clock=clock, sender_retry_s=60)
    with caplog.at_level(logging.WARNING, logger="mall_connector.alerts"):
        assert a.problem("rate_limited", "MALL rate limit", "429 for 20 min") is False
    assert "not sent by webhook" in caplog.text and "HTTP 500" in caplog.text
    assert row(ledger, "rate_limited").last_sent_at is None  # still owed

    clock.advance(30)  # within the back-off the broken channel is not hammered
    assert a.problem("rate_limited", "MALL rate limit", "429 for 20 min") is False
    assert len(hook.requests) == 1

    hook.status = 200
    clock.advance(31)
    assert a.problem("rate_limited", "MALL rate limit", "429 for 21 min") is True
    assert len(hook.requests) == 2 and "429 for 21 min" in hook.requests[1]["json"]["text"]
    clock.advance(60)
    assert a.problem("rate_limited", "MALL rate limit", "429 for 22 min") is False
    assert len(hook.requests) == 2


def test_unreachable_smtp_server_does_not_raise(ledger, clock, caplog):
    cfg = AlertsConfig(email_to=("ops@example.com",), smtp_host="127.0.0.1", smtp_port=free_port())
    a = Alerter(cfg, ledger, clock=clock)
    with caplog.at_level(logging.WARNING, logger="mall_connector.alerts"):
        assert a.problem("feed_unreadable", "Feed", "gone") is False
        assert a.resolved("feed_unreadable") is False  # never announced: closed silently
    assert "not sent by email" in caplog.text
    assert row(ledger, "feed_unreadable").state == "resolved"


def test_smtp_refusal_is_retried_on_a_later_call(smtp, ledger, clock):
    smtp.fail = True
    a = Alerter(config(smtp), ledger, clock=clock, sender_retry_s=60)
    assert a.problem("handoff_failing", "Outbox", "EACCES") is False
    smtp.fail = False
    clock.advance(61)
    assert a.problem("handoff_failing", "Outbox", "EACCES") is True
    assert len(smtp.messages) == 1


def test_resolved_message_that_failed_is_retried(hook, ledger, clock):
    a = Alerter(config(hook=hook), ledger, clock=clock, sender_retry_s=60)
    a.problem("feed_unreadable", "Feed", "503")
    hook.status = 502
    assert a.resolved("feed_unreadable") is False
    assert a.open_problems() == []  # it is resolved; only the message is still owed
    hook.status = 200
    clock.advance(61)
    assert a.resolved("feed_unreadable") is True
    assert a.resolved("feed_unreadable") is False
    assert [r["json"]["title"] for r in hook.requests if r["json"]["title"].startswith("Resolved")] == [
        "Resolved: Feed", "Resolved: Feed"]  # the failed attempt and the delivered one


def test_one_working_channel_is_enough(smtp, hook, ledger, clock):
    hook.status = 404
    a = Alerter(config(smtp, hook), ledger, clock=clock)
    assert a.problem("mall_unauthorized", "401", "client_id revoked") is True
    clock.advance(120)
    assert a.problem("mall_unauthorized", "401", "client_id revoked") is False
    assert len(smtp.messages) == 1


def test_secrets_never_reach_an_alert(smtp, hook, ledger, clock, caplog):
    client_id = "Cl1entId-SECRET-4f2a9b"
    password = "Smtp-Pa55-SECRET-77"
    register_secret(client_id)
    cfg = config(smtp, hook, smtp_user="alerts@example.com", smtp_password=password)
    a = Alerter(cfg, ledger, clock=clock)
    text = f"GET /v1/orders?client_id={client_id}&page=2 failed; password was {password}; id {client_id}"

    with caplog.at_level(logging.DEBUG):
        assert a.problem("mall_unauthorized", f"MALL refused {client_id}", text) is True
        assert a.resolved("mall_unauthorized", f"{client_id} works again") is True

    assert smtp.messages[0]["auth"] == ("alerts@example.com", password)  # it did log in
    outgoing = [m["subject"] + m["body"] for m in smtp.messages] + [str(r["json"]) for r in hook.requests]
    with ledger.read() as c:
        stored = [r.message for r in c.execute(select(s.alerts))]
    # Our own log lines (httpx's INFO request line is silenced and redacted by logs.setup_logging).
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("mall_connector"))
    assert "ALERT mall_unauthorized" in ours
    for blob in outgoing + stored + [ours]:
        assert client_id not in blob
        assert password not in blob
        assert hook.url not in blob
    assert "client_id=***" in smtp.messages[0]["body"]


def test_without_senders_alerts_are_logged_once_per_period(ledger, clock, caplog):
    a = Alerter(config(), ledger, clock=clock)
    assert a.senders == []
    with caplog.at_level(logging.WARNING, logger="mall_connector.alerts"):
        assert a.problem("feed_unreadable", "Shop feed unreadable", "timeout") is True
        clock.advance(60)
        assert a.problem("feed_unreadable", "Shop feed unreadable", "timeout") is False
        clock.advance(HOUR)
        assert a.problem("feed_unreadable", "Shop feed unreadable", "timeout") is True
        assert a.resolved("feed_unreadable") is True
    alerts = [r for r in caplog.records if r.getMessage().startswith("ALERT ")]
    assert len(alerts) == 3 and all(r.levelno == logging.WARNING for r in alerts)
    assert "Resolved: Shop feed unreadable" in alerts[-1].getMessage()


def test_senders_from_config(smtp, hook, ledger):
    kinds = [type(x) for x in Alerter(config(smtp, hook), ledger).senders]
    assert kinds == [EmailSender, WebhookSender]
    assert Alerter(config(hook=hook), ledger, senders=[]).senders == []


def test_open_problems_lists_only_open_ones_oldest_first(ledger, clock):
    a = Alerter(config(), ledger, clock=clock)
    a.problem("rate_limited", "Rate", "429")
    clock.advance(5)
    a.problem("change_failed:9", "Change 9 failed", "422 invalid tracking\nnumber")
    clock.advance(5)
    a.problem("feed_unreadable", "Feed", "503")
    a.resolved("rate_limited")
    problems = a.open_problems()
    assert [p["key"] for p in problems] == ["change_failed:9", "feed_unreadable"]
    assert problems[0]["message"] == "422 invalid tracking\nnumber"


@pytest.mark.parametrize("key", ["", "x" * 161])
def test_bad_keys_are_refused(ledger, key):
    with pytest.raises(ValueError):
        Alerter(config(), ledger).problem(key, "t", "m")


def test_no_resolved_message_for_a_problem_nobody_was_told_about(hook, ledger, clock):
    hook.status = 500
    a = Alerter(config(hook=hook), ledger, clock=clock, sender_retry_s=60)
    assert a.problem("feed_unreadable", "Feed", "503") is False
    hook.status = 200
    clock.advance(61)  # the channel works again, but the problem is already gone
    assert a.resolved("feed_unreadable") is False
    assert len(hook.requests) == 1
    assert row(ledger, "feed_unreadable").state == "resolved"
