"""PostgreSQL only: migrations from nothing, the replica lease and turn, `check`, the password's sources,
and `ledger migrate --to URL` from a SQLite ledger, all against the real throwaway server (plugin.py)."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from connector.cli import main
from connector.ledger import open_ledger
from connector.ledger.db import HEAD_REVISION, current_revision
from connector.ledger.types import Origin, shop_change_key
from tests.conftest import TEST_CLIENT_ID


def _no_password(url: str, password: str) -> str:
    return url.replace(f":{password}@", "@")


def test_every_migration_runs_on_an_empty_postgresql_database(pg_url):
    ledger = open_ledger(pg_url)
    try:
        assert current_revision(ledger.engine) == HEAD_REVISION
        with ledger.read() as c:
            assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
    finally:
        ledger.close()


def test_read_transactions_are_read_only_and_writes_take_the_write_lock(pg_url):
    ledger = open_ledger(pg_url)
    try:
        with ledger.read() as c:
            assert c.execute(text("SHOW transaction_read_only")).scalar() == "on"
            assert c.execute(text("SHOW transaction_isolation")).scalar() == "repeatable read"
        with ledger.write() as c:
            held = c.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                  "AND pid = pg_backend_pid() AND granted")).scalar()
            assert held == 1
    finally:
        ledger.close()


def test_a_second_writer_waits_for_the_first_then_sees_its_commit(pg_url):
    """BEGIN IMMEDIATE's equivalent: a read-then-write of another replica sees no stale state."""
    a, b = open_ledger(pg_url), open_ledger(pg_url)
    try:
        import threading

        started, release = threading.Event(), threading.Event()
        seen: list = []

        def first():
            with a.write() as c:
                a.orders.ensure(c, 7001)
                started.set()
                release.wait(10)
                a.changes.insert(c, key=shop_change_key(7001, "shipped"), order_id=7001, origin=Origin.SHOP,
                                 kind="status", target_status="shipped")

        def second():
            started.wait(10)
            with b.write() as c:  # waits on the lock until `first` commits
                seen.append(b.changes.insert(c, key=shop_change_key(7001, "shipped"), order_id=7001,
                                             origin=Origin.SHOP, kind="status", target_status="shipped"))

        t1, t2 = threading.Thread(target=first), threading.Thread(target=second)
        t1.start(), t2.start()
        started.wait(10)
        time.sleep(0.3)  # give `second` the time to queue on the lock (if it did not, the test still holds)
        release.set()
        t1.join(20), t2.join(20)
        assert seen == [None]  # it saw the first writer's row: the key existed
        assert len(a.changes.list()) == 1
    finally:
        a.close()
        b.close()


def test_leader_lease_is_exclusive_and_taken_over_after_it_expires(pg_url):
    a, b = open_ledger(pg_url), open_ledger(pg_url)
    try:
        assert a.leases.hold("leader", "replica-a", 1.0)
        assert not b.leases.hold("leader", "replica-b", 1.0)
        assert a.leases.hold("leader", "replica-a", 1.0)  # renewed
        assert a.leases.current()[0] == "replica-a"
        deadline = time.monotonic() + 10
        while not b.leases.hold("leader", "replica-b", 1.0):  # a stopped renewing (as if SIGKILLed)
            assert time.monotonic() < deadline, "the lease never expired"
            time.sleep(0.2)
        assert b.leases.current()[0] == "replica-b"
        assert not a.leases.hold("leader", "replica-a", 1.0)
        b.leases.release("leader", "replica-b")
        assert a.leases.hold("leader", "replica-a", 1.0)  # a clean stop hands it on at once
    finally:
        a.close()
        b.close()


def test_the_pass_turn_is_exclusive_and_freed_when_its_holder_disconnects(pg_url):
    a, b = open_ledger(pg_url), open_ledger(pg_url)
    try:
        with a.leases.turn("engines") as mine:
            assert mine
            with b.leases.turn("engines") as theirs:
                assert not theirs
        with b.leases.turn("engines") as theirs:
            assert theirs
        # A holder whose connection dies (a SIGKILLed replica) frees the turn without unlocking it.
        import psycopg

        holder = psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql"), autocommit=True)
        from connector.ledger.dialect import LOCK_CLASS
        from connector.ledger.leases import _lock_key

        assert holder.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, _lock_key("engines"))).fetchone()[0]
        with b.leases.turn("engines") as theirs:
            assert not theirs
        holder.close()
        deadline = time.monotonic() + 10
        while True:
            with b.leases.turn("engines") as theirs:
                if theirs:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        a.close()
        b.close()


def _config(tmp_path, url_line: str, extra: str = "") -> str:
    path = tmp_path / "config.toml"
    path.write_text(f"""[mall]
base_url = "http://127.0.0.1:9"
client_id = "{TEST_CLIENT_ID}"
[ledger]
{url_line}
{extra}[shop]
adapter = "generic_csv"
[shop.generic_csv]
source = "shop.csv"
outbox = "outbox"
""", encoding="utf-8")
    (tmp_path / "outbox").mkdir(exist_ok=True)
    return str(path)


def test_check_says_postgresql_reachable_without_the_password(pg_url, pg_cluster, tmp_path, monkeypatch):
    monkeypatch.delenv("MALL_CONNECTOR_LEDGER_URL", raising=False)
    open_ledger(pg_url).close()
    bare = _no_password(pg_url, pg_cluster.password)
    monkeypatch.setenv("MALL_CONNECTOR_LEDGER_PASSWORD", pg_cluster.password)
    cfg = _config(tmp_path, f'url = "{bare}"')
    out = CliRunner().invoke(main, ["--config", cfg, "check"])
    assert "PostgreSQL 127.0.0.1:" in out.output and "is reachable, writable and migrated" in out.output, out.output
    assert pg_cluster.password not in out.output

    # The password from a file, and a wrong one: a clear line naming where to fix it, still no password.
    (tmp_path / "pw").write_text("not-the-password-at-all\n")
    monkeypatch.delenv("MALL_CONNECTOR_LEDGER_PASSWORD")
    cfg = _config(tmp_path, f'url = "{bare}"\npassword_file = "pw"')
    out = CliRunner().invoke(main, ["--config", cfg, "check"])
    assert "is not reachable" in out.output and "password" in out.output, out.output
    assert "not-the-password-at-all" not in out.output and pg_cluster.password not in out.output


def test_ledger_migrate_copies_a_sqlite_ledger_into_postgresql(pg_url, pg_cluster, tmp_path, monkeypatch):
    monkeypatch.delenv("MALL_CONNECTOR_LEDGER_URL", raising=False)
    src_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    src = open_ledger(src_url)
    with src.write() as c:
        for oid in range(9001, 9031):
            src.orders.ensure(c, oid)
            src.changes.insert(c, key=shop_change_key(oid, "shipped"), order_id=oid, origin=Origin.SHOP,
                               kind="status", shop_status="odeslano", target_status="shipped")
    src.inbox.enqueue([9100, 9101, 9102])
    want_changes = {(ch.key, ch.state) for ch in src.changes.list()}
    src.close()
    cfg = _config(tmp_path, 'url = "sqlite:///ledger.db"')
    bare = _no_password(pg_url, pg_cluster.password)

    # A password in argv is refused (argv is world-readable), and not echoed.
    out = CliRunner().invoke(main, ["--config", cfg, "ledger", "migrate", "--to", pg_url])
    assert out.exit_code != 0 and "argv" in out.output and pg_cluster.password not in out.output

    monkeypatch.setenv("MALL_CONNECTOR_LEDGER_PASSWORD", pg_cluster.password)
    out = CliRunner().invoke(main, ["--config", cfg, "ledger", "migrate", "--to", bare])
    assert out.exit_code == 0, out.output
    assert "changes: 30" in out.output and "inbox: 3" in out.output
    assert pg_cluster.password not in out.output

    dst = open_ledger(pg_url)
    try:
        assert {(ch.key, ch.state) for ch in dst.changes.list()} == want_changes
        assert dst.inbox.depth() == 3
        # ids keep growing after the copied ones (the sequence was moved past them)
        with dst.write() as c:
            dst.orders.ensure(c, 9999)
            new = dst.changes.insert(c, key=shop_change_key(9999, "shipped"), order_id=9999, origin=Origin.SHOP,
                                     kind="status", target_status="shipped")
        assert new > max(ch.id for ch in dst.changes.list() if ch.mall_order_id != 9999)
    finally:
        dst.close()

    # A second run refuses the non-empty target, naming the tables, and changes nothing.
    out = CliRunner().invoke(main, ["--config", cfg, "ledger", "migrate", "--to", bare])
    assert out.exit_code != 0 and "not empty" in out.output and "changes (31 rows)" in out.output, out.output
    out = CliRunner().invoke(main, ["--config", cfg, "ledger", "migrate", "--to", bare, "--replace"])
    assert out.exit_code == 0, out.output
    dst = open_ledger(pg_url)
    try:
        assert {(ch.key, ch.state) for ch in dst.changes.list()} == want_changes  # 9999 gone: replaced
    finally:
        dst.close()


@pytest.mark.parametrize("url", ["postgresql+psycopg2://u@127.0.0.1/x"])
def test_another_driver_is_a_clear_error(url):
    from connector.ledger import LedgerError

    with pytest.raises(LedgerError, match="psycopg"):
        open_ledger(url)
