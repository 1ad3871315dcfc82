"""FastCentrik and MALL Delivery end to end: PARCEL_COUNT and SERIAL_NUMBERS in the XML export → labels and
serial numbers on the sandbox over real HTTP."""

from __future__ import annotations

import pytest

from tests.support.worlds import FcShop

pytestmark = pytest.mark.e2e


def test_parcel_count_and_serial_numbers_from_the_fastcentrik_export(tmp_path, sandbox):
    from connector.sync.runner import sync_once

    shop = FcShop(tmp_path, sandbox, extra='[mdp]\nlabels_dir = "labels"\n')
    (order,) = sandbox.state.create_orders(1, kind="mdp", status="open")
    oid, item = order["id"], order["items"][0]["id"]
    row = {"MALL_ORDER_ID": oid, "ORDER_ID": "FC-1", "STATUS": "vyřizuje se", "PARCEL_COUNT": 3,
           "SERIAL_NUMBERS": f"{item}:SN-A,SN-B"}
    shop.write([row])
    services = shop.services()
    try:
        sync_once(services, sweep=False)
    finally:
        services.close()
    assert sandbox.state.get(oid)["status"] == "shipping"
    (post,) = sandbox.request_log.find("POST", "/v1/orders/labels")
    assert post.body["labels"] == [{"order_id": oid, "parcel_count": 3}]
    assert len(list((tmp_path / "labels").glob("labels-*.pdf"))) == 1
    serial_puts = [e for e in sandbox.request_log.puts(oid) if e.path.endswith("/serial-numbers")]
    assert [e.body for e in serial_puts] == [["SN-A", "SN-B"]]
    assert sandbox.state.get(oid)["items"][0]["serial_numbers"] == ["SN-A", "SN-B"]

    shop.write([row])  # the same export again: nothing more to MALL
    services = shop.services()
    try:
        sync_once(services, sweep=False)
    finally:
        services.close()
    assert len(sandbox.request_log.find("POST", "/v1/orders/labels")) == 1
    assert len([e for e in sandbox.request_log.puts(oid) if e.path.endswith("/serial-numbers")]) == 1


def test_a_malformed_serial_numbers_field_is_a_bad_row_naming_the_order(tmp_path, sandbox):
    from connector.sync.runner import sync_once

    shop = FcShop(tmp_path, sandbox)
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, kind="normal", status="open")]
    shop.write([{"MALL_ORDER_ID": oid, "STATUS": "vyřizuje se", "SERIAL_NUMBERS": "no colon here"}])
    services = shop.services()
    try:
        summary = sync_once(services, sweep=False)
    finally:
        services.close()
    (problem,) = summary.poll.problems
    assert f"order {oid}: serial_numbers part 'no colon here'" in problem.message
