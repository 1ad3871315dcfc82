"""Concurrent webhook deliveries share one transaction (one fsync), and each still returns only once stored."""

from __future__ import annotations

import threading
import time

import pytest

from connector.ledger import open_ledger
from tests.integration.perf.conftest import count_sql


@pytest.fixture
def ledger(tmp_path):
    led = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield led
    led.close()


def _callers_waiting(ledger, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    while len(ledger.inbox._pending) < n:
        assert time.monotonic() < deadline, "the callers never queued"
        time.sleep(0.005)


def test_deliveries_waiting_for_the_writer_are_committed_together(ledger):
    results: dict[int, int] = {}
    ledger.inbox._leader.acquire()  # a commit in flight: everyone arriving now queues behind it
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, ledger.inbox.enqueue([100 + i, 999])))
               for i in range(6)]
    with count_sql(ledger.engine) as sql:
        for t in threads:
            t.start()
        _callers_waiting(ledger, 6)
        ledger.inbox._leader.release()
        for t in threads:
            t.join(10)
    assert sql.write_txns == 1, sql.statements  # six deliveries, one transaction
    assert ledger.inbox.depth() == 7
    assert sorted(results.values()) == [1, 1, 1, 1, 1, 2]  # 999 counted new once, for the first in the batch


def test_a_failed_group_commit_fails_every_delivery_in_it(ledger, monkeypatch):
    from connector.ledger.db import LedgerError

    def broken(*a, **kw):
        raise LedgerError("disk is full")

    errors = []
    ledger.inbox._leader.acquire()

    def deliver(i):
        try:
            ledger.inbox.enqueue([i])
        except LedgerError as e:
            errors.append(e)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(1, 4)]
    for t in threads:
        t.start()
    _callers_waiting(ledger, 3)
    monkeypatch.setattr(ledger, "write", broken)
    ledger.inbox._leader.release()
    for t in threads:
        t.join(10)
    assert len(errors) == 3  # each caller answers 503; none was told "stored"
    monkeypatch.undo()
    assert ledger.inbox.depth() == 0
    assert ledger.inbox.enqueue([1, 2, 3]) == 3  # and the next delivery works
