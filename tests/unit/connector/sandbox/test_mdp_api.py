"""The sandbox's MALL Delivery endpoints over real HTTP: labels, consignments, serial numbers (mall-api.md §2.6-2.7)."""

from __future__ import annotations

import base64
import re

import pytest


def post_labels(mall, labels, **extra):
    return mall.post("/v1/orders/labels", json={"labels_type": "pdf", "first_position": 1, "labels_per_page": 4,
                                                "labels": labels, **extra})


def mdp(sandbox, status="shipping"):
    return sandbox.state.create_orders(1, kind="mdp", status=status)[0]["id"]


def test_labels_answer_barcodes_per_order_and_a_valid_pdf(sandbox, mall):
    a, b = mdp(sandbox), mdp(sandbox, "shipped")
    response = post_labels(mall, [{"order_id": a, "parcel_count": 2}, {"order_id": b, "parcel_count": 1}])
    assert response.status_code == 200
    data = response.json()["data"]
    assert [o["order_id"] for o in data["orders"]] == [a, b]
    assert [len(o["barcodes"]) for o in data["orders"]] == [2, 1]
    every = [c for o in data["orders"] for c in o["barcodes"]]
    assert len(set(every)) == 3
    pdf = base64.b64decode(data["labels_raw"], validate=True)
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    # The xref offsets point at the objects (a reader would open it).
    start = int(re.search(rb"startxref\n(\d+)", pdf).group(1))
    assert pdf[start:start + 4] == b"xref"
    offsets = [int(x) for x in re.findall(rb"(\d{10}) 00000 n", pdf)]
    assert all(re.match(rb"\d+ 0 obj", pdf[o:o + 12]) for o in offsets)
    for code in every:
        assert code.encode() in pdf


def test_zpl_labels_are_text_with_one_block_per_parcel(sandbox, mall):
    oid = mdp(sandbox)
    data = post_labels(mall, [{"order_id": oid, "parcel_count": 3}], labels_type="zpl").json()["data"]
    zpl = base64.b64decode(data["labels_raw"]).decode("ascii")
    assert zpl.count("^XA") == 3 and zpl.count("^BC") == 3
    for code in data["orders"][0]["barcodes"]:
        assert f"^FD{code}^FS" in zpl


@pytest.mark.parametrize("labels, code", [
    ([{"order_id": 1, "parcel_count": 0}], "VALIDATION_ERROR"),
    ([{"order_id": 1, "parcel_count": 101}], "VALIDATION_ERROR"),
    ([], "VALIDATION_ERROR"),
    ("x", "VALIDATION_ERROR"),
])
def test_bad_label_requests_are_400(mall, labels, code):
    response = post_labels(mall, labels)
    assert response.status_code == 400 and response.json()["errorCodes"][0]["errorCode"] == code


def test_labels_only_for_mdp_orders_in_shipping_or_shipped_all_or_nothing(sandbox, mall):
    good = mdp(sandbox)
    opened = mdp(sandbox, "open")
    normal = sandbox.state.create_orders(1, kind="normal", status="shipping")[0]["id"]
    r = post_labels(mall, [{"order_id": good, "parcel_count": 1}, {"order_id": opened, "parcel_count": 1}])
    assert r.status_code == 400 and r.json()["errorCodes"][0]["errorCode"] == "LABELS_NOT_ALLOWED"
    assert sandbox.state.consignments(good) == []  # nothing made for the good one either
    r = post_labels(mall, [{"order_id": normal, "parcel_count": 1}])
    assert r.status_code == 400 and r.json()["errorCodes"][0]["errorCode"] == "NOT_MDP_ORDER"
    assert post_labels(mall, [{"order_id": 99999999999, "parcel_count": 1}]).status_code == 404
    assert mall.get("/v1/orders/labels").status_code == 405


def test_parcel_count_is_frozen_once_shipped_and_consignments_show_the_last_set(sandbox, mall):
    oid = mdp(sandbox)
    assert mall.get(f"/v1/orders/{oid}/consignments").status_code == 404  # no labels yet
    post_labels(mall, [{"order_id": oid, "parcel_count": 2}])
    second = post_labels(mall, [{"order_id": oid, "parcel_count": 3}]).json()["data"]  # still shipping: allowed
    sandbox.state.mall_event(oid, "mdp_ship")
    r = post_labels(mall, [{"order_id": oid, "parcel_count": 1}])
    assert r.status_code == 400 and r.json()["errorCodes"][0]["errorCode"] == "PARCEL_COUNT_FROZEN"
    assert post_labels(mall, [{"order_id": oid, "parcel_count": 3}]).status_code == 200  # the same count: a re-print
    got = mall.get(f"/v1/orders/{oid}/consignments").json()["data"]
    assert {k for k in got} >= {"id", "order_id", "labels_raw", "labels_type", "parcel_count", "type"}
    assert got["order_id"] == oid and got["parcel_count"] == 3 and got["type"] == "online"
    assert got["barcodes"] != second["orders"][0]["barcodes"]  # each call makes a new set
    assert base64.b64decode(got["labels_raw"]).startswith(b"%PDF")


def test_serial_numbers_set_the_items_list_and_an_unknown_item_is_404(sandbox, mall):
    order = sandbox.state.create_orders(1, kind="normal", status="shipping")[0]
    oid, item = order["id"], order["items"][0]["id"]
    r = mall.put(f"/v1/orders/{oid}/items/{item}/serial-numbers", json=["DR0289710229X", "DR0289810229X"])
    assert r.status_code == 200
    assert sandbox.state.get(oid)["items"][0]["serial_numbers"] == ["DR0289710229X", "DR0289810229X"]
    r = mall.put(f"/v1/orders/{oid}/items/NO-SUCH/serial-numbers", json=["X"])
    assert r.status_code == 404 and "NO-SUCH" in r.json()["result"]["message"]
    assert mall.put(f"/v1/orders/99999999999/items/{item}/serial-numbers", json=["X"]).status_code == 404
    for bad in ({"serials": ["X"]}, [1, 2], ["x" * 101]):
        assert mall.put(f"/v1/orders/{oid}/items/{item}/serial-numbers", json=bad).status_code == 400
