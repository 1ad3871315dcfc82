"""The models against every recorded MALL response, and the tolerance rules MALL's data needs."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pydantic
import pytest

from connector.mall.models import (
    PRAGUE,
    BasicOrder,
    ConsignmentStatus,
    Order,
    Paging,
    Stats,
    StatusUpdate,
    parse_mall_datetime,
)
from connector.mall.statuses import Status

from .conftest import FIXTURES, load_fixture

ALL_FIXTURES = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.json"))


def test_fixture_set_is_the_one_we_expect():
    # Guards the parametrised test below against silently testing nothing.
    assert len(ALL_FIXTURES) == 8


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_fixture_parses(name):
    fixture = load_fixture(name)
    if "body" not in fixture:  # a PUT body (input.json); "id" is the path parameter, not a body field
        data = {k: v for k, v in fixture["data"].items() if k != "id"}
        update = StatusUpdate.model_validate(data)
        assert update.to_body() == data
        return
    method, url = fixture["http"].split(" ", 1)
    body = fixture["body"]
    assert body["result"]["status"] == "OK"
    if method == "PUT":
        assert "data" not in body
    elif "/v1/orders?" in url:
        orders = [BasicOrder.model_validate(d) for d in body["data"]]
        assert orders and all(isinstance(o.status, Status) and o.id > 0 for o in orders)
        Paging.model_validate(body["paging"])
    else:
        data = body["data"]
        data = data[0] if isinstance(data, list) else data
        order = Order.model_validate(data)
        assert order.id == data["id"] and order.items


def test_recorded_detail_fields():
    data = load_fixture("orchesty-nodejs-connectors/MallGetOrderDetailConnector/mock.json")["body"]["data"]
    order = Order.model_validate(data)
    assert order.status is Status.OPEN and order.confirmed is False and order.test is True
    assert order.customer_name == "Josef Novák"
    assert order.address.phone == "+420701000001" and order.address.zip == "17001"
    assert order.items[0].id == "104570" and order.items[0].article_id == 100094165277
    assert order.total == Decimal("10000009")
    assert order.ship_date == date(2022, 8, 11) and order.delivery_date == date(2022, 8, 12)
    assert order.branches.overridden is False and order.branches.branch_id is None
    assert order.tracking_number is None and order.delivered_at is None
    # Naive MALL time is Prague local time: 14:56:45 in August is CEST (UTC+2).
    assert order.open == datetime(2022, 8, 11, 12, 56, 45, tzinfo=timezone.utc)
    assert order.open.tzinfo == PRAGUE
    assert order.entered_at(Status.OPEN) == order.open and order.entered_at(Status.SHIPPED) is None


def test_doc_style_detail_numbers_as_strings_histories_and_64bit_ids():
    data = load_fixture("orchesty-nodejs-connectors@b57dc6c3/MallGetOrderDetailConnector/mock.json")["body"]["data"][0]
    order = Order.model_validate(data)
    assert order.address.phone == "420296245025" and order.address.zip == "17000"
    assert order.address.customer_id == 1111111111 and order.items[0].article_id == 100000249018
    assert order.items[0].serial_numbers == ["DR0289710229X", "DR1388350346A"]
    assert order.branches.last_change == datetime(2017, 1, 27, tzinfo=PRAGUE)
    ul = order.ulozenka_status_history[0]
    assert ul.name == "připraveno k výdeji" and ul.date == datetime(2020, 5, 28, 13, 54, 50, tzinfo=PRAGUE)
    cs = order.consignment_status_history[0]
    assert cs.status == "CREATED" and cs.flags == ["damaged"] and cs.tracking_number == "00013832"
    assert cs.date == datetime(2020, 5, 28, 13, 54, 50, tzinfo=PRAGUE)
    # 2 x 350 + 29 delivery + 0 COD fee - 185 discount
    assert order.items_total == Decimal(700) and order.total == Decimal(544)


def test_basic_order_with_every_status_timestamp():
    data = load_fixture("orchesty-nodejs-connectors@7ef92a2a/MallGetOrderListBatch/mock.json")["body"]["data"][0]
    order = BasicOrder.model_validate(data)
    assert order.customer_name == "John Doe" and order.customer_id == 1111111111
    for status in Status:
        assert order.entered_at(status) == datetime(2019, 7, 2, 10, 19, 14, tzinfo=PRAGUE)


def test_total_includes_cod_fee_as_in_malls_example():
    # MALL's doc: 1799 (item) + 29 (delivery) + 39 (COD fee) = 1867 = cod.
    order = Order.model_validate(
        {"id": 1, "status": "open", "cod": 1867, "delivery_price": 29, "cod_price": 39,
         "items": [{"id": "A", "quantity": 1, "price": 1799}]}
    )
    assert order.total == order.cod == Decimal(1867)
    order = Order.model_validate(
        {"id": 1, "status": "open", "discount": "10.5", "items": [{"id": "A", "quantity": 3, "price": 12.1}]}
    )
    assert order.total == Decimal("25.8")  # 3 x 12.10 - 10.50, exact in Decimal


def test_nulls_are_omitted_and_unknown_fields_kept():
    order = Order.model_validate(
        {"id": 90_000_000_001, "status": "SHIPPED", "confirmed": None, "test": None, "tracking_number": None,
         "address": None, "items": None, "brand_new_field": {"x": 1}, "delivery_method": 20}
    )
    assert order.id == 90000000001 and order.status is Status.SHIPPED
    assert order.confirmed is False and order.test is False and order.items == []
    assert order.address is None and order.customer_name is None
    assert order.delivery_method == "20"
    assert order.model_extra == {"brand_new_field": {"x": 1}}
    assert order.model_dump()["brand_new_field"] == {"x": 1}


def test_required_fields_and_unknown_status_are_rejected():
    with pytest.raises(pydantic.ValidationError):
        Order.model_validate({"status": "open"})
    with pytest.raises(pydantic.ValidationError):
        Order.model_validate({"id": 1, "status": "teleported"})


def test_consignment_history_accepts_status_or_code_key():
    assert ConsignmentStatus.model_validate({"status": "DELIVERED"}).status == "DELIVERED"
    assert ConsignmentStatus.model_validate({"code": "LOST", "date": "01.02.2021 03:04:05"}).status == "LOST"
    assert ConsignmentStatus.model_validate({"code": "X"}).date is None


def test_branch_change_time_alias():
    order = Order.model_validate({"id": 1, "status": "open", "branches": {"branch_change_time": "2021-01-02 03:04:05"}})
    assert order.branches.last_change == datetime(2021, 1, 2, 3, 4, 5, tzinfo=PRAGUE)


def test_datetime_parsing_is_prague_local_across_dst():
    winter = parse_mall_datetime("2020-01-15 10:00:00")
    summer = parse_mall_datetime("2020-07-15 10:00:00")
    assert winter.utcoffset() == timedelta(hours=1) and summer.utcoffset() == timedelta(hours=2)
    assert parse_mall_datetime("15.01.2020 10:00:00") == winter
    assert parse_mall_datetime("") is None
    with pytest.raises(ValueError):
        parse_mall_datetime("yesterday")


def test_status_update_body_drops_none_and_formats_prague_time():
    assert StatusUpdate(confirmed=True).to_body() == {"confirmed": True}
    update = StatusUpdate(
        status="delivered",
        delivered_at=datetime(2024, 7, 1, 8, 0, tzinfo=timezone.utc),
        first_delivery_attempt=datetime(2024, 1, 1, 8, 0, tzinfo=timezone.utc),
    )
    assert update.to_body() == {
        "status": "delivered",
        "delivered_at": "2024-07-01 10:00:00",  # CEST
        "first_delivery_attempt": "2024-01-01 09:00:00",  # CET
    }
    assert StatusUpdate().to_body() == {}


def test_status_update_refuses_naive_datetimes_typos_and_bad_status():
    with pytest.raises(pydantic.ValidationError, match="timezone-aware"):
        StatusUpdate(status="delivered", delivered_at=datetime(2024, 7, 1, 8, 0))
    with pytest.raises(pydantic.ValidationError):
        StatusUpdate.model_validate({"status": "shipped", "trackingNumber": "x"})
    with pytest.raises(pydantic.ValidationError):
        StatusUpdate(status="sent")


def test_stats_and_paging():
    stats = Stats.model_validate({"open": 3, "shipped": 2, "delivered": "7"})
    assert (stats.open, stats.shipped, stats.delivered, stats.lost) == (3, 2, 7, 0)
    paging = Paging.model_validate({"pages": 2, "size": 100, "page": 1})
    assert paging.total is None and paging.pages == 2
