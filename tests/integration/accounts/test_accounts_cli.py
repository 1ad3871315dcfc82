"""`--account` and the account column: ledger list/show/retry, orders list, export picking and billing."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.ledger import open_ledger
from connector.ledger.types import ChangeState
from connector.mall.models import Order
from connector.sandbox.state import FIRST_PURCHASE_ID, OrderStore
from connector.sync.snapshot import store_snapshot
from tests.support.accounts_world import CZ_ID, SK_ID, TOK_CZ, TOK_SK

DELIVERED_AT = "2026-11-10 12:00:00"


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "outbox").mkdir()
    (tmp_path / "config.toml").write_text(f"""[ledger]
url = "sqlite:///ledger.db"
[shop]
adapter = "generic_csv"
[shop.generic_csv]
source = "shop.csv"
outbox = "outbox"
[accounts.cz]
client_id = "{CZ_ID}"
tokens = ["{TOK_CZ}"]
[accounts.sk]
client_id = "{SK_ID}"
tokens = ["{TOK_SK}"]
""", encoding="utf-8")
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    cz_store, sk_store = OrderStore(seed=1), OrderStore(seed=2)
    sk_store._next_purchase = FIRST_PURCHASE_ID + 5_000_000
    owners = {}
    with ledger.write() as c:
        for account, store in (("cz", cz_store), ("sk", sk_store)):
            for status in ("open", "delivered"):
                raw = store.create_orders(1, status=status)[0]
                if status == "delivered":
                    raw["delivered_at"] = DELIVERED_AT
                order = Order.model_validate(raw)
                store_snapshot(ledger, c, order)
                owners[order.id] = account
                ledger.changes.insert(c, key=f"shop:{order.id}:shipping", order_id=order.id, origin="shop",
                                      kind="status", shop_status="packing", target_status="shipping")
                ledger.actions.add(c, key=f"shop_action:{order.id}", order_id=order.id, kind="shop_action",
                                   message=f"do something for {account}")
        ledger.accounts.record(c, owners, "webhook")
        ledger.accounts.stamp(c)
    for ch in ledger.changes.list():
        with ledger.write() as c:
            ledger.changes.move(c, ch.id, ch.state, ChangeState.FAILED, reason=f"failed for {owners[ch.mall_order_id]}")
    ledger.close()
    return tmp_path, owners


def cli(folder, *args):
    return CliRunner().invoke(main, ["--config", str(folder / "config.toml"), *args], env={"MALL_CLIENT_ID": ""},
                              catch_exceptions=False)


def test_ledger_list_names_the_account_and_filters_by_it(folder):
    path, owners = folder
    r = cli(path, "ledger", "list", "--state", "failed", "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert {(row["mall_order_id"], row["account"]) for row in rows} == set(owners.items())
    r = cli(path, "ledger", "list", "--state", "failed", "--account", "sk", "--format", "json")
    assert {row["mall_order_id"] for row in json.loads(r.output)} == {o for o, a in owners.items() if a == "sk"}
    r = cli(path, "ledger", "list", "--needs-action", "--account", "cz", "--format", "json")
    assert {row["mall_order_id"] for row in json.loads(r.output)} == {o for o, a in owners.items() if a == "cz"}
    r = cli(path, "ledger", "list", "--account", "cz_")
    assert r.exit_code == 2 and "'cz_' is not an account" in r.output and "did you mean 'cz'" in r.output


def test_ledger_show_and_retry_by_account(folder):
    path, owners = folder
    cz_order = next(o for o, a in owners.items() if a == "cz")
    r = cli(path, "ledger", "show", str(cz_order))
    assert r.exit_code == 0 and "MALL account: cz" in r.output
    r = cli(path, "ledger", "show", str(cz_order), "--account", "sk")
    assert r.exit_code == 1 and "not in the ledger of account 'sk'" in r.output
    r = cli(path, "ledger", "retry", "--failed", "--account", "sk")
    assert r.exit_code == 0 and "2 item(s) of account 'sk'" in r.output
    ledger = open_ledger(f"sqlite:///{path / 'ledger.db'}")
    try:
        failed = {ch.mall_order_id for ch in ledger.changes.list(states=(ChangeState.FAILED,))}
    finally:
        ledger.close()
    assert failed == {o for o, a in owners.items() if a == "cz"}


def test_orders_list_account_column_and_filter(folder):
    path, owners = folder
    r = cli(path, "orders", "list", "--status", "all", "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert {(int(row["order"]), row["account"]) for row in rows} == set(owners.items())
    r = cli(path, "orders", "list", "--status", "all", "--format", "csv", "--account", "cz")
    assert {int(row["order"]) for row in csv.DictReader(io.StringIO(r.output))} == \
        {o for o, a in owners.items() if a == "cz"}


def test_exports_one_account_or_all_with_the_account_in_every_row(folder):
    from openpyxl import load_workbook

    path, owners = folder
    r = cli(path, "export", "picking", "--status", "open,delivered", "-o", str(path / "pick.csv"))
    assert r.exit_code == 0, r.output
    text = (path / "pick.csv").read_text(encoding="utf-8-sig")
    packing = text.split("Packing")[1].strip().splitlines()
    assert packing[0].startswith("Account;Order ID")
    assert {(int(line.split(";")[1]), line.split(";")[0]) for line in packing[1:]} == set(owners.items())

    r = cli(path, "export", "billing", "--from", "2026-11-01", "--to", "2026-11-30", "--account", "sk",
            "-o", str(path / "bill.xlsx"))
    assert r.exit_code == 0, r.output
    sheet = load_workbook(path / "bill.xlsx")["Billing"]
    rows = [row for row in sheet.iter_rows(values_only=True)]
    assert rows[0][0] == "Account"
    billed = {(row[1], row[0]) for row in rows[1:] if isinstance(row[1], int)}
    assert len(billed) == 1  # the SK order delivered in the period; the CZ one is left out
    assert billed == {(o, "sk") for o, a in owners.items() if a == "sk" and o in _delivered(path)}


def _delivered(path) -> set[int]:
    ledger = open_ledger(f"sqlite:///{path / 'ledger.db'}")
    try:
        return {r.mall_order_id for r in ledger.reports.orders_in(["delivered"])}
    finally:
        ledger.close()
