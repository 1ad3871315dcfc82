"""Idle RSS (issue 17 item 6): `run` loads only what it needs. The daemon is started the way the `run` entry does
it (the lazy CLI resolves `run`, then Daemon + start) in a fresh interpreter, does its first poll against the
sandbox, and then must not hold alembic, mako, openpyxl, the sandbox, the exports, the console or (on SQLite) the
PostgreSQL driver in sys.modules.
A membership assertion, never a time or a byte count (the RSS figure belongs to `make bench`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from connector.ledger.db import HEAD_REVISION, current_revision, make_engine
from tests.conftest import free_port
from tests.support.worlds import CsvShop

pytestmark = pytest.mark.system

FORBIDDEN = ("alembic", "mako", "openpyxl", "connector.sandbox", "connector.exports", "connector.console",
             "psycopg")  # the PostgreSQL driver: only for a postgresql+psycopg:// ledger

CHILD = r"""
import json, sys, time
from connector.cli import main
assert main.get_command(None, "run") is not None
from connector.config import load_config
from connector.daemon import Daemon
cfg = load_config(sys.argv[1])
d = Daemon(cfg, config_path=sys.argv[1])
d.start()
deadline = time.monotonic() + 60
while "poll" not in d.ledger.kv.job_ok_times() and time.monotonic() < deadline:
    time.sleep(0.1)
polled = "poll" in d.ledger.kv.job_ok_times()
d.stop()
forbidden = sys.argv[2].split(",")
loaded = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))
print(json.dumps({"polled": polled, "loaded": loaded, "modules": len(sys.modules)}))
"""


def _run_child(shop: CsvShop) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(shop.config_path), ",".join(FORBIDDEN)],
                         capture_output=True, text=True, timeout=180, cwd=shop.folder)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_run_never_imports_alembic_openpyxl_sandbox_exports_or_console(tmp_path, sandbox):
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    shop = CsvShop(tmp_path, sandbox, receiver_listen=f"127.0.0.1:{free_port()}")
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "T1", "tracking_url": "https://t/1"}])
    first = _run_child(shop)  # a new ledger: the schema is created by a child process
    assert first["polled"], "the daemon's first poll did not finish"
    assert first["loaded"] == []
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        assert current_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()
    assert sandbox.state.get(oid)["status"] == "shipped"  # it did real work with what it loaded
    again = _run_child(shop)  # a current ledger: recognised without alembic
    assert again["polled"] and again["loaded"] == []


def test_help_still_lists_every_command():
    from connector.cli import main

    out = CliRunner().invoke(main, ["--help"])
    assert out.exit_code == 0, out.output
    for name in ("run", "check", "demo", "sync-once", "sandbox", "ledger", "export", "orders", "console", "init",
                 "labels", "config", "mapping", "stats"):
        assert f"  {name}" in out.output, name


def test_a_command_outside_the_hints_is_found(tmp_path):
    out = subprocess.run([sys.executable, "-m", "connector", "ledger", "backup", "--help"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "backup" in out.stdout.lower()
