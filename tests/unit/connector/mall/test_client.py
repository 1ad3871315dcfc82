"""MallClient over httpx.MockTransport: requests it sends, paging, envelope parsing, typed errors."""

from __future__ import annotations

import httpx
import pytest

import connector
from connector.mall.errors import (
    MallBadResponse,
    MallError,
    MallForbidden,
    MallNotFound,
    MallRateLimited,
    MallServerError,
    MallUnauthorized,
    MallValidationError,
)
from connector.mall.models import BasicOrder, Order, StatusUpdate
from connector.mall.statuses import Status

from .conftest import BASE_URL, CLIENT_ID, Recorder, error, load_fixture, ok

LIST_P1 = load_fixture("orchesty-nodejs-connectors/MallGetOrderListBatch/mock.json")
LIST_P2 = load_fixture("orchesty-nodejs-connectors/MallGetOrderListBatch/1-mock.json")
DETAIL = load_fixture("orchesty-nodejs-connectors/MallGetOrderDetailConnector/mock.json")
DETAIL_ARRAY = load_fixture("orchesty-nodejs-connectors@b57dc6c3/MallGetOrderDetailConnector/mock.json")
PUT_INPUT = load_fixture("orchesty-nodejs-connectors/MallPutOrdersConnector/input.json")
PUT_MOCK = load_fixture("orchesty-nodejs-connectors/MallPutOrdersConnector/mock.json")


def serve(fixture):
    return httpx.Response(fixture["code"], json=fixture["body"])


def by_page(*pages):
    """A handler answering ``page=N`` with ``pages[N-1]``."""

    def handler(request):
        return pages[int(request.url.params["page"]) - 1]

    return handler


# -- what goes on the wire ---------------------------------------------------------------------------


def test_every_request_carries_client_id_and_identifying_headers(make_client):
    rec = Recorder(serve(DETAIL))
    make_client(rec).get_order(23120701)
    req = rec.requests[0]
    assert req.method == "GET" and str(req.url).startswith(BASE_URL + "/v1/orders/23120701?")
    assert req.url.params["client_id"] == CLIENT_ID
    assert req.headers["accept"] == "application/json"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-application-name"] == "mall-connector"
    assert req.headers["x-application-version"] == connector.__version__


def test_list_orders_follows_every_page_like_the_recording(make_client):
    rec = Recorder(by_page(serve(LIST_P1), serve(LIST_P2)))
    orders = make_client(rec).list_orders(include_test=True, page_size=1000)
    assert len(orders) == 20 and all(isinstance(o, BasicOrder) for o in orders)
    assert orders[0].id == 23118801 and orders[-1].id == 23120701
    assert rec.count == 2
    # Same query as the recorded request lines (plus the client_id).
    assert rec.params(0) == {"page": "1", "page_size": "1000", "filter": "basic", "test": "1", "client_id": CLIENT_ID}
    assert rec.params(1)["page"] == "2"
    assert all(r.url.path == "/v1/orders" for r in rec.requests)


def test_paging_stops_at_pages_and_tolerates_missing_total(make_client):
    page = lambda n: ok([{"id": n, "status": "open"}], paging={"pages": 3, "size": 1, "page": n})  # noqa: E731
    # A fourth page would be an AssertionError from by_page's IndexError.
    rec = Recorder(by_page(page(1), page(2), page(3)))
    orders = make_client(rec).list_orders(page_size=1)
    assert [o.id for o in orders] == [1, 2, 3] and rec.count == 3


def test_no_paging_means_one_page_and_empty_page_stops(make_client):
    rec = Recorder(ok([{"id": 5, "status": "shipped"}]))
    assert [o.id for o in make_client(rec).list_orders()] == [5] and rec.count == 1
    rec = Recorder(by_page(ok([{"id": 1, "status": "open"}], paging={"pages": 9}), ok([], paging={"pages": 9})))
    assert [o.id for o in make_client(rec).list_orders()] == [1] and rec.count == 2


def test_order_seen_on_two_pages_is_listed_once_with_latest_data(make_client):
    rec = Recorder(
        by_page(
            ok([{"id": 1, "status": "open"}, {"id": 2, "status": "open"}], paging={"pages": 2}),
            ok([{"id": 2, "status": "shipping"}, {"id": 3, "status": "open"}], paging={"pages": 2}),
        )
    )
    orders = make_client(rec).list_orders()
    assert [(o.id, o.status) for o in orders] == [(1, Status.OPEN), (2, Status.SHIPPING), (3, Status.OPEN)]


def test_iter_orders_goes_page_by_page(make_client):
    rec = Recorder(by_page(serve(LIST_P1), serve(LIST_P2)))
    it = make_client(rec).iter_orders(include_test=True)
    first = next(it)
    assert first.id == 23118801 and rec.count == 1
    assert len(list(it)) == 19 and rec.count == 2


@pytest.mark.parametrize("data", [[101, "102"], {"ids": [101, 102]}])
def test_id_lists_without_filter_basic(make_client, data):
    rec = Recorder(ok(data, paging={"pages": 1}))
    assert make_client(rec).list_orders(basic=False) == [101, 102]
    assert "filter" not in rec.params() and "test" not in rec.params()


def test_list_filters_are_sent_in_malls_syntax(make_client):
    rec = Recorder(ok([]))
    make_client(rec).list_orders(status=["open", "SHIPPING"], mdp=True, customer_id=[1, 2], _sort="id:desc")
    assert rec.params() == {
        "filter": "basic", "status": "in:open,shipping", "mdp": "true", "customer_id": "in:1,2",
        "_sort": "id:desc", "page": "1", "page_size": "100", "client_id": CLIENT_ID,
    }
    make_client(rec).list_orders(status="blocked")
    assert rec.params()["status"] == "blocked"


def test_list_argument_mistakes_fail_before_any_request(make_client):
    rec = Recorder()
    client = make_client(rec)
    with pytest.raises(ValueError, match="client_id"):
        client.list_orders(client_id="x")
    with pytest.raises(ValueError):
        client.list_orders(status="opne")
    with pytest.raises(ValueError):
        client.get_order("1/../../v1/x")
    with pytest.raises(ValueError):
        client.update_order(1, StatusUpdate())
    assert rec.count == 0


def test_list_unconfirmed_all_pages_with_filter_basic(make_client):
    rec = Recorder(by_page(serve(LIST_P1), serve(LIST_P2)))
    orders = make_client(rec).list_unconfirmed(include_test=True)
    assert len(orders) == 20 and not any(o.confirmed for o in orders)
    assert [r.url.path for r in rec.requests] == ["/v1/orders/unconfirmed"] * 2
    assert rec.params(0)["filter"] == "basic" and rec.params(0)["test"] == "1"


def test_get_order_detail(make_client):
    order = make_client(Recorder(serve(DETAIL))).get_order(23120701)
    assert isinstance(order, Order) and order.id == 23120701 and order.status is Status.OPEN


def test_get_order_accepts_one_element_array(make_client):
    rec = Recorder(serve(DETAIL_ARRAY))
    order = make_client(rec).get_order(89591350)
    assert order.id == 89591350 and order.branches.secondary_branch_id == 21


def test_update_order_sends_the_recorded_body(make_client):
    rec = Recorder(serve(PUT_MOCK))
    data = dict(PUT_INPUT["data"])
    order_id = data.pop("id")
    assert make_client(rec).update_order(order_id, StatusUpdate(**data)) is None
    assert rec.count == 1 and rec.requests[0].method == "PUT"
    assert rec.requests[0].url.path == "/v1/orders/23120201"
    assert rec.params() == {"client_id": CLIENT_ID}
    assert rec.body() == {"confirmed": True, "status": "shipped", "tracking_number": "abc123",
                          "tracking_url": "https://www.exampletracker.com/track/abc123"}


def test_update_tracking(make_client):
    rec = Recorder(serve(PUT_MOCK))
    make_client(rec).update_tracking(7, "Z1.2_3-4", "https://t.example/Z1")
    assert rec.requests[0].method == "PUT" and rec.requests[0].url.path == "/v1/orders/7/tracking"
    assert rec.body() == {"tracking_number": "Z1.2_3-4", "tracking_url": "https://t.example/Z1"}


def test_stats(make_client):
    rec = Recorder(ok({"open": 4, "shipped": 1, "blocked": 0}))
    stats = make_client(rec).stats(days=10)
    assert stats.open == 4 and stats.shipped == 1 and stats.delivered == 0
    assert rec.requests[0].url.path == "/v1/orders/stats" and rec.params()["days"] == "10"


def test_on_response_hook_gets_templates_and_codes(make_client):
    calls = []
    rec = Recorder(httpx.ConnectError("refused"), serve(DETAIL), serve(PUT_MOCK), ok({"open": 1}))
    client = make_client(rec, on_response=lambda ep, code: calls.append((ep, code)))
    client.get_order(23120701)
    client.update_order(23120701, StatusUpdate(confirmed=True))
    client.stats()
    assert calls == [
        ("GET /v1/orders/{id}", 0),
        ("GET /v1/orders/{id}", 200),
        ("PUT /v1/orders/{id}", 200),
        ("GET /v1/orders/stats", 200),
    ]


def test_a_failing_hook_does_not_break_the_call(make_client):
    def hook(endpoint, code):
        raise RuntimeError("metrics down")

    assert make_client(Recorder(serve(DETAIL)), on_response=hook).get_order(23120701).id == 23120701


def test_client_repr_shows_base_url_only(make_client):
    client = make_client(Recorder())
    assert repr(client) == f"MallClient(base_url={BASE_URL!r})"
    assert CLIENT_ID not in repr(client) and CLIENT_ID not in str(client)


def test_base_url_with_a_query_is_refused():
    with pytest.raises(ValueError):
        from connector.mall.client import MallClient

        MallClient("https://x.test/?client_id=abc", CLIENT_ID)


# -- typed errors ------------------------------------------------------------------------------------

ERROR_CODES = [{"message": "Order not found", "errorCode": "RESOURCE_NOT_FOUND", "errorAttributes": {"id": 123}}]


@pytest.mark.parametrize(
    ("status_code", "cls"),
    [
        (400, MallValidationError),
        (401, MallUnauthorized),
        (403, MallForbidden),
        (404, MallNotFound),
        (409, MallError),
        (422, MallValidationError),
        (429, MallRateLimited),
        (500, MallServerError),
        (503, MallServerError),
    ],
)
def test_http_errors_become_typed_errors_with_malls_message(make_client, status_code, cls):
    rec = Recorder(error(status_code, "Something is wrong", codes=ERROR_CODES))
    with pytest.raises(MallError) as info:
        make_client(rec, max_attempts=1).get_order(123)
    err = info.value
    assert type(err) is cls
    assert err.status_code == status_code and err.endpoint == "GET /v1/orders/123"
    assert err.message == "Something is wrong"
    assert err.error_codes == ERROR_CODES and err.codes == ["RESOURCE_NOT_FOUND"]
    assert str(err) == f"GET /v1/orders/123: HTTP {status_code}: Something is wrong [RESOURCE_NOT_FOUND (Order not found)]"
    assert err.retryable is (status_code in (429, 500, 503))


@pytest.mark.parametrize(
    ("result", "cls"),
    [({"code": 404, "status": "ERROR", "message": "no such order"}, MallNotFound),
     ({"code": 429, "status": "LIMITED", "message": "limit"}, MallRateLimited),
     ({"status": "ERROR", "message": "odd"}, MallError)],
)
def test_error_envelope_inside_http_200(make_client, result, cls):
    rec = Recorder(httpx.Response(200, json={"result": result}))
    with pytest.raises(MallError) as info:
        make_client(rec, max_attempts=1).get_order(5)
    assert type(info.value) is cls and info.value.message == result["message"]


def test_rate_limit_reset_is_parsed(make_client):
    rec = Recorder(error(429, "slow down", result_status="LIMITED", headers={"X-RateLimit-Reset": "17"}))
    with pytest.raises(MallRateLimited) as info:
        make_client(rec, max_attempts=1).get_order(5)
    assert info.value.reset_s == 17.0 and "resets in 17 s" in str(info.value)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html><body>Maintenance</body></html>", headers={"content-type": "text/html"}),
        httpx.Response(200, json={"data": {"id": 1, "status": "open"}}),
        httpx.Response(200, json=[1, 2, 3]),
        ok([{"id": 1, "status": "open"}, {"id": 2, "status": "open"}]),  # two orders where one is expected
        ok({"id": 1, "status": "no-such-status"}),
        httpx.Response(302, headers={"location": "https://elsewhere.test/"}),
    ],
    ids=["html", "no-result", "bare-list", "two-element-data", "invalid-order", "redirect"],
)
def test_malformed_responses_are_bad_response_naming_the_endpoint(make_client, response):
    rec = Recorder(response)
    with pytest.raises(MallBadResponse) as info:
        make_client(rec).get_order(4242)
    assert info.value.endpoint == "GET /v1/orders/4242"
    assert str(info.value).startswith("GET /v1/orders/4242: HTTP ")
    assert not info.value.retryable and rec.count == 1


def test_malformed_list_is_bad_response(make_client):
    with pytest.raises(MallBadResponse, match="GET /v1/orders"):
        make_client(Recorder(ok("nope", paging={"pages": 1}))).list_orders()
    with pytest.raises(MallBadResponse):
        make_client(Recorder(ok([1, 2]))).list_orders(basic=True)


def test_html_error_page_keeps_the_http_meaning(make_client):
    rec = Recorder(httpx.Response(502, text="<html>Bad Gateway</html>", headers={"content-type": "text/html"}))
    with pytest.raises(MallServerError) as info:
        make_client(rec, max_attempts=1).get_order(1)
    assert info.value.status_code == 502 and info.value.retryable and "not JSON" in info.value.message
