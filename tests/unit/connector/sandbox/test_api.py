"""The MALL API over real HTTP: wire format, auth, paging, filters and every rule answered like MALL."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from connector.sandbox import SandboxServer
from tests.conftest import TEST_CLIENT_ID
from tests.support.paths import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "mall" / "orchesty-nodejs-connectors"
OK = {"result": {"code": 200, "status": "OK"}}
DELIVERED_AT = "2024-05-14 10:00:00"


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))["body"]


def keys(d: dict) -> set[str]:
    return set(d)


def test_detail_has_the_recorded_shape(sandbox, mall):
    (order,) = sandbox.state.create_orders(kind="test")  # the recording is a test order in open
    body = mall.get(f"/v1/orders/{order['id']}").json()
    want = recorded("MallGetOrderDetailConnector/mock.json")
    assert keys(body) == keys(want) and body["result"] == want["result"]
    got, exp = body["data"], want["data"]
    assert list(got) == list(exp)  # same keys, same order
    assert keys(got["address"]) - {"company"} == keys(exp["address"])
    assert list(got["items"][0]) == list(exp["items"][0])
    assert got["branches"] == exp["branches"] == {"overridden": False}
    for field in ("id", "purchase_id", "external_order_id", "delivery_method_id"):
        assert type(got[field]) is int
    assert type(got["address"]["phone"]) is str and type(got["address"]["zip"]) is str
    assert type(got["items"][0]["id"]) is str and type(got["items"][0]["article_id"]) is int


def test_basic_list_has_the_recorded_shape(sandbox, mall):
    sandbox.state.create_orders(12, kind="test")
    body = mall.get("/v1/orders", params={"page": 1, "page_size": 10, "filter": "basic", "test": 1}).json()
    want = recorded("MallGetOrderListBatch/mock.json")
    assert list(body) == list(want) and body["result"] == want["result"]
    assert body["paging"] == {"total": 12, "pages": 2, "size": 10, "page": 1}
    assert list(body["paging"]) == list(want["paging"])
    assert all(list(o) == list(want["data"][0]) for o in body["data"])


def test_ids_list_without_filter_basic(sandbox, mall):
    created = sandbox.state.create_orders(3)
    body = mall.get("/v1/orders").json()
    assert body["data"] == [o["id"] for o in created]


def test_put_answer_is_the_recorded_one(sandbox, mall):
    (order,) = sandbox.state.create_orders(kind="normal", status="shipping")
    put = json.loads((FIXTURES / "MallPutOrdersConnector/input.json").read_text())["data"]
    put.pop("id")
    response = mall.put(f"/v1/orders/{order['id']}", json=put)
    assert response.status_code == 200
    assert response.json() == recorded("MallPutOrdersConnector/mock.json") == OK
    after = sandbox.state.get(order["id"])
    assert (after["status"], after["tracking_number"], after["confirmed"]) == ("shipped", "abc123", True)


@pytest.mark.parametrize("params", [{}, {"client_id": "wrong"}, {"client_id": ""}])
def test_missing_or_wrong_client_id_is_401(sandbox, params):
    sandbox.state.create_orders()
    response = httpx.get(f"{sandbox.url}/v1/orders", params=params)
    assert response.status_code == 401
    body = response.json()
    assert body["result"]["code"] == 401 and body["result"]["status"] == "ERROR" and body["result"]["message"]
    assert body["errorCodes"] == [{"errorCode": "UNAUTHORIZED", "message": body["result"]["message"],
                                   "errorAttributes": []}]
    assert TEST_CLIENT_ID not in response.text


def test_unknown_order_and_endpoint_are_404(mall):
    for path in ("/v1/orders/99999999999", "/v1/products"):
        response = mall.get(path)
        assert response.status_code == 404
        assert response.json()["errorCodes"][0]["errorCode"] == "RESOURCE_NOT_FOUND"
    assert mall.put("/v1/orders/99999999999", json={"confirmed": True}).status_code == 404


def test_paging_over_250_orders_like_mall(sandbox, mall):
    """MALL pages by at most 10 (the recording answered page_size=1000 with size 10) and ``size`` counts the
    orders on the page; a bigger page_size is capped, not refused (issue 21 item 4)."""
    created = {o["id"] for o in sandbox.state.create_orders(250)}
    assert sandbox.max_page_size == 10
    seen, sizes = [], []
    for page in range(1, 26):
        body = mall.get("/v1/orders", params={"page": page, "page_size": 1000, "filter": "basic"}).json()
        assert body["paging"] == {"total": 250, "pages": 25, "size": 10, "page": page}
        sizes.append(len(body["data"]))
        seen += [o["id"] for o in body["data"]]
    assert sizes == [10] * 25 and set(seen) == created and len(seen) == 250
    past = mall.get("/v1/orders", params={"page": 26}).json()
    assert past["data"] == [] and past["paging"]["size"] == 0
    assert mall.get("/v1/orders").json()["paging"]["size"] == 10  # default page size 100, capped
    small = mall.get("/v1/orders", params={"page_size": 4, "page": 63}).json()
    assert small["paging"] == {"total": 250, "pages": 63, "size": 2, "page": 63}  # size = orders on the page
    for bad in ({"page_size": 0}, {"page": 0}, {"page": "x"}, {"filter": "full"}):
        response = mall.get("/v1/orders", params=bad)
        assert response.status_code == 400, bad
        assert response.json()["errorCodes"][0]["errorCode"] == "BAD_REQUEST"


def test_max_page_size_is_a_sandbox_setting():
    from connector.sandbox import SandboxServer
    from tests.conftest import TEST_CLIENT_ID

    with SandboxServer(TEST_CLIENT_ID, max_page_size=100) as big:
        big.state.create_orders(150)
        body = httpx.get(f"{big.url}/v1/orders", params={"client_id": TEST_CLIENT_ID, "page_size": 1000}).json()
    assert body["paging"] == {"total": 150, "pages": 2, "size": 100, "page": 1} and len(body["data"]) == 100


def test_blocked_and_test_orders_are_only_listed_when_asked_for(sandbox, mall):
    state = sandbox.state
    blocked = {o["id"] for o in state.create_orders(3, status="blocked")}
    open_ = {o["id"] for o in state.create_orders(2)}
    test = {o["id"] for o in state.create_orders(2, kind="test")}

    def ids(path="/v1/orders", **params):
        return set(mall.get(path, params=params).json()["data"])

    assert ids() == open_
    assert ids(test=1) == open_ | test
    assert ids(status="blocked") == blocked
    assert ids(status="in:open,blocked") == blocked | open_
    assert ids(status="in:open,blocked", test="true") == blocked | open_ | test
    assert ids("/v1/orders/unconfirmed") == blocked | open_  # MALL flags newly created orders unconfirmed
    assert ids("/v1/orders/unconfirmed", test=1) == blocked | open_ | test
    assert ids("/v1/orders/blocked") == blocked  # the deprecated per-status path
    empty = mall.get("/v1/orders", params={"status": "lost"}).json()
    assert empty["data"] == [] and empty["paging"] == {"total": 0, "pages": 1, "size": 0, "page": 1}


def test_field_filters_and_sort(sandbox, mall):
    state = sandbox.state
    mdp = {o["id"] for o in state.create_orders(3, kind="mdp")}
    cod = state.create_orders(3, kind="cod")
    shipped = {o["id"] for o in state.create_orders(2, status="shipped")}

    def ids(**params):
        return mall.get("/v1/orders", params=params).json()["data"]

    assert set(ids(mdp="true")) == mdp and set(ids(mdp=1)) == mdp
    assert set(ids(status="eq:shipped")) == shipped
    assert set(ids(status="in:open,shipping")) == mdp | {o["id"] for o in cod}
    assert set(ids(tracking_number="neq:$null")) == shipped
    assert set(ids(cod="gt:0")) == {o["id"] for o in cod}
    lo = min(o["cod"] for o in cod)
    assert set(ids(cod=f"bt:{lo},{lo}")) == {o["id"] for o in cod if o["cod"] == lo}
    assert ids(_sort="id:desc") == sorted(ids(), reverse=True)
    for bad in ({"colour": "red"}, {"mdp": "maybe"}, {"cod": "bt:1"}, {"_sort": "nothing"}, {"cod": "gt:$null"}):
        assert mall.get("/v1/orders", params=bad).status_code == 400, bad


def test_stats(sandbox, mall):
    sandbox.state.seed_orders(16)
    body = mall.get("/v1/orders/stats", params={"days": 3650}).json()
    assert body["result"] == OK["result"] and sum(body["data"].values()) == 16
    assert set(body["data"]) == {"blocked", "open", "shipping", "shipped", "cancelled", "delivered", "lost", "returned"}
    assert mall.get("/v1/orders/stats", params={"days": "-1"}).status_code == 400


# Each case: (kind, status, confirmed first?, body, errorCode).
VIOLATIONS = [
    ("normal", "open", True, {"status": "delivered", "delivered_at": DELIVERED_AT}, "TRANSITION_NOT_ALLOWED"),
    ("normal", "shipped", True, {"status": "shipping"}, "TRANSITION_NOT_ALLOWED"),
    ("normal", "blocked", True, {"status": "shipping"}, "TRANSITION_NOT_ALLOWED"),
    ("normal", "shipping", True, {"status": "shipped"}, "TRACKING_REQUIRED"),
    ("normal", "shipping", True, {"status": "shipped", "tracking_number": "AB1"}, "TRACKING_REQUIRED"),
    ("normal", "shipping", True, {"status": "shipped", "tracking_number": "AB 1/2", "tracking_url": "https://t/1"},
     "TRACKING_NUMBER_INVALID"),
    ("normal", "open", True, {"status": "shipping", "delivered_at": DELIVERED_AT}, "DELIVERED_AT_NOT_ALLOWED"),
    ("normal", "shipped", True, {"status": "delivered"}, "DELIVERED_AT_REQUIRED"),
    ("normal", "open", False, {"status": "shipping"}, "ORDER_NOT_CONFIRMED"),
    ("normal", "open", False, {"confirmed": False, "status": "shipping"}, "ORDER_NOT_CONFIRMED"),
    ("normal", "open", True, {"status": "open"}, "STATUS_UNCHANGED"),
    ("normal", "shipped", True, {"status": "lost"}, "STATUS_NOT_SETTABLE"),
    ("normal", "open", True, {}, "NOTHING_TO_UPDATE"),
    ("mdp", "shipping", True, {"status": "shipped", "tracking_number": "A1", "tracking_url": "https://t/1"},
     "MDP_STATUS_BY_MALL"),
    ("normal", "open", True, {"status": "paid"}, "INVALID_STATUS"),
    ("normal", "open", True, {"confirmed": "yes"}, "VALIDATION_ERROR"),
    ("normal", "shipped", True, {"status": "delivered", "delivered_at": "14.05.2024 10:00"}, "INVALID_DATE_FORMAT"),
    ("normal", "open", True, {"confirmed": True, "tracking_nr": "A1"}, "UNKNOWN_FIELD"),
]


@pytest.mark.parametrize("kind,status,confirm_first,body,code", VIOLATIONS)
def test_rule_violations_are_400_with_the_rule_code(sandbox, mall, kind, status, confirm_first, body, code):
    (order,) = sandbox.state.create_orders(kind=kind, status=status)
    if confirm_first:
        assert mall.put(f"/v1/orders/{order['id']}", json={"confirmed": True}).status_code == 200
    before = sandbox.state.get(order["id"])
    response = mall.put(f"/v1/orders/{order['id']}", json=body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["result"]["code"] == 400 and payload["result"]["status"] == "ERROR"
    assert payload["errorCodes"] == [{"errorCode": code, "message": payload["result"]["message"], "errorAttributes": []}]
    assert sandbox.state.get(order["id"]) == before
    assert sandbox.request_log.last().applied is False


def test_malformed_json_is_400(sandbox, mall):
    (order,) = sandbox.state.create_orders()
    for content in (b"{not json", b"", b"[1, 2]", "\udc80".encode("utf-8", "surrogatepass")):
        response = mall.put(f"/v1/orders/{order['id']}", content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.json()["errorCodes"][0]["errorCode"] == "BAD_REQUEST"


def test_a_full_partner_lifecycle(sandbox, mall):
    (order,) = sandbox.state.create_orders(kind="cod")
    oid = order["id"]
    steps = [
        {"confirmed": True},
        {"status": "shipping"},
        {"status": "shipped", "tracking_number": "Z-123.a_b", "tracking_url": "https://tracking.example/Z-123.a_b"},
        {"status": "delivered", "delivered_at": DELIVERED_AT, "first_delivery_attempt": "2024-05-14 09:00:00"},
    ]
    for body in steps:
        assert mall.put(f"/v1/orders/{oid}", json=body).json() == OK
    got = mall.get(f"/v1/orders/{oid}").json()["data"]
    assert got["status"] == "delivered" and got["confirmed"] is True
    assert got["delivered_at"] == DELIVERED_AT and got["first_delivery_attempt"] == "2024-05-14 09:00:00"
    assert got["tracking_number"] == "Z-123.a_b"
    assert all(got[s] for s in ("blocked", "open", "shipping", "shipped", "delivered"))
    assert [h["who"] for h in sandbox.state.history(oid)] == ["mall", "mall", "partner", "partner", "partner", "partner"]
    assert [e.applied for e in sandbox.request_log.puts(oid)] == [True] * 4
    assert mall.get("/v1/orders/unconfirmed").json()["data"] == []


def test_tracking_endpoint_only_while_shipped(sandbox, mall):
    (shipped,) = sandbox.state.create_orders(status="shipped")
    (shipping,) = sandbox.state.create_orders(status="shipping")
    (mdp,) = sandbox.state.create_orders(kind="mdp", status="shipped")
    body = {"tracking_number": "NEW123", "tracking_url": "https://tracking.example/NEW123"}
    assert mall.put(f"/v1/orders/{shipped['id']}/tracking", json=body).json() == OK
    assert sandbox.state.get(shipped["id"])["tracking_number"] == "NEW123"
    assert sandbox.request_log.last().applied is True
    assert mall.put(f"/v1/orders/{shipped['id']}/tracking", json=body).status_code == 200
    assert sandbox.request_log.last().applied is False  # same values again: nothing changed
    for oid, code in ((shipping["id"], "TRACKING_NOT_ALLOWED"), (mdp["id"], "MDP_TRACKING_BY_MALL")):
        response = mall.put(f"/v1/orders/{oid}/tracking", json=body)
        assert response.status_code == 400 and response.json()["errorCodes"][0]["errorCode"] == code
    bad = mall.put(f"/v1/orders/{shipped['id']}/tracking", json={**body, "tracking_number": "a b"})
    assert bad.json()["errorCodes"][0]["errorCode"] == "TRACKING_NUMBER_INVALID"
    assert mall.get(f"/v1/orders/{shipped['id']}/tracking").status_code == 405


def test_mall_event_resets_confirmed_and_lists_the_order_unconfirmed(sandbox, mall, operator):
    (order,) = sandbox.state.create_orders()
    oid = order["id"]
    mall.put(f"/v1/orders/{oid}", json={"confirmed": True})
    assert oid not in mall.get("/v1/orders/unconfirmed").json()["data"]
    response = operator.post(f"/orders/{oid}/events", json={"action": "customer_cancel"})
    assert response.status_code == 200 and response.json()["order"]["status"] == "cancelled"
    got = mall.get(f"/v1/orders/{oid}").json()["data"]
    assert got["status"] == "cancelled" and got["confirmed"] is False and got["cancelled"]
    assert oid in mall.get("/v1/orders/unconfirmed").json()["data"]
    assert sandbox.state.history(oid)[-1]["who"] == "mall"
    # the partner acknowledges; a final status can no longer change
    assert mall.put(f"/v1/orders/{oid}", json={"confirmed": True}).status_code == 200
    assert mall.put(f"/v1/orders/{oid}", json={"status": "shipping"}).json()["errorCodes"][0]["errorCode"] == \
        "TRANSITION_NOT_ALLOWED"


def test_operator_endpoints(sandbox, operator):
    assert "POST /_sandbox/orders" in operator.get("").json()["endpoints"]
    created = operator.post("/orders", json={"count": 2, "kind": "pickup", "status": "blocked"})
    assert created.status_code == 201
    orders = created.json()["orders"]
    assert [o["status"] for o in orders] == ["blocked", "blocked"] and all("branch_id" in o for o in orders)
    oid = orders[0]["id"]
    raw = operator.get(f"/orders/{oid}").json()
    assert raw["order"]["id"] == oid and raw["history"][0]["action"] == "create"
    assert operator.post(f"/orders/{oid}/events", json={"action": "pay"}).json()["order"]["status"] == "open"
    moved = operator.post(f"/orders/{oid}/events", json={"action": "change_branch", "branch_id": 4242}).json()
    assert moved["order"]["branch_id"] == 4242 and moved["order"]["branches"]["overridden"] is True
    assert operator.get("/orders").json()["orders"][0] == {"id": oid, "status": "open", "confirmed": False,
                                                          "test": False, "mdp": False}
    refusals = [
        (operator.post(f"/orders/{oid}/events", json={"action": "pay"}), 409),
        (operator.post(f"/orders/{oid}/events", json={"action": "mdp_ship"}), 409),
        (operator.post(f"/orders/{oid}/events", json={"action": "explode"}), 400),
        (operator.post("/orders/123/events", json={"action": "pay"}), 404),
        (operator.get("/orders/123"), 404),
        (operator.post("/orders", json={"kind": "test", "status": "blocked"}), 400),
        (operator.post("/orders", content=b"{oops"), 400),
        (operator.delete("/orders"), 405),
        (operator.get("/nothing-here"), 404),
        (operator.post("/webhook-url", json={"url": "ftp://x"}), 400),
    ]
    for response, status in refusals:
        assert response.status_code == status, response.text
        assert response.json()["error"]


def test_operator_endpoints_need_no_client_id_but_are_not_logged(sandbox, operator, mall):
    operator.post("/orders", json={"count": 1})
    mall.get("/v1/orders")
    assert [e.path for e in sandbox.request_log] == ["/v1/orders"]
    assert operator.get("/requests").json()["requests"][0]["path"] == "/v1/orders"
    assert operator.delete("/requests").status_code == 200 and len(sandbox.request_log) == 0


def test_keep_alive_connection_serves_many_requests(sandbox, mall):
    sandbox.state.create_orders(3)
    ports = set()
    for _ in range(5):
        response = mall.get("/v1/orders", extensions={})
        assert response.status_code == 200 and response.http_version == "HTTP/1.1"
        ports.add(response.extensions["network_stream"].get_extra_info("client_addr")[1])
    assert len(ports) == 1


def test_start_and_stop_from_another_thread():
    server = SandboxServer(TEST_CLIENT_ID, orders=8, seed=1)
    threading.Thread(target=server.start).start()
    for _ in range(100):
        try:
            url = server.url
            break
        except RuntimeError:
            threading.Event().wait(0.01)
    with httpx.Client(base_url=url, params={"client_id": TEST_CLIENT_ID}) as client:
        assert client.get("/v1/orders/stats", params={"days": 3650}).status_code == 200
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        stopper.join(timeout=5)
        assert not stopper.is_alive()
        with pytest.raises(httpx.TransportError):  # the kept-alive connection was closed too
            client.get("/v1/orders")


def test_context_manager():
    with SandboxServer(TEST_CLIENT_ID, orders=3) as server:
        assert httpx.get(f"{server.url}/v1/orders", params={"client_id": TEST_CLIENT_ID}).status_code == 200
    with pytest.raises(RuntimeError):
        server.url
