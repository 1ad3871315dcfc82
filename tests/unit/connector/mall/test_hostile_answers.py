"""MALL answers that do not fit, over httpx.MockTransport: each is a MallBadResponse naming endpoint, field and limit.

The original findings: ``purchase_id = 2**63`` (overflows the ledger's signed 64-bit integers) and JSON nested
10 000 deep (raised RecursionError). Counts and bytes are asserted, never time.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc

import httpx
import pytest

from connector.mall.errors import MallBadResponse, MallOutcomeUnknown, MallServerError
from connector.mall.models import StatusUpdate

from .conftest import Recorder, error, ok

ORDER = {"id": 10085339302, "status": "open", "confirmed": False}


def raw(body: bytes, status: int = 200, headers=None) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": "application/json", **(headers or {})})


class Streamed(httpx.SyncByteStream):
    """A body that arrives in 64 KiB chunks, as over a socket (httpx does not pre-read it)."""

    def __init__(self, body: bytes):
        self.body = body

    def __iter__(self):
        for i in range(0, len(self.body), 65536):
            yield self.body[i:i + 65536]


def streamed(body: bytes, headers=None) -> httpx.Response:
    return httpx.Response(200, stream=Streamed(body), headers={"content-type": "application/json", **(headers or {})})


def bad(make_client, response, call=lambda c: c.get_order(10085339302), **kwargs) -> MallBadResponse:
    rec = Recorder(response)
    with pytest.raises(MallBadResponse) as info:
        call(make_client(rec, max_attempts=1, **kwargs))
    assert rec.count == 1  # a bad answer is not asked again
    return info.value


@pytest.mark.parametrize("field, value, where", [
    ("purchase_id", 2**63, "data.purchase_id"),
    ("id", 2**63, "data.id"),
    ("id", 0, "data.id"),
    ("id", "ten", "data.id"),
    ("confirmed", {"x": 1}, "data.confirmed"),
    ("status", "teleported", "data.status"),
    ("cod", 1e300, "data.cod"),
    ("items", [{"id": "A1", "quantity": -1, "price": 10}], "data.items.0.quantity"),
    ("items", [{"id": "A1", "quantity": 1}], "data.items.0.price"),
    ("address", {"customer_id": 2**64}, "data.address.customer_id"),
])
def test_wrong_types_and_numbers_out_of_range_name_the_field(make_client, field, value, where):
    err = bad(make_client, ok({**ORDER, field: value}))
    assert err.endpoint == "GET /v1/orders/10085339302"
    assert err.field == where
    assert where in str(err) and "GET /v1/orders/10085339302" in str(err)


def test_missing_required_field_and_null_data(make_client):
    err = bad(make_client, ok({"status": "open"}))
    assert err.field == "data.id"
    err = bad(make_client, raw(b'{"result": {"code": 200, "status": "OK"}, "data": null}'))
    assert err.field == "data" and "null" in err.message
    err = bad(make_client, raw(b'{"result": {"code": 200, "status": "OK"}, "data": null, "paging": {"total": 3}}'),
              call=lambda c: c.list_orders())
    assert err.endpoint == "GET /v1/orders" and err.field == "data"


def test_an_empty_list_without_data_is_fine_when_paging_says_zero(make_client):
    rec = Recorder(raw(b'{"result": {"code": 200, "status": "OK"}, "paging": {"total": 0, "pages": 1, "page": 1}}'))
    assert make_client(rec).list_orders() == []


def test_json_nested_10000_deep_is_refused_not_a_recursion_error(make_client):
    deep = b'{"result": {"code": 200, "status": "OK"}, "data": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    err = bad(make_client, raw(deep))
    assert err.limit == "max_depth" and "32" in err.message


def test_json_nested_past_the_bound_but_under_the_recursion_limit_is_refused(make_client):
    nested = {"id": 10085339302, "status": "open", "x": json.loads("[" * 100 + "]" * 100)}
    err = bad(make_client, ok(nested))
    assert err.limit == "max_depth"


def test_nan_and_infinity_are_not_numbers(make_client):
    err = bad(make_client, raw(b'{"result": {"code": 200, "status": "OK"}, "data": {"id": 1, "status": "open", '
                               b'"cod": NaN}}'))
    assert "not JSON" in err.message


def test_a_list_id_past_64_bits_names_its_position(make_client):
    page = ok([10085339302, 2**63], paging={"total": 2, "pages": 1, "size": 2, "page": 1})
    err = bad(make_client, page, call=lambda c: c.list_orders(basic=False))
    assert err.field == "data.1"


def test_a_basic_list_entry_out_of_range_names_its_position(make_client):
    page = ok([{"id": 1, "status": "open"}, {"id": 2, "status": "open", "purchase_id": 2**63}],
              paging={"total": 2, "pages": 1, "size": 2, "page": 1})
    err = bad(make_client, page, call=lambda c: c.list_orders())
    assert err.field == "data.1.purchase_id"


# -- paging ------------------------------------------------------------------------------------------------------


def test_pages_1e9_is_refused_on_the_first_page_not_walked(make_client):
    page = raw(json.dumps({"result": {"code": 200, "status": "OK"}, "paging": {"total": 10**10, "pages": 1e9,
               "size": 10, "page": 1}, "data": [{"id": 1, "status": "open"}]}).encode())
    err = bad(make_client, page, call=lambda c: c.list_orders())
    assert err.field == "paging.pages" and err.limit == "max_pages" and "1000" in err.message


def test_max_pages_is_the_cap_even_for_a_consistent_list(make_client):
    def handler(request):
        p = int(request.url.params["page"])
        return ok([{"id": p, "status": "open"}], paging={"total": 50, "pages": 50, "size": 1, "page": p})

    assert len(make_client(Recorder(handler)).list_orders(page_size=1)) == 50  # under the default cap of 1000
    rec = Recorder(handler)
    err = bad(make_client, handler, call=lambda c: c.list_orders(page_size=1), max_pages=5)
    assert err.limit == "max_pages" and err.field == "paging.pages"


@pytest.mark.parametrize("paging, count, field", [
    ({"total": 3, "pages": 1, "size": 10, "page": 1}, 10, "paging.total"),  # more items than total
    ({"total": 0, "pages": 1, "size": 10, "page": 1}, 1, "paging.total"),
    ({"total": 10**9, "pages": 1, "size": 2, "page": 1}, 2, "paging.total"),  # total that cannot fit the pages
    ({"total": 5, "pages": 9, "size": 5, "page": 1}, 5, "paging.pages"),  # more pages than items
    ({"total": 5, "pages": 1, "size": 5, "page": 7}, 5, "paging.page"),  # not the page asked for
    ({"total": 5, "pages": 1, "size": 2, "page": 1}, 5, "paging.size"),  # more items than size says
    ({"total": "many", "pages": 1}, 1, "paging.total"),
    ({"total": 2**63, "pages": 1}, 1, "paging.total"),
])
def test_paging_that_disagrees_with_the_items_is_refused(make_client, paging, count, field):
    page = ok([{"id": i + 1, "status": "open"} for i in range(count)], paging=paging)
    err = bad(make_client, page, call=lambda c: c.list_orders(page_size=10))
    assert err.field == field and err.endpoint == "GET /v1/orders"


def test_more_items_than_page_size_is_refused(make_client):
    page = ok([{"id": i + 1, "status": "open"} for i in range(11)], paging={"total": 11, "pages": 1, "page": 1})
    err = bad(make_client, page, call=lambda c: c.list_orders(page_size=10))
    assert err.field == "data" and err.limit == "page_size"


def test_a_list_paged_like_mall_with_size_the_items_on_the_page_is_read_whole(make_client):
    def handler(request):
        p = int(request.url.params["page"])
        items = [{"id": i, "status": "open"} for i in range(1 + (p - 1) * 10, min(25, p * 10) + 1)]
        return ok(items, paging={"total": 25, "pages": 3, "size": len(items), "page": p})

    rec = Recorder(handler)
    orders = make_client(rec).list_orders(page_size=1000)
    assert [o.id for o in orders] == list(range(1, 26)) and rec.count == 3


# -- size --------------------------------------------------------------------------------------------------------


class Chunks(httpx.SyncByteStream):
    """A body produced chunk by chunk, counting how many chunks the client pulled."""

    def __init__(self, chunk: bytes, count: int, head: bytes = b'{"result": {"code": 200, "status": "OK"}, "data": "'):
        self.head, self.chunk, self.count, self.pulled = head, chunk, count, 0

    def __iter__(self):
        yield self.head
        for _ in range(self.count):
            self.pulled += 1
            yield self.chunk


def test_an_oversized_answer_is_refused_while_streaming_in_bounded_memory(make_client):
    stream = Chunks(b"x" * 65536, 2000)  # 125 MiB if read whole
    response = httpx.Response(200, stream=stream, headers={"content-type": "application/json"})
    tracemalloc.start()
    try:
        err = bad(make_client, response, max_response_bytes=1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.limit == "max_response_bytes" and "1048576" in err.message
    assert stream.pulled <= 17  # stopped just past 1 MiB, not at the end of 125 MiB
    assert peak < 8 * 1024 * 1024


def test_a_declared_content_length_past_the_limit_is_refused_before_reading(make_client):
    stream = Chunks(b"x" * 1024, 10)
    response = httpx.Response(200, stream=stream, headers={"content-length": str(50 * 1024 * 1024)})
    err = bad(make_client, response, max_response_bytes=1024 * 1024)
    assert err.limit == "max_response_bytes" and stream.pulled == 0


def test_a_gzip_bomb_is_refused_past_the_decoded_limit_in_bounded_memory(make_client):
    body = b'{"result": {"code": 200, "status": "OK"}, "data": "' + b"0" * (200 * 1024 * 1024) + b'"}'
    bomb = gzip.compress(body, compresslevel=9)
    del body
    assert len(bomb) < 1024 * 1024  # ~200 KiB on the wire
    response = streamed(bomb, headers={"content-encoding": "gzip"})
    tracemalloc.start()
    try:
        err = bad(make_client, response, max_response_bytes=2 * 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.limit == "max_response_bytes"
    assert peak < 16 * 1024 * 1024


def test_a_gzip_answer_within_the_limit_is_read(make_client):
    body = json.dumps({"result": {"code": 200, "status": "OK"}, "data": ORDER}).encode()
    rec = Recorder(streamed(gzip.compress(body), headers={"content-encoding": "gzip"}))
    assert make_client(rec).get_order(10085339302).id == 10085339302
    assert rec.requests[0].headers["accept-encoding"] == "gzip, deflate"


def test_an_unknown_content_encoding_is_named(make_client):
    err = bad(make_client, streamed(b"\x00\x01", headers={"content-encoding": "br"}))
    assert err.field == "content-encoding"


def test_an_oversized_error_page_is_still_decided_by_its_status(make_client):
    page = raw(b"<html>" + b"x" * (5 * 1024 * 1024), status=503, headers={"content-type": "text/html"})
    rec = Recorder(page)
    with pytest.raises(MallServerError):
        make_client(rec, max_attempts=1).get_order(1)


def test_an_oversized_answer_to_a_put_is_an_unknown_outcome(make_client):
    stream = Chunks(b"x" * 65536, 100)
    response = httpx.Response(200, stream=stream)
    rec = Recorder(response)
    with pytest.raises(MallOutcomeUnknown) as info:
        make_client(rec, max_attempts=1, max_response_bytes=64 * 1024).update_order(
            1, StatusUpdate(status="shipping", confirmed=True))
    assert isinstance(info.value.cause, MallBadResponse) and info.value.cause.limit == "max_response_bytes"
    assert rec.count == 1


def test_a_body_that_never_ends_stops_at_the_deadline(make_client):
    import time

    class Slow(httpx.SyncByteStream):
        pulled = 0

        def __iter__(self):
            yield b'{"result": {"code": 200, "status": "OK"}, "data": "'
            while True:
                Slow.pulled += 1
                time.sleep(0.01)
                yield b"x"

    err = bad(make_client, httpx.Response(200, stream=Slow()), deadline_s=0.2)
    assert err.limit == "deadline_s" and "0.2 s" in err.message
    assert 0 < Slow.pulled < 1000  # it stopped: an endless body was not read to its (missing) end


def test_error_for_every_limit_is_never_retried(make_client):
    # 4 attempts allowed: a hostile answer is asked once, never again within the call.
    rec = Recorder(ok({**ORDER, "purchase_id": 2**63}))
    with pytest.raises(MallBadResponse):
        make_client(rec, max_attempts=4).get_order(10085339302)
    assert rec.count == 1


def test_an_error_status_is_unaffected(make_client):
    rec = Recorder(error(503), ok(ORDER))
    assert make_client(rec).get_order(10085339302).id == 10085339302 and rec.count == 2
