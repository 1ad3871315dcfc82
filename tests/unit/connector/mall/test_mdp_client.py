"""The MALL Delivery calls of MallClient over httpx.MockTransport: bodies sent, answers read, never re-sent blindly."""

from __future__ import annotations

import base64

import pytest

from connector.mall.errors import MallBadResponse, MallOutcomeUnknown, MallValidationError
from connector.mall.models import LabelRequest

from .conftest import Recorder, error, ok

PDF = base64.b64encode(b"%PDF-1.4 tiny").decode()


def test_create_labels_sends_the_batch_and_reads_barcodes(make_client):
    rec = Recorder(ok({"orders": [{"order_id": 11, "barcodes": ["B1", "B2"]}, {"order_id": 12, "barcodes": ["B3"]}],
                       "labels_raw": PDF}))
    labels = make_client(rec).create_labels([LabelRequest(order_id=11, parcel_count=2), LabelRequest(order_id=12)],
                                            labels_type="zpl", labels_per_page=1, first_position=1)
    assert rec.requests[0].method == "POST" and rec.requests[0].url.path == "/v1/orders/labels"
    assert rec.body() == {"labels_type": "zpl", "first_position": 1, "labels_per_page": 1,
                          "labels": [{"order_id": 11, "parcel_count": 2}, {"order_id": 12, "parcel_count": 1}]}
    assert labels.barcodes_of(11) == ["B1", "B2"] and labels.content() == b"%PDF-1.4 tiny"


@pytest.mark.parametrize("data, field", [
    ({"orders": [], "labels_raw": "not base64!"}, "data.labels_raw"),
    ({"orders": [{"order_id": 2**63, "barcodes": []}], "labels_raw": PDF}, "data.orders.0.order_id"),
    ({"orders": [{"order_id": 1, "barcodes": ["x" * 65]}], "labels_raw": PDF}, "data.orders.0.barcodes.0"),
    ({"orders": []}, "data.labels_raw"),
])
def test_a_labels_answer_that_does_not_fit_is_named_and_may_have_made_labels(make_client, data, field):
    rec = Recorder(ok(data))
    with pytest.raises(MallOutcomeUnknown) as info:
        make_client(rec).create_labels([LabelRequest(order_id=1)])
    assert isinstance(info.value.cause, MallBadResponse) and info.value.cause.field == field
    assert rec.count == 1


def test_labels_are_never_re_sent_after_a_5xx(make_client):
    rec = Recorder(error(503), ok({"orders": [], "labels_raw": PDF}))
    with pytest.raises(MallOutcomeUnknown):
        make_client(rec, max_attempts=5).create_labels([LabelRequest(order_id=1)])
    assert rec.count == 1


def test_a_refusal_is_a_validation_error(make_client):
    rec = Recorder(error(400, "parcel_count is frozen"))
    with pytest.raises(MallValidationError):
        make_client(rec).create_labels([LabelRequest(order_id=1, parcel_count=3)])


def test_parcel_count_is_bounded_before_anything_is_sent():
    with pytest.raises(ValueError):
        LabelRequest(order_id=1, parcel_count=101)
    with pytest.raises(ValueError):
        LabelRequest(order_id=1, parcel_count=0)


def test_consignments_404_is_none_yet_and_an_object_or_list_is_read(make_client):
    assert make_client(Recorder(error(404))).get_consignments(5) == []
    one = {"id": "7", "order_id": 5, "labels_raw": PDF, "labels_type": "pdf", "parcel_count": 2, "type": "online"}
    (got,) = make_client(Recorder(ok(one))).get_consignments(5)
    assert got.parcel_count == 2 and got.barcodes == []
    assert len(make_client(Recorder(ok([one, one]))).get_consignments(5)) == 2
    with pytest.raises(MallBadResponse) as info:
        make_client(Recorder(ok({**one, "parcel_count": 1000}))).get_consignments(5)
    assert info.value.field == "data.0.parcel_count"


def test_serial_numbers_are_a_bare_array_on_the_items_path(make_client):
    rec = Recorder(ok())
    make_client(rec).set_serial_numbers(10085339302, "T42/9 x", ["SN1", "SN2"])
    assert rec.requests[0].method == "PUT"
    assert rec.requests[0].url.raw_path.split(b"?")[0] == b"/v1/orders/10085339302/items/T42%2F9%20x/serial-numbers"
    assert rec.body() == ["SN1", "SN2"]
    with pytest.raises(ValueError):
        make_client(rec).set_serial_numbers(1, "", ["x"])
