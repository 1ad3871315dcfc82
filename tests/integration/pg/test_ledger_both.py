"""The ledger's portable guarantees, on SQLite and on PostgreSQL (tests/support/pg.py runs this file on both)."""

from __future__ import annotations

import threading

from sqlalchemy import inspect

from connector.ledger import open_ledger
from connector.ledger import schema as s
from connector.ledger.db import HEAD_REVISION, current_revision, head_revision
from connector.ledger.types import ChangeState, Origin, shop_change_key


def _change(ledger, oid: int, target: str = "shipped") -> int:
    with ledger.write() as c:
        ledger.orders.ensure(c, oid)
        return ledger.changes.insert(c, key=shop_change_key(oid, target), order_id=oid, origin=Origin.SHOP,
                                     kind="status", shop_status="x", target_status=target)


def test_schema_is_the_newest_and_has_every_table(ledger_url):
    ledger = open_ledger(ledger_url)
    try:
        assert HEAD_REVISION == head_revision()
        assert current_revision(ledger.engine) == HEAD_REVISION
        assert set(s.metadata.tables) <= set(inspect(ledger.engine).get_table_names())
    finally:
        ledger.close()


def test_a_change_is_claimed_once_by_two_ledger_handles(ledger_url):
    """Two processes' view (two engines): each read the change pending; only the first claim takes it."""
    a, b = open_ledger(ledger_url), open_ledger(ledger_url)
    try:
        cid = _change(a, 1001)
        seen_a = a.changes.due(Origin.SHOP, 10)
        seen_b = b.changes.due(Origin.SHOP, 10)
        assert [ch.id for ch in seen_a] == [ch.id for ch in seen_b] == [cid]
        with a.write() as c:
            assert a.changes.claim(c, seen_a) == {cid}
        with b.write() as c:
            assert b.changes.claim(c, seen_b) == set()
        row = b.changes.get(cid)
        assert (row.state, row.attempts) == (ChangeState.SENDING.value, 1)
    finally:
        a.close()
        b.close()


def test_concurrent_inbox_writers_store_each_id_once(ledger_url):
    """Receivers of several replicas (here: threads on two engines) enqueue overlapping ids at once."""
    a, b = open_ledger(ledger_url), open_ledger(ledger_url)
    added: list[int] = []
    errors: list[BaseException] = []

    def work(ledger, ids):
        try:
            for i in ids:
                added.append(ledger.inbox.enqueue([i, i + 1]))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(led, range(5000, 5060))) for led in (a, b, a, b)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert a.inbox.depth() == 61  # 5000 .. 5060
        assert sum(added) == 61  # each id counted as new exactly once
    finally:
        a.close()
        b.close()


def test_lease_and_turn_on_one_process(ledger_url):
    ledger = open_ledger(ledger_url)
    try:
        assert ledger.leases.hold("leader", "me", 5) is True
        with ledger.leases.turn("engines") as mine:
            assert mine is True
    finally:
        ledger.close()
