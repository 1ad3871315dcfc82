"""check_deadlines: MALL's 24-hour rule, each way an item opens and each way it clears."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from connector.sync.deadlines import check_deadlines


def deadline_items(ledger) -> dict[int, dict]:
    return {a["mall_order_id"]: a for a in ledger.actions.open() if a["kind"] == "deadline"}


def all_items(ledger) -> dict[str, dict]:
    from sqlalchemy import select

    from connector.ledger import schema as s

    with ledger.read() as c:
        return {r.key: dict(r._mapping) for r in c.execute(select(s.actions))}


@pytest.fixture
def fresh(mall):
    """One open order, recorded; returns (id, when MALL says it became open)."""
    oid = mall.create(1)[0]
    order = mall.record(oid)[0]
    assert order.open is not None
    return oid, order.open


def test_opens_after_warn_hours_once_with_hours_left(fresh, ledger):
    oid, opened = fresh
    assert check_deadlines(ledger, now=opened + timedelta(hours=19.9), warn_after_h=20) == 0
    assert deadline_items(ledger) == {}

    assert check_deadlines(ledger, now=opened + timedelta(hours=21), warn_after_h=20) == 1
    item = deadline_items(ledger)[oid]
    assert item["key"] == f"deadline:{oid}"
    assert "open on MALL for 21.0 h" in item["message"]
    assert "3.0 h left" in item["message"]
    assert "set it to shipping in the shop" in item["message"]

    # Later passes do not pile up duplicates.
    assert check_deadlines(ledger, now=opened + timedelta(hours=22), warn_after_h=20) == 0
    assert len(ledger.actions.open()) == 1


def test_overdue_message_and_naive_utc_now(fresh, ledger):
    oid, opened = fresh
    naive_utc = (opened + timedelta(hours=25.5)).astimezone(timezone.utc).replace(tzinfo=None)
    assert check_deadlines(ledger, now=naive_utc, warn_after_h=20) == 1
    msg = deadline_items(ledger)[oid]["message"]
    assert "the limit passed 1.5 h ago" in msg and "Process it now" in msg


def test_warn_hours_come_from_the_caller(fresh, ledger):
    oid, opened = fresh
    assert check_deadlines(ledger, now=opened + timedelta(hours=13), warn_after_h=12) == 1
    assert "11.0 h left" in deadline_items(ledger)[oid]["message"]


def test_clears_when_the_order_moves_on_mall(fresh, mall, ledger):
    oid, opened = fresh
    later = opened + timedelta(hours=21)
    check_deadlines(ledger, now=later, warn_after_h=20)
    mall.to_shipping(oid)  # a person packed it and set it in the portal
    mall.record(oid)

    assert check_deadlines(ledger, now=later, warn_after_h=20) == 0
    assert deadline_items(ledger) == {}
    done = all_items(ledger)[f"deadline:{oid}"]
    assert done["done_at"] is not None and "shipping" in done["done_note"]


def test_clears_when_mall_cancels(fresh, mall, ledger):
    oid, opened = fresh
    later = opened + timedelta(hours=21)
    check_deadlines(ledger, now=later, warn_after_h=20)
    mall.mall_event(oid, "customer_cancel")
    mall.record(oid)
    check_deadlines(ledger, now=later, warn_after_h=20)
    assert "cancelled" in all_items(ledger)[f"deadline:{oid}"]["done_note"]


@pytest.mark.parametrize("state", ["pending", "sending", "done"])
def test_shop_moved_on_clears_and_prevents(fresh, mall, ledger, state):
    oid, opened = fresh
    other = mall.create(1)[0]
    mall.record(other)
    later = opened + timedelta(hours=21)
    assert check_deadlines(ledger, now=later, warn_after_h=20) == 2
    with ledger.write() as c:
        for o in (oid, other):
            ledger.changes.insert(c, key=f"shop:{o}:shipping", order_id=o, origin="shop", kind="status",
                                 shop_status="Vyřizuje se", target_status="shipping", state=state)

    assert check_deadlines(ledger, now=later, warn_after_h=20) == 0
    assert deadline_items(ledger) == {}
    assert "the shop moved the order on" in all_items(ledger)[f"deadline:{oid}"]["done_note"]


def test_a_failing_shop_change_does_not_count_as_moved_on(fresh, ledger):
    oid, opened = fresh
    with ledger.write() as c:
        ledger.changes.insert(c, key=f"shop:{oid}:shipping", order_id=oid, origin="shop", kind="status",
                             target_status="shipping", state="retry")
        ledger.changes.insert(c, key=f"mall:{oid}:new", order_id=oid, origin="mall", kind="new_order",
                             target_status="open", state="done")
    assert check_deadlines(ledger, now=opened + timedelta(hours=21), warn_after_h=20) == 1
    assert "waiting for a retry" in deadline_items(ledger)[oid]["message"]


def test_skips_test_orders_unless_asked_and_orders_without_data(mall, ledger):
    test = mall.create(1, "test")[0]
    opened = mall.record(test)[0].open
    with ledger.write() as c_:
        ledger.orders.ensure(c_, 99900000102, mall_status="open")  # from the shop feed only: no snapshot, no open time
    later = opened + timedelta(hours=21)

    assert check_deadlines(ledger, now=later, warn_after_h=20) == 0
    assert check_deadlines(ledger, now=later, warn_after_h=20, include_test=True) == 1
    assert set(deadline_items(ledger)) == {test}


def test_older_orders_and_config_default(mall, ledger):
    from connector.config import SyncConfig

    ids = mall.create(3)
    orders = mall.record(*ids)
    newest = max(o.open for o in orders)
    assert SyncConfig().confirm_deadline_warn_h == 20.0
    assert check_deadlines(ledger, now=newest + timedelta(hours=20, minutes=1)) == 3
