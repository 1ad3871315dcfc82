"""Delivery dates from the shop reach MALL as `delivered`, over real HTTP against the sandbox (issue 15 item 1)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from connector.ledger import schema as s
from connector.sync.common import PRAGUE
from connector.sync.runner import sync_once
from tests.support.worlds import CsvShop, FcShop

pytestmark = pytest.mark.e2e

FMT = "%Y-%m-%d %H:%M:%S"


def shipped_order(sandbox) -> tuple[int, datetime]:
    """An order MALL has had shipped for a while (not MALL Delivery), and MALL's shipped time (Prague)."""
    while True:
        (order,) = sandbox.state.create_orders(1, status="shipped")
        if not order["mdp"]:
            return order["id"], datetime.strptime(order["shipped"], FMT).replace(tzinfo=PRAGUE)


def between(shipped: datetime) -> datetime:
    """A time after MALL shipped the order and not in the future, to the minute (as Czech feeds write it)."""
    now = datetime.now(PRAGUE)
    mid = shipped + (now - shipped) / 2
    t = mid.replace(second=0, microsecond=0)
    return t if t >= shipped else t + timedelta(minutes=1)


def delivered_puts(sandbox, oid):
    return [b for b in (r.body or {} for r in sandbox.request_log.puts(oid)) if b.get("status") == "delivered"]


def test_fastcentrik_feed_with_delivered_at_pushes_delivered(tmp_path, sandbox):
    """The partner's report: vyřízená + DELIVERED_AT gave "1 changed, 0 new change(s)" and MALL kept it shipped."""
    oid, shipped = shipped_order(sandbox)
    when = between(shipped)
    fc = FcShop(tmp_path, sandbox)
    fc.write([{"ORDER_ID": "7", "MALL_ORDER_ID": oid, "STATUS": "vyřízená", "CARRIER": "Zásilkovna",
               "TRACKING_NUMBER": "Z1234567890", "DELIVERED_AT": when.strftime("%d.%m.%Y %H:%M")}])
    services = fc.services()
    try:
        summary = sync_once(services, sweep=False)
        again = sync_once(services, sweep=False)
    finally:
        services.close()
    order = sandbox.state.get(oid)
    assert order["status"] == "delivered"
    assert order["delivered_at"] == when.strftime(FMT)
    assert len(delivered_puts(sandbox, oid)) == 1  # once, also after a second pass
    assert summary.delivery.delivered == 1 and again.delivery.delivered == 0
    assert any("deliveries:" in line for line in summary.lines())


def test_generic_csv_delivered_at_and_first_attempt_go_after_shipped(tmp_path, sandbox):
    (order,) = sandbox.state.create_orders(1, status="open")
    oid = order["id"]
    shop = CsvShop(tmp_path, sandbox)
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "DR9016151977C",
                      "carrier": "Česká pošta"}])
    services = shop_services(shop)
    try:
        sync_once(services, sweep=False)
        shipped = datetime.strptime(sandbox.state.get(oid)["shipped"], FMT).replace(tzinfo=PRAGUE)
        assert sandbox.state.get(oid)["status"] == "shipped"
        # The shop learns the delivery later (times to the second, no later than now).
        shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "DR9016151977C",
                          "carrier": "Česká pošta", "delivered_at": shipped.strftime(FMT),
                          "first_delivery_attempt": shipped.strftime(FMT)}])
        sync_once(services, sweep=False)
    finally:
        services.close()
    puts = [r.body for r in sandbox.request_log.puts(oid)]
    assert [b.get("status") for b in puts] == ["shipped", "delivered"]
    assert puts[1]["delivered_at"] == shipped.strftime(FMT) and puts[1]["first_delivery_attempt"] == shipped.strftime(FMT)


def shop_services(shop):
    from connector.sync.runner import Services

    return Services(shop.config())


def test_a_delivery_before_mall_shipped_is_refused_with_the_reason_kept(tmp_path, sandbox):
    """Shipped waits for a tracking number; the shop's delivery date is earlier than MALL's shipped time."""
    (order,) = sandbox.state.create_orders(1, status="open")
    oid = order["id"]
    early = (datetime.now(PRAGUE) - timedelta(days=2)).strftime(FMT)
    shop = CsvShop(tmp_path, sandbox)
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "delivered_at": early}])  # no tracking number
    services = shop_services(shop)
    try:
        sync_once(services, sweep=False)
        assert delivered_puts(sandbox, oid) == []  # never before shipped
        shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "Z1234567890",
                          "carrier": "Zásilkovna", "delivered_at": early}])
        sync_once(services, sweep=False)
        with services.ledger.read() as c:
            refused = c.execute(s.parcels.select().where(s.parcels.c.mall_order_id == oid)).one()._mapping["refused"]
        events = [m for _, kind, m in services.ledger.orders.events_for(oid) if kind == "delivery_refused"]
    finally:
        services.close()
    assert sandbox.state.get(oid)["status"] == "shipped"
    assert delivered_puts(sandbox, oid) == []
    assert "before MALL shipped the order" in refused and early in refused
    assert len(events) == 1


def test_a_delivery_time_in_the_future_is_refused(tmp_path, sandbox):
    oid, _ = shipped_order(sandbox)
    future = (datetime.now(PRAGUE) + timedelta(days=1)).strftime(FMT)
    shop = CsvShop(tmp_path, sandbox)
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "Z1234567890",
                      "carrier": "Zásilkovna", "delivered_at": future}])
    services = shop_services(shop)
    try:
        sync_once(services, sweep=False)
        with services.ledger.read() as c:
            refused = c.execute(s.parcels.select().where(s.parcels.c.mall_order_id == oid)).one()._mapping["refused"]
    finally:
        services.close()
    assert delivered_puts(sandbox, oid) == [] and sandbox.state.get(oid)["status"] == "shipped"
    assert "is in the future" in refused


def test_mapping_option_delivered_from_date_false_turns_it_off(tmp_path, sandbox):
    oid, shipped = shipped_order(sandbox)
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[to_mall]\nshipped = "shipped"\n[options]\ndelivered_from_date = false\n', encoding="utf-8")
    shop = CsvShop(tmp_path, sandbox, mapping=str(mapping))
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "Z1234567890",
                      "delivered_at": between(shipped).strftime(FMT)}])
    services = shop_services(shop)
    try:
        summary = sync_once(services, sweep=False)
    finally:
        services.close()
    assert summary.delivery.delivered == 0
    assert delivered_puts(sandbox, oid) == [] and sandbox.state.get(oid)["status"] == "shipped"


def test_billing_check_sheet_lists_shipped_but_not_delivered_orders_of_the_period(tmp_path, sandbox):
    from openpyxl import load_workbook

    from connector.exports.billing import build_billing, write_billing

    waiting, shipped = shipped_order(sandbox)
    delivered_oid, shipped2 = shipped_order(sandbox)
    shop = CsvShop(tmp_path, sandbox)
    shop.write_feed([{"mall_order_id": waiting, "status": "shipped", "tracking_number": "Z8000000001",
                      "carrier": "Zásilkovna"},
                     {"mall_order_id": delivered_oid, "status": "shipped", "tracking_number": "Z8000000002",
                      "delivered_at": between(shipped2).strftime(FMT)}])
    services = shop_services(shop)
    try:
        sync_once(services, sweep=False)
        day = shipped.date()
        b = build_billing(services.ledger, day, day)
        out = tmp_path / "billing.xlsx"
        write_billing(b, out)
        other = build_billing(services.ledger, day - timedelta(days=3), day - timedelta(days=1))
    finally:
        services.close()
    items = [x for x in b.check if x.status == "shipped"]
    assert [x.mall_order_id for x in items] == [waiting]
    days = (datetime.now(PRAGUE).date() - day).days
    assert f"{days} days since shipping" in items[0].problem and "Z8000000001" in items[0].todo
    rows = [[c.value for c in r] for r in load_workbook(out)["Check"].iter_rows()]
    assert [waiting, "shipped"] in [r[:2] for r in rows]
    assert [x for x in other.check if x.status == "shipped"] == []  # shipped outside that period
