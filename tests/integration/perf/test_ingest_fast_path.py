"""Webhook ingest (issue 17 item 4): the SQLite inbox writes straight on the sqlite3 cursor inside the ledger's own
write transaction, storing exactly what the SQLAlchemy Core path stores; the receiver logs one summary line per
minute instead of one INFO line per delivery. Counts and stored bytes, never times."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from connector.ledger import open_ledger
from connector.ledger import inbox as inbox_module
from connector.metrics import Metrics
from receiver.app import create_app
from tests.integration.perf.conftest import count_sql

TOKEN = "ingest-token-" + "Hq7wZ2mPx9Lc4Vb8NtR3"


def _raw_rows(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT mall_order_id, source, typeof(received_at), length(received_at), attempts, "
                          "next_attempt_at, last_error, state, error_class, reason FROM inbox "
                          "ORDER BY mall_order_id").fetchall()


def _fill(path) -> None:
    led = open_ledger(f"sqlite:///{path}")
    try:
        assert led.inbox.enqueue([5, 3, 3, 9]) == 3
        assert led.inbox.enqueue([9, 11], source="sweep") == 1  # 9 waits already
        assert sorted(led.inbox.due(10)) == [3, 5, 9, 11]
    finally:
        led.close()


def test_fast_path_stores_what_the_core_path_stores(tmp_path, monkeypatch):
    _fill(tmp_path / "fast.db")
    monkeypatch.setattr(inbox_module._SqliteInbox, "usable", staticmethod(lambda c: False))
    _fill(tmp_path / "core.db")
    fast, core = _raw_rows(tmp_path / "fast.db"), _raw_rows(tmp_path / "core.db")
    assert fast == core
    assert [r[0] for r in fast] == [3, 5, 9, 11] and fast[0][7] == "waiting" and fast[0][4] == 0
    assert [r[1] for r in fast] == ["webhook", "webhook", "webhook", "sweep"]


def test_fast_path_sends_no_statement_through_sqlalchemy_but_its_transaction(tmp_path):
    led = open_ledger(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        with count_sql(led.engine) as sql:
            led.inbox.enqueue([1, 2, 3])
        assert [x.strip().upper() for x, _ in sql.statements] == ["BEGIN IMMEDIATE"]
        assert sql.commits == 1 and sql.write_txns == 1
        with led.read() as c:  # and the rows are read back by Core as datetimes
            from connector.ledger import schema as s
            from sqlalchemy import select

            rows = c.execute(select(s.inbox.c.mall_order_id, s.inbox.c.received_at)).all()
        assert [r[0] for r in rows] == [1, 2, 3] and all(r[1].year >= 2024 for r in rows)
    finally:
        led.close()


def test_other_dialects_take_the_core_statements(tmp_path, monkeypatch):
    led = open_ledger(f"sqlite:///{tmp_path / 'l.db'}")
    monkeypatch.setattr(inbox_module._SqliteInbox, "usable", staticmethod(lambda c: False))
    try:
        with count_sql(led.engine) as sql:
            led.inbox.enqueue([1, 2, 3])
        assert len(sql.matching(r"^\s*INSERT INTO inbox")) == 1 and len(sql.matching(r"^\s*SELECT")) == 1
    finally:
        led.close()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def app_and_clock(tmp_path):
    led = open_ledger(f"sqlite:///{tmp_path / 'l.db'}")
    clock = Clock()
    app = create_app(ledger=led, tokens=[TOKEN], metrics=Metrics(), instance_id="t", clock=clock)
    yield app, clock, led
    led.close()


def test_one_info_line_per_minute_however_many_deliveries(app_and_clock, caplog):
    app, clock, led = app_and_clock
    client = app.test_client()
    with caplog.at_level(logging.INFO, logger="receiver.app"):
        for i in range(50):
            r = client.post(f"/webhooks/mall/{TOKEN}", data=f"[{i + 1}]")
            assert r.status_code == 202 and r.get_json() == {"accepted": 1, "queued": 1}
            assert r.headers["Content-Type"] == "application/json"
        lines = [x.getMessage() for x in caplog.records if x.getMessage().startswith("webhook:")]
        assert lines == ["webhook: 1 order ids received, 1 new in the inbox"]
        clock.t += 61
        client.post(f"/webhooks/mall/{TOKEN}", data="[1, 1000]")
    lines = [x.getMessage() for x in caplog.records if x.getMessage().startswith("webhook:")]
    assert lines[1] == ("webhook: 50 deliveries with 51 order ids received, 50 new in the inbox "
                        "(since the last such line)")
    assert led.inbox.depth() == 51
