"""A CSV shop wired to the sandbox, with a real SMTP sink and a real webhook sink on loopback (the ``smtp``
and ``hook`` fixtures of tests/support/sinks.py), and an Alerter on a hand-moved clock, so digest and
repeat periods pass without waiting."""

from __future__ import annotations

import pytest

from connector.alert_rules import Facts, evaluate
from connector.alerts import Alerter
from connector.config import AlertsConfig
from connector.sync.runner import Services, sync_once
from tests.support.sinks import FakeClock, SmtpSink, WebhookReceiver
from tests.support.worlds import CsvShop

DIGEST_S = 300
REPEAT_S = 3600


class World:
    def __init__(self, tmp_path, sandbox, smtp: SmtpSink, hook: WebhookReceiver):
        self.sandbox, self.smtp, self.hook = sandbox, smtp, hook
        self.shop = CsvShop(tmp_path, sandbox)
        self.services = Services(self.shop.config())
        self.ledger = self.services.ledger
        self.clock = FakeClock()
        cfg = AlertsConfig(email_to=("ops@example.com",), email_from="connector@example.com",
                           smtp_host="127.0.0.1", smtp_port=smtp.port, webhook_url=hook.url,
                           digest_s=DIGEST_S, repeat_after_s=REPEAT_S)
        self.alerter = Alerter(cfg, self.ledger, clock=self.clock, tz="Europe/Prague")
        self.mall_rejected: int | None = None

    def sync(self, **kw):
        kw.setdefault("sweep", False)
        return sync_once(self.services, **kw)

    def evaluate(self, *, now=None, seen: bool = True) -> None:
        facts = Facts(ledger=self.ledger, config=self.services.config, mapping=self.services.mapping(),
                      mall_rejected=self.mall_rejected)
        if now is not None:
            facts.now = now
        evaluate(self.alerter, facts, seen=seen)

    def later(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @property
    def mails(self) -> list[dict]:
        return self.smtp.messages

    @property
    def posts(self) -> list[dict]:
        return [r["json"] for r in self.hook.requests]

    def close(self) -> None:
        self.services.close()


@pytest.fixture
def world(tmp_path, sandbox, smtp, hook):
    w = World(tmp_path, sandbox, smtp, hook)
    yield w
    w.close()
