"""A single-account ledger (schema 0006) upgrades in place to account "default" with nothing pending lost,
and a pass pushes what waited; later the same ledger moves on to [accounts.*] and its orders find their account."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from connector.config import load_config
from connector.ledger import open_ledger
from connector.ledger import schema as s
from connector.ledger.db import HEAD_REVISION, _alembic_config, current_revision, make_engine
from connector.sync.runner import Services, sync_once
from tests.support.accounts_world import status_puts
from tests.conftest import TEST_CLIENT_ID

pytestmark = pytest.mark.e2e
T = datetime(2026, 11, 30, 8, 0, 0)


def _config(folder, base_url: str, accounts: str = "") -> object:
    mall = f'client_id = "{TEST_CLIENT_ID}"\n' if not accounts else ""
    (folder / "outbox").mkdir(exist_ok=True)
    (folder / "shop.csv").write_text("mall_order_id,status\n", encoding="utf-8")
    (folder / "config.toml").write_text(f"""[mall]
base_url = "{base_url}"
{mall}[ledger]
url = "sqlite:///ledger.db"
[shop]
adapter = "generic_csv"
[shop.generic_csv]
source = "shop.csv"
outbox = "outbox"
settle_s = 0
{accounts}""", encoding="utf-8")
    return load_config(folder / "config.toml", environ={})


def _old_ledger(url: str, shipped_order: int, webhook_ids: list[int]) -> None:
    """Schema 0006 (main before accounts), with a pending shop change and two webhook ids waiting."""
    engine = make_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0006")
    with engine.begin() as c:
        c.execute(text("INSERT INTO orders (mall_order_id, mall_status, mall_confirmed, mdp, test, needs_confirm, "
                       "created_at, updated_at) VALUES (:o, 'open', 0, 0, 0, 0, :t, :t)"),
                  {"o": shipped_order, "t": T})
        c.execute(text("INSERT INTO changes (key, mall_order_id, origin, kind, shop_status, target_status, payload, "
                       "state, attempts, created_at, updated_at) VALUES (:k, :o, 'shop', 'status', 'packing', "
                       "'shipping', '{}', 'pending', 0, :t, :t)"), {"k": f"shop:{shipped_order}:shipping",
                                                                   "o": shipped_order, "t": T})
        for oid in webhook_ids:
            c.execute(text("INSERT INTO inbox (mall_order_id, source, received_at, attempts, state) "
                           "VALUES (:o, 'webhook', :t, 0, 'waiting')"), {"o": oid, "t": T})
    assert current_revision(engine) == "0006"
    engine.dispose()


def test_old_ledger_upgrades_to_default_and_a_pass_pushes_what_waited(tmp_path, sandbox):
    shipped, *arrived = [o["id"] for o in sandbox.state.create_orders(3, status="open")]
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    _old_ledger(url, shipped, arrived)

    ledger = open_ledger(url)  # migrates in place
    assert current_revision(ledger.engine) == HEAD_REVISION
    with ledger.read() as c:
        for t in s.ACCOUNT_TABLES:
            assert set(c.execute(text(f"SELECT DISTINCT account FROM {t.name}")).scalars()) <= {"default"}, t.name
        assert c.execute(text("SELECT count(*) FROM inbox WHERE account = 'default'")).scalar() == 2
    # The migrated schema is the one the code declares (columns, indexes, the new table).
    with ledger.engine.connect() as conn:
        diff = [d for d in compare_metadata(MigrationContext.configure(conn), s.metadata)
                if "account" in repr(d)]
    assert diff == []

    services = Services(_config(tmp_path, sandbox.url), ledger=ledger)
    try:
        sync_once(services)
        assert [e.body for e in status_puts(sandbox, shipped)] == [{"status": "shipping", "confirmed": True}]
        assert sandbox.state.get(shipped)["status"] == "shipping"
        handed = {int(r["mall_order_id"]) for r in _outbox_rows(tmp_path, "orders-")}  # a row per item
        assert handed == set(arrived)
        assert all(sandbox.state.get(oid)["confirmed"] for oid in arrived)
    finally:
        services.close()

    # The partner adds a second account: the old orders are asked of the accounts once and find theirs.
    accounts = (f'[accounts.cz]\nclient_id = "{TEST_CLIENT_ID}"\n'
                '[accounts.sk]\nclient_id = "sk-other-Lp9Dj1Wf5Rs7Gy3Mb8Tk0"\n')
    services = Services(_config(tmp_path, sandbox.url, accounts))
    try:
        assert services.client.account_of(shipped) == "cz"
        services.stamp_accounts()
        assert services.ledger.orders.get(shipped).account == "cz"
        assert {ch.account for ch in services.ledger.changes.list(order_id=shipped)} == {"cz"}
    finally:
        services.close()


def _outbox_rows(folder, prefix: str) -> list[dict]:
    import csv

    rows = []
    for f in sorted((folder / "outbox").iterdir()):
        if f.name.startswith(prefix) and f.suffix == ".csv":
            with f.open(encoding="utf-8", newline="") as fh:
                rows.extend(csv.DictReader(fh))
    return rows
