"""A ledger written by the first release (schema 0001) with work pending is upgraded in place: nothing
pending is lost, and the engines pick every item up where it stood."""

from __future__ import annotations

from datetime import datetime

from alembic import command
from sqlalchemy import text

from connector.ledger import open_ledger
from connector.ledger.db import HEAD_REVISION, _alembic_config, current_revision, make_engine
from connector.ledger.types import ChangeState, HandoffState, InboxState, Origin

T = datetime(2026, 11, 30, 8, 0, 0)


def _first_release_ledger(url: str) -> None:
    """The 0001 schema, filled the way the first release wrote it (its own column lists, no later ones)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
    with engine.begin() as c:
        for oid in (101, 102, 103):
            c.execute(text("INSERT INTO orders (mall_order_id, mdp, test, needs_confirm, created_at, updated_at) "
                           "VALUES (:o, 0, 0, :nc, :t, :t)"), {"o": oid, "nc": oid == 103, "t": T})
        c.execute(text("INSERT INTO handoffs (id, name, kind, state, created_at) "
                       "VALUES (1, 'orders-20261130T080000Z-000001', 'orders', 'staged', :t)"), {"t": T})
        rows = [
            (1, "shop:101:shipping", 101, "shop", "status", "pending", 0, None, None),
            (2, "shop:102:shipped", 102, "shop", "status", "retry", 2, T, "MALL refused it (x); re-read"),
            (3, "mall:103:new", 103, "mall", "new_order", "sending", 0, None, None),
        ]
        for cid, key, oid, origin, kind, state, attempts, nxt, err in rows:
            c.execute(text("INSERT INTO changes (id, key, mall_order_id, origin, kind, target_status, payload, state, "
                           "attempts, next_attempt_at, last_error, handoff_id, created_at, updated_at) VALUES "
                           "(:id, :k, :o, :origin, :kind, 'shipping', '{}', :st, :a, :n, :e, :h, :t, :t)"),
                      {"id": cid, "k": key, "o": oid, "origin": origin, "kind": kind, "st": state, "a": attempts,
                       "n": nxt, "e": err, "h": 1 if cid == 3 else None, "t": T})
        for oid, attempts in ((201, 0), (202, 3)):
            c.execute(text("INSERT INTO inbox (mall_order_id, source, received_at, attempts, next_attempt_at, "
                           "last_error) VALUES (:o, 'webhook', :t, :a, NULL, NULL)"), {"o": oid, "t": T, "a": attempts})
    assert current_revision(engine) == "0001"
    engine.dispose()


def test_upgrade_keeps_everything_pending(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    _first_release_ledger(url)
    ledger = open_ledger(url)  # migrates
    try:
        assert current_revision(ledger.engine) == HEAD_REVISION
        # Inbox ids wait as before, with their attempts; none is taken for quarantined.
        assert sorted(ledger.inbox.due(10, now=datetime(2030, 1, 1))) == [201, 202]
        assert ledger.inbox.attempts(202) == 3 and ledger.inbox.failed() == []
        # Open changes are still due, in their states; the retry keeps its count and its error text.
        due = {ch.id: ch for ch in ledger.changes.due(Origin.SHOP, 10, now=datetime(2030, 1, 1))}
        assert {cid: (ch.state, ch.attempts) for cid, ch in due.items()} == {
            1: (ChangeState.PENDING, 0), 2: (ChangeState.RETRY, 2)}
        assert due[2].last_error == "MALL refused it (x); re-read" and due[2].outcome is None
        assert [ch.id for ch in ledger.changes.due(Origin.MALL, 10)] == [3]
        # The staged batch is still open and staged (publishing it is a rename, never a rewrite).
        (h,) = ledger.handoffs.open(due_only=True)
        assert (h.id, h.state, h.attempts) == (1, HandoffState.STAGED, 0)
        assert [ch.id for ch in ledger.changes.of_handoff(1)] == [3]
        assert ledger.orders.needing_confirm() == []  # 103's new order is still open: it waits for the hand-off
        assert ledger.confirms.failed() == [] and ledger.quarantined_count() == 0
        with ledger.read() as c:
            states = set(c.execute(text("SELECT state FROM inbox")).scalars())
        assert states == {InboxState.WAITING}
    finally:
        ledger.close()


def test_upgrade_of_an_empty_first_release_ledger(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
    engine.dispose()
    ledger = open_ledger(url)
    try:
        assert current_revision(ledger.engine) == HEAD_REVISION and ledger.failed_items() == []
    finally:
        ledger.close()
