"""Helpers for the performance regression tests: they count (SQL statements, commits, HTTP requests in the
sandbox's log), never time, so a busy machine cannot make them flaky."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterator

import pytest
from sqlalchemy import event

from tests.support.worlds import CsvShop


@dataclass
class SqlLog:
    statements: list[tuple[str, object]] = field(default_factory=list)  # (SQL, parameters)
    commits: int = 0

    def __len__(self) -> int:
        return len(self.statements)

    @property
    def write_txns(self) -> int:
        """Write transactions (each ends in a commit that fsyncs; read transactions do not)."""
        return sum(1 for sql, _ in self.statements if sql.strip().upper() == "BEGIN IMMEDIATE")

    def matching(self, pattern: str) -> list[str]:
        rx = re.compile(pattern, re.I | re.S)
        return [sql for sql, _ in self.statements if rx.search(sql)]

    def writes_to(self, table: str) -> list[str]:
        return self.matching(rf"^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+{table}\b")


@contextlib.contextmanager
def count_sql(engine) -> Iterator[SqlLog]:
    """Every statement the engine sends (BEGIN included) and every commit, while the block runs."""
    log = SqlLog()

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        log.statements.append((statement, parameters))

    def on_commit(conn):
        log.commits += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)


def fill_ledger(ledger, first_id: int, n: int) -> None:
    """``n`` old, finished orders (each with a done shop change and an event) straight through executemany."""
    at = (datetime.now() - timedelta(days=300)).strftime("%Y-%m-%d %H:%M:%S.%f")
    ids = range(first_id, first_id + n)
    with ledger.write() as c:
        c.exec_driver_sql(
            "INSERT INTO orders (mall_order_id, mall_status, mall_confirmed, mall_read_at, mdp, test, shop_status, "
            "shop_fingerprint, handed_at, handed_status, needs_confirm, created_at, updated_at) "
            "VALUES (?, 'delivered', 1, ?, 0, 0, 'delivered', ?, ?, 'open', 0, ?, ?)",
            [(oid, at, f"{oid:032x}", at, at, at) for oid in ids])
        c.exec_driver_sql(
            "INSERT INTO changes (key, mall_order_id, origin, kind, shop_status, target_status, payload, state, "
            "reason, attempts, created_at, updated_at, done_at) "
            "VALUES (?, ?, 'shop', 'status', 'delivered', 'delivered', '{}', 'done', 'push', 1, ?, ?, ?)",
            [(f"shop:{oid}:delivered", oid, at, at, at) for oid in ids])
        c.exec_driver_sql("INSERT INTO events (mall_order_id, at, kind, message) VALUES (?, ?, 'pushed', 'old')",
                          [(oid, at) for oid in ids])


def feed_rows(ids, status: str) -> list[dict]:
    rows = []
    for i, oid in enumerate(ids):
        row = {"mall_order_id": oid, "status": status, "shop_order_id": f"S{i}", "carrier": "PPL"}
        if status == "shipped":
            row.update(tracking_number=f"PPL{i:08d}")
        rows.append(row)
    return rows


@pytest.fixture
def shop(tmp_path, sandbox) -> CsvShop:
    return CsvShop(tmp_path, sandbox, sync="refresh_age_s = 300\n")


def gets_of_orders(sandbox) -> list:
    """GET /v1/orders/{id} requests (one order each)."""
    return [e for e in sandbox.request_log.gets() if e.order_id is not None]


def list_calls(sandbox) -> list:
    return sandbox.request_log.find("GET", "/v1/orders")
