"""[accounts.<name>] mapping: the outbound decision of an order uses its own account's mapping.

Two real sandboxes (CZ, SK) behind one API address (tests/support/accounts_world.py); the shop's status
"packing" means `shipping` for CZ ([shop] mapping, the shipped generic_csv one) and `shipped` for SK
(the SK partner hands SK parcels straight to the carrier)."""

from __future__ import annotations

import pytest

from connector.config import ConfigError
from connector.daemon import Daemon
from connector.ledger.types import ChangeState
from connector.mapping import MappingError
from connector.sandbox.state import FIRST_PURCHASE_ID
from connector.sync.runner import Services, sync_once
from tests.support.accounts_world import CZ_ID, SK_FIRST_PURCHASE, SK_ID, MallFront, TwoAccountShop, gets_of, status_puts

pytestmark = pytest.mark.e2e

SK_MAPPING = """[to_mall]
"packing" = "shipped"    # SK: packed means handed to the carrier
"cancelled" = "cancelled"

[ignore]
statuses = ["new"]

[from_mall]
open = "nová SK"         # SK's new orders land in the shop's own status for them
"""


@pytest.fixture
def boxes(make_sandbox):
    cz, sk = make_sandbox(client_id=CZ_ID), make_sandbox(client_id=SK_ID)
    sk.state._next_purchase = FIRST_PURCHASE_ID + SK_FIRST_PURCHASE  # SK's ids never meet CZ's
    front = MallFront({CZ_ID: cz, SK_ID: sk})
    yield front, cz, sk
    front.close()


@pytest.fixture
def world(tmp_path, boxes):
    front, cz, sk = boxes
    (tmp_path / "sk-mapping.toml").write_text(SK_MAPPING, encoding="utf-8")
    shop = TwoAccountShop(tmp_path, front, extra='mapping = "sk-mapping.toml"\n')  # in [accounts.sk]
    services = Services(shop.config())
    yield shop, services, cz, sk
    services.close()


def packing(oid: int) -> dict:
    return {"mall_order_id": oid, "status": "packing", "tracking_number": f"T{oid}",
            "tracking_url": f"https://t.example/T{oid}"}


def test_the_same_shop_status_is_pushed_as_each_accounts_own_mapping_says(world):
    shop, services, cz, sk = world
    (cz_order,) = [o["id"] for o in cz.state.create_orders(1, status="open")]
    (sk_order,) = [o["id"] for o in sk.state.create_orders(1, status="open")]
    sync_once(services)  # the sweep: both orders arrive through their own account
    assert services.ledger.accounts.owners([cz_order, sk_order]) == {cz_order: "cz", sk_order: "sk"}
    shop.write_feed([packing(cz_order), packing(sk_order)])
    sync_once(services, sweep=False)

    assert [e.body["status"] for e in status_puts(cz, cz_order)] == ["shipping"]
    assert [e.body["status"] for e in status_puts(sk, sk_order)] == ["shipped"]
    assert cz.state.get(cz_order)["status"] == "shipping" and sk.state.get(sk_order)["status"] == "shipped"
    assert status_puts(cz, sk_order) == [] and status_puts(sk, cz_order) == []
    targets = {c.mall_order_id: c.target_status for c in services.ledger.changes.list(origin="shop")}
    assert targets == {cz_order: "shipping", sk_order: "shipped"}


def _outbox_rows(folder, prefix: str) -> list[dict]:
    import csv

    rows = []
    for f in sorted((folder / "outbox").iterdir()):
        if f.name.startswith(prefix) and f.suffix == ".csv":
            with f.open(encoding="utf-8", newline="") as fh:
                rows.extend(csv.DictReader(fh))
    return rows


def test_new_orders_reach_the_shop_in_each_accounts_own_status(world, tmp_path):
    """The hand-off ([from_mall]) runs in each account's pass, with that account's mapping."""
    shop, services, cz, sk = world
    (cz_order,) = [o["id"] for o in cz.state.create_orders(1, status="open")]
    (sk_order,) = [o["id"] for o in sk.state.create_orders(1, status="open")]
    sync_once(services)
    status = {int(r["mall_order_id"]): r["shop_status"] for r in _outbox_rows(tmp_path, "orders-")}
    assert status == {cz_order: "new", sk_order: "nová SK"}


def test_an_order_the_shop_names_first_is_looked_up_before_its_row_is_decided(world):
    shop, services, cz, sk = world
    (sk_order,) = [o["id"] for o in sk.state.create_orders(1, status="open")]
    nowhere, ignored = 999_000_002, 999_000_102  # in neither account
    shop.write_feed([packing(sk_order), packing(nowhere), {"mall_order_id": ignored, "status": "new"}])
    poll = services.outbound.poll_shop()  # no sweep: only a lookup can tell whose the orders are

    assert poll.new_changes == 2
    assert services.ledger.accounts.lookup(sk_order).account == "sk"
    targets = {c.mall_order_id: c.target_status for c in services.ledger.changes.list(origin="shop")}
    # SK's mapping for the SK order; the order no account has takes [shop] mapping.
    assert targets == {sk_order: "shipped", nowhere: "shipping"}
    # Each account asked once; "new" means the same in every mapping, so nobody was asked about that order.
    assert len(gets_of(cz, sk_order)) == 1 and len(gets_of(sk, sk_order)) == 1
    assert len(gets_of(cz, nowhere)) == 1 and len(gets_of(sk, nowhere)) == 1
    assert gets_of(cz, ignored) == [] and gets_of(sk, ignored) == []

    for _ in range(3):
        sync_once(services, sweep=False)
    assert [e.body["status"] for e in status_puts(sk, sk_order)] == ["shipped"]
    assert cz.request_log.puts() == []
    assert len(gets_of(cz, sk_order)) == 1 and len(gets_of(cz, nowhere)) == 1  # the answers were kept
    (failed,) = services.ledger.changes.list(states=(ChangeState.FAILED,))
    assert failed.mall_order_id == nowhere and "MALL does not know this order" in failed.reason


def test_a_row_whose_account_cannot_be_looked_up_now_waits_for_the_next_poll(world):
    """CZ's key is revoked while its order is unknown: the row is not decided with a guessed mapping."""
    shop, services, cz, sk = world
    (cz_order,) = [o["id"] for o in cz.state.create_orders(1, status="open")]
    revoked = shop.front.by_client_id.pop(CZ_ID)
    shop.write_feed([packing(cz_order)])
    poll = services.outbound.poll_shop()
    assert poll.new_changes == 0 and poll.problems == []
    assert services.ledger.changes.list(order_id=cz_order) == []
    assert services.ledger.orders.get(cz_order) is None  # nothing recorded: the whole row waits
    assert services.outbound.poll_shop().new_changes == 0  # the feed is not "unchanged": it is read again

    shop.front.by_client_id[CZ_ID] = revoked
    sync_once(services, sweep=False)
    assert services.ledger.accounts.lookup(cz_order).account == "cz"
    assert [e.body["status"] for e in status_puts(cz, cz_order)] == ["shipping"]
    assert sk.request_log.puts() == []


def test_reload_re_reads_each_accounts_mapping_and_refuses_a_broken_one(world, tmp_path):
    shop, services, cz, sk = world
    services.close()
    daemon = Daemon(shop.config(), config_path=str(shop.config_path))
    try:
        sk_orders = [o["id"] for o in sk.state.create_orders(2, status="open")]
        sync_once(daemon.services)
        # SK's packing now means cancelled (the partner stopped selling there): SIGHUP's reload applies it.
        (tmp_path / "sk-mapping.toml").write_text(SK_MAPPING.replace('"packing" = "shipped"', '"packing" = "cancelled"'),
                                                  encoding="utf-8")
        assert daemon.reload() is True
        assert daemon.services.mapping.for_account("sk").lookup("packing").target == "cancelled"
        shop.write_feed([packing(sk_orders[0])])
        sync_once(daemon.services, sweep=False)
        assert [e.body["status"] for e in status_puts(sk, sk_orders[0])] == ["cancelled"]

        # A typo in SK's mapping: the reload is refused and both mappings in force stay.
        (tmp_path / "sk-mapping.toml").write_text('[to_mall]\n"packing" = "shiped"\n', encoding="utf-8")
        before = daemon.services.mapping.for_account("sk")
        assert daemon.reload() is False
        assert daemon.services.mapping.for_account("sk") is before
        shop.write_feed([packing(sk_orders[0]), packing(sk_orders[1])])
        sync_once(daemon.services, sweep=False)
        assert [e.body["status"] for e in status_puts(sk, sk_orders[1])] == ["cancelled"]
    finally:
        daemon.services.close()


def test_a_missing_or_broken_account_mapping_is_a_config_error_naming_it(tmp_path, boxes):
    front, _, _ = boxes
    shop = TwoAccountShop(tmp_path, front, extra='mapping = "nope.toml"\n')
    with pytest.raises(ConfigError) as e:
        shop.config()
    assert e.value.key == "accounts.sk.mapping" and "[accounts.sk] mapping" in str(e.value)
    assert "nope.toml" in str(e.value) and e.value.line is not None
    r = shop.cli("config", "check")
    assert r.returncode == 78 and "accounts.sk.mapping" in r.stderr and "Traceback" not in r.stderr

    (tmp_path / "nope.toml").write_text('[to_mall]\n"packing" = "shipping"\n"sent" = "shiped"\n', encoding="utf-8")
    with pytest.raises(MappingError) as e:
        Services(shop.config())
    assert "nope.toml" in str(e.value) and "'shiped' is not a MALL status" in str(e.value)
    for command in (("config", "check"), ("mapping", "check"), ("sync-once",)):
        r = shop.cli(*command)
        assert r.returncode == 78, r.stdout + r.stderr
        assert "nope.toml:3" in r.stderr and "'shiped' is not a MALL status" in r.stderr
        assert "Traceback" not in r.stderr


def test_config_and_mapping_check_report_each_accounts_mapping(world, tmp_path):
    shop, _, _, _ = world
    r = shop.cli("config", "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"✓ account sk: mapping {tmp_path / 'sk-mapping.toml'}: valid (2 shop status(es) mapped" in r.stdout
    assert "– account cz: uses [shop] mapping" in r.stdout
    r = shop.cli("mapping", "check")
    assert r.returncode == 0, r.stdout + r.stderr
    sk_part = r.stdout.split("Account sk ([accounts.sk] mapping):")[1]
    assert "packing" in sk_part and "-> shipped" in sk_part
    assert f"✓ {tmp_path / 'sk-mapping.toml'}: valid" in sk_part
    assert "– account cz: uses [shop] mapping" in r.stdout


def test_an_unmapped_status_is_judged_by_the_mapping_of_the_orders_account(world):
    """The unmapped_status alert reads each account's orders against its own mapping: no false alarm for a
    status only SK's mapping knows, and one naming SK's file for a status SK's mapping lacks."""
    from connector.alert_rules import Facts, check_unmapped

    shop, services, cz, sk = world
    cz_orders = [o["id"] for o in cz.state.create_orders(2, status="open")]
    sk_orders = [o["id"] for o in sk.state.create_orders(2, status="open")]
    sync_once(services)
    text = SK_MAPPING.replace('"cancelled" = "cancelled"', '"cancelled" = "cancelled"\n"odoslané" = "shipped"')
    (shop.folder / "sk-mapping.toml").write_text(text, encoding="utf-8")
    shop.write_feed([{"mall_order_id": cz_orders[0], "status": "odoslané"},  # CZ: not in [shop] mapping
                     {"mall_order_id": cz_orders[1], "status": "returned"},  # CZ: mapped, SK's lacks it
                     {**packing(sk_orders[0]), "status": "odoslané"},  # SK: in SK's mapping only
                     {"mall_order_id": sk_orders[1], "status": "returned"}])  # SK: SK's mapping lacks it
    services.close()
    services = Services(shop.config())
    try:
        sync_once(services, sweep=False)
        problems = {p.key: p for p in check_unmapped(Facts(ledger=services.ledger, config=services.config,
                                                           mapping=services.mapping(),
                                                           account_mappings=services.mapping.accounts))}
        assert set(problems) == {"unmapped_status:odoslané", "unmapped_status:sk:returned"}
        assert "(1 order)" in problems["unmapped_status:odoslané"].title
        assert f"for example order {cz_orders[0]}" in problems["unmapped_status:odoslané"].message
        sk_problem = problems["unmapped_status:sk:returned"]
        assert "of account sk" in sk_problem.title and str(shop.folder / "sk-mapping.toml") in sk_problem.message
        assert f"for example order {sk_orders[1]}" in sk_problem.message
        assert [e.body["status"] for e in status_puts(sk, sk_orders[0])] == ["shipped"]
    finally:
        services.close()
