"""Migration 0004 on a ledger of the first release (0001) that holds alerts and needs-action items."""

from __future__ import annotations

from datetime import datetime

from alembic import command
from sqlalchemy import inspect, text

from connector.ledger import open_ledger
from connector.ledger.db import _alembic_config, make_engine


def test_upgrade_from_0001_keeps_rows_and_adds_the_columns(tmp_path):
    url = "sqlite:///" + str(tmp_path / "old.db")
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
    now = datetime(2026, 11, 30, 9, 0, 0)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO alerts (key, state, message, first_at, count) "
                          "VALUES ('feed_unreadable', 'open', 't\nm', :now, 7)"), {"now": now})
        conn.execute(text("INSERT INTO actions (key, mall_order_id, kind, message, created_at) "
                          "VALUES ('credit_note:1', 1, 'credit_note', 'issue a credit note', :now)"), {"now": now})
    engine.dispose()

    ledger = open_ledger(url)  # migrates to the head
    try:
        cols = {c["name"] for c in inspect(ledger.engine).get_columns("alerts")}
        assert {"urgent", "last_seen_at"} <= cols
        assert {"closes_on", "closed_by"} <= {c["name"] for c in inspect(ledger.engine).get_columns("actions")}
        with ledger.read() as c:
            row = c.execute(text("SELECT state, count, urgent FROM alerts WHERE key = 'feed_unreadable'")).one()
        assert tuple(row) == ("open", 7, False)
        from connector.ledger.needs_action import open_items

        [item] = open_items(ledger)
        assert item.kind == "credit_note" and item.closes_on == "hand"
    finally:
        ledger.close()
