"""The ledger's file misbehaving: locked by another process, the disk full, deleted while stopped.

Every failure must be one clear line naming the ledger file (no traceback), leave no half-applied change,
and a rerun once the cause is gone must resume without sending anything twice.

The lock wait is the ledger's busy_timeout, 15 s; [ledger] has no key to lower it (open_ledger's
``busy_timeout_ms`` is not reachable from the config), so the lock tests take that long.
"""

from __future__ import annotations

import collections
import csv
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.ledger.db import LedgerError
from connector.sandbox.faults import Faults
from connector.sync.runner import Services, sync_once
from tests.support.worlds import CsvShop, applied_status_puts, status_puts

pytestmark = pytest.mark.e2e

HOLD_LOCK = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
c.execute("ROLLBACK")
"""


class Lock:
    """``BEGIN EXCLUSIVE`` on the ledger, held by another process until released."""

    def __init__(self, db: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def _one_clear_line(result: subprocess.CompletedProcess, *words: str) -> str:
    err = result.stderr.strip()
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _changes(db: Path) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT key, state, attempts FROM changes ORDER BY id").fetchall()
    finally:
        con.close()


def _events(db: Path, kind: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM events WHERE kind = ?", (kind,)).fetchone()[0]
    finally:
        con.close()


def _ship(shop: CsvShop, ids: list[int]) -> None:
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": f"T{oid}",
                      "tracking_url": f"https://t.example/{oid}"} for oid in ids])


@pytest.fixture
def handed(tmp_path, sandbox):
    """Three open orders already handed to the shop and confirmed by a first pass."""
    shop = CsvShop(tmp_path, sandbox)
    ids = [o["id"] for o in sandbox.state.create_orders(3, status="open")]
    first = shop.cli("sync-once")
    assert first.returncode == 0, first.stdout + first.stderr
    return shop, ids, tmp_path / "ledger.db"


# -- locked ----------------------------------------------------------------------------------------

def test_a_locked_ledger_fails_with_one_line_and_the_rerun_pushes_once(handed, sandbox):
    shop, ids, db = handed
    _ship(shop, ids)
    before = _changes(db)
    lock = Lock(db)
    try:
        started = time.monotonic()
        result = shop.cli("sync-once")
        waited = time.monotonic() - started
    finally:
        lock.release()
    assert result.returncode == 1
    _one_clear_line(result, "ledger.db", "locked by another process")
    assert waited >= 10, "it gave up before the busy timeout"
    assert status_puts(sandbox) == [], "something was sent although nothing could be recorded"
    assert _changes(db) == before, "a half-applied change"
    rerun = shop.cli("sync-once")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    for oid in ids:
        assert [e.body["status"] for e in status_puts(sandbox, oid)] == ["shipped"]
        assert sandbox.state.get(oid)["status"] == "shipped"


def test_a_lock_taken_while_the_pushes_are_in_flight_sends_nothing_twice(handed, sandbox):
    """The PUTs land, then recording them fails on the lock: the changes stay `sending` (re-read before any
    resend), nothing half-recorded; the rerun finds MALL has them and sends nothing."""
    shop, ids, db = handed
    _ship(shop, ids)
    sandbox.faults = Faults(latency_ms=700, methods=("PUT",))
    proc = shop.popen("sync-once", "--no-sweep")
    deadline = time.monotonic() + 30
    while not any(state == "sending" for _, state, _ in _changes(db)):
        assert time.monotonic() < deadline and proc.poll() is None, "no push started"
        time.sleep(0.05)
    lock = Lock(db)  # the connector holds no transaction across an HTTP call, so this gets in at once
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        lock.release()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert result.returncode == 1, out + err
    _one_clear_line(result, "ledger.db", "locked")
    applied = applied_status_puts(sandbox)
    assert applied, "the PUTs should have landed before the lock bit"
    sending = [key for key, state, _ in _changes(db) if state == "sending"]
    assert sending, _changes(db)
    assert _events(db, "pushed") == 0, "a push recorded half-way"
    sandbox.faults = Faults()
    rerun = shop.cli("sync-once", "--retry-now")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    for oid in ids:
        assert sandbox.state.get(oid)["status"] == "shipped"
        assert len(applied_status_puts(sandbox, oid)) == 1
        assert len(status_puts(sandbox, oid)) <= 1, "sent again after it had landed"
    assert {state for _, state, _ in _changes(db)} <= {"done", "skipped"}


# -- disk full ---------------------------------------------------------------------------------------

def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return r.returncode == 0


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as f:
        chunk = b"\0" * 65536
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_fails_with_one_line_and_resumes_when_space_returns(tmp_path, sandbox):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "8m"):
        pytest.skip("needs root and tmpfs to fill a real disk; the in-process test below covers the logic")
    try:
        shop = CsvShop(tmp_path, sandbox)
        text = shop.config_path.read_text(encoding="utf-8")
        shop.config_path.write_text(text.replace('url = "sqlite:///ledger.db"', f'url = "sqlite:///{disk}/ledger.db"'),
                                    encoding="utf-8")
        db = disk / "ledger.db"
        ids = [o["id"] for o in sandbox.state.create_orders(3, status="open")]
        assert shop.cli("sync-once").returncode == 0
        con = sqlite3.connect(db)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next write must take new space
        con.close()
        before = _changes(db)
        filler = _fill(disk)
        _ship(shop, ids)
        result = shop.cli("sync-once")
        assert result.returncode == 1, result.stdout + result.stderr
        _one_clear_line(result, "ledger.db", "disk is full", "nothing was half-applied")
        assert status_puts(sandbox) == []
        filler.unlink()
        assert _changes(db) == before, "a half-applied change"
        rerun = shop.cli("sync-once")
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        for oid in ids:
            assert [e.body["status"] for e in status_puts(sandbox, oid)] == ["shipped"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_ledger_mid_pass_rolls_back_and_resumes(tmp_path, sandbox):
    """The same without root, in process: after MALL applied the PUTs, every ledger write fails the way SQLite
    fails on a full disk (the DBAPI raises "database or disk is full"). The outcome is not half-recorded (the
    changes stay `sending`), the error is one line, and the rerun sends nothing twice."""
    shop = CsvShop(tmp_path, sandbox)
    ids = [o["id"] for o in sandbox.state.create_orders(3, status="open")]
    assert shop.cli("sync-once").returncode == 0
    _ship(shop, ids)
    services = Services(shop.config())
    dialect = services.ledger.engine.dialect
    full = {"on": False}
    real = {name: getattr(dialect, name) for name in ("do_execute", "do_executemany")}

    def failing(name):
        def run(cursor, statement, parameters, context=None):
            if full["on"] and statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
                raise sqlite3.OperationalError("database or disk is full")
            return real[name](cursor, statement, parameters, context)
        return run

    for name in real:
        setattr(dialect, name, failing(name))
    real_update = services.client.update_order

    def update_then_fill(oid, update):
        real_update(oid, update)
        full["on"] = True  # the disk fills up while MALL applies the PUT

    services.client.update_order = update_then_fill
    try:
        services.outbound.poll_shop(wait_for_settle=False)
        with pytest.raises(LedgerError) as info:
            services.outbound.push_due(include_not_due=True)
    finally:
        for name, fn in real.items():
            setattr(dialect, name, fn)
        services.close()
    message = str(info.value)
    assert "ledger.db" in message and "disk is full" in message and "\n" not in message, message
    assert applied_status_puts(sandbox), "the PUTs went out before the ledger filled up"
    db = tmp_path / "ledger.db"
    assert {state for key, state, _ in _changes(db) if key.startswith("shop:")} == {"sending"}
    assert _events(db, "pushed") == 0, "a push recorded half-way"
    rerun = shop.cli("sync-once", "--retry-now")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    for oid in ids:
        assert len(applied_status_puts(sandbox, oid)) == 1 and len(status_puts(sandbox, oid)) == 1


# -- deleted -----------------------------------------------------------------------------------------

def _orders_rows(shop: CsvShop) -> collections.Counter:
    files = collections.Counter()
    for f in sorted(shop.outbox.glob("orders-*.csv")):
        with f.open(encoding="utf-8", newline="") as fh:
            for oid in {int(r["mall_order_id"]) for r in csv.DictReader(fh)}:
                files[oid] += 1
    return files


def test_a_deleted_ledger_is_recreated_and_nothing_mall_has_is_pushed_again(handed, sandbox):
    """What a lost ledger costs (docs/reliability.md): nothing is pushed to MALL twice (every change is
    decided against MALL's state, re-read); orders MALL changed while the ledger was gone and that wait for
    confirmation are taken as first seen: an open one is handed to the shop again as new, one past open
    (cancelled by the customer) is recorded but not handed; everything else carries on."""
    shop, ids, db = handed
    shipped, packing, untouched = ids
    shop.write_feed([{"mall_order_id": shipped, "status": "shipped", "tracking_number": "T1",
                      "tracking_url": "https://t.example/1"}, {"mall_order_id": packing, "status": "packing"}])
    assert shop.cli("sync-once").returncode == 0
    puts_before = len(status_puts(sandbox))
    assert puts_before == 2
    # While the connector is stopped: the ledger is lost, MALL changes two orders, a new one arrives.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    sandbox.state.mall_event(untouched, "customer_cancel")
    (fresh,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    result = shop.cli("sync-once")
    assert result.returncode == 0, result.stdout + result.stderr
    assert db.exists(), "the ledger was not recreated"
    assert len(status_puts(sandbox)) == puts_before, "a change MALL already had was pushed again"
    listed = shop.cli("ledger", "list", "--state", "all", "--format", "json")
    assert "already there: MALL has the order shipped" in listed.stdout
    assert "already there: MALL has the order shipping" in listed.stdout
    handed_count = _orders_rows(shop)
    assert handed_count[fresh] == 1, "a new order after the loss is handed as usual"
    assert handed_count[shipped] == handed_count[packing] == 1, "confirmed orders are not handed again"
    assert handed_count[untouched] == 1, "cancelled while the ledger was gone: recorded, not handed again"
    show = shop.cli("ledger", "show", str(untouched))
    assert "first seen in status cancelled" in show.stdout
    # And it carries on: the shop ships the packing order, MALL gets it once.
    shop.write_feed([{"mall_order_id": shipped, "status": "shipped", "tracking_number": "T1",
                      "tracking_url": "https://t.example/1"},
                     {"mall_order_id": packing, "status": "shipped", "tracking_number": "T2",
                      "tracking_url": "https://t.example/2"}])
    assert shop.cli("sync-once").returncode == 0
    assert [e.body["status"] for e in status_puts(sandbox, packing)] == ["shipping", "shipped"]
    assert len(status_puts(sandbox, shipped)) == 1
