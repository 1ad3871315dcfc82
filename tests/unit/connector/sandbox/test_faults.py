"""Fault knobs are observable over HTTP, and the request log tells exactly what happened."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from connector.sandbox.faults import Faults
from tests.conftest import TEST_CLIENT_ID


def test_error_rate_answers_5xx_without_applying(sandbox, mall):
    (order,) = sandbox.state.create_orders()
    sandbox.faults = Faults(error_rate=1.0, error_status=503)
    response = mall.put(f"/v1/orders/{order['id']}", json={"confirmed": True})
    assert response.status_code == 503
    assert response.json()["errorCodes"][0]["errorCode"] == "INTERNAL_ERROR"
    assert sandbox.state.get(order["id"])["confirmed"] is False
    entry = sandbox.request_log.last()
    assert (entry.status_code, entry.fault, entry.applied) == (503, "5xx", False)


def test_faults_can_target_methods(sandbox, mall):
    (order,) = sandbox.state.create_orders()
    sandbox.faults = Faults(error_rate=1.0, methods=("put",))
    assert mall.get(f"/v1/orders/{order['id']}").status_code == 200
    assert mall.put(f"/v1/orders/{order['id']}", json={"confirmed": True}).status_code == 500


def test_random_rate_limit_has_mall_headers(sandbox, mall):
    sandbox.faults = Faults(rate_limit_rate=1.0, rate_limit_reset_s=7)
    response = mall.get("/v1/orders")
    assert response.status_code == 429
    assert response.json()["result"]["status"] == "LIMITED"
    assert response.headers["X-RateLimit-Reset"] == "7" and response.headers["X-RateLimit-Remaining"] == "0"
    assert "w=" in response.headers["X-RateLimit-Limit"]
    assert TEST_CLIENT_ID not in str(response.headers)
    assert sandbox.request_log.last().fault == "429"


def test_rate_limit_budget_allows_n_per_window(sandbox, mall):
    sandbox.faults = Faults(rate_limit_budget=3, rate_limit_window_s=0.6)
    answers = [mall.get("/v1/orders") for _ in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0", "0"]
    assert answers[0].headers["X-RateLimit-Limit"].startswith("3, 3;w=1")
    assert answers[3].headers["X-RateLimit-Reset"] == "1"
    time.sleep(0.65)
    assert mall.get("/v1/orders").status_code == 200  # a new window
    assert len(sandbox.request_log.faults("429")) == 2


def test_drop_closes_the_connection_without_a_reply(sandbox, mall):
    (order,) = sandbox.state.create_orders()
    assert mall.get("/v1/orders").status_code == 200  # a kept-alive connection the drop will cut
    sandbox.faults = Faults(drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        mall.put(f"/v1/orders/{order['id']}", json={"confirmed": True})
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{sandbox.url}/v1/orders", params={"client_id": TEST_CLIENT_ID})  # a fresh connection too
    assert sandbox.state.get(order["id"])["confirmed"] is False
    assert [(e.fault, e.status_code) for e in sandbox.request_log.faults()] == [("drop", None), ("drop", None)]
    sandbox.faults = Faults()
    assert mall.get("/v1/orders").status_code == 200


def test_error_after_apply_applies_then_answers_500(sandbox, mall):
    (order,) = sandbox.state.create_orders(status="shipping")
    oid = order["id"]
    body = {"confirmed": True, "status": "shipped", "tracking_number": "T1", "tracking_url": "https://t.example/T1"}
    sandbox.faults = Faults(error_after_apply_rate=1.0)
    assert mall.put(f"/v1/orders/{oid}", json=body).status_code == 500
    assert sandbox.state.get(oid)["status"] == "shipped"  # it was applied anyway
    sandbox.faults = Faults()
    retry = mall.put(f"/v1/orders/{oid}", json=body)  # a blind re-send is refused by the rules
    assert retry.json()["errorCodes"][0]["errorCode"] == "STATUS_UNCHANGED"
    puts = sandbox.request_log.puts(oid)
    assert [(e.status_code, e.applied, e.fault) for e in puts] == [(500, True, "5xx_after_apply"), (400, False, None)]
    assert len(sandbox.request_log.applied_puts(oid)) == 1


def test_latency(sandbox, mall):
    sandbox.faults = Faults(latency_ms=250)
    started = time.monotonic()
    assert mall.get("/v1/orders").status_code == 200
    assert time.monotonic() - started >= 0.25


def test_same_seed_same_fault_pattern(make_sandbox):
    def pattern(seed):
        mall = make_sandbox(faults=Faults(seed=seed, error_rate=0.5))
        with httpx.Client(base_url=mall.url, params={"client_id": TEST_CLIENT_ID}) as c:
            return [c.get("/v1/orders").status_code for _ in range(24)]

    first = pattern(3)
    assert first == pattern(3) and set(first) == {200, 500}
    assert first != pattern(4)


def test_faults_through_the_operator_endpoint(sandbox, operator, mall):
    assert operator.get("/faults").json()["error_rate"] == 0.0
    changed = operator.post("/faults", json={"error_rate": 1, "methods": ["GET"]}).json()
    assert changed["error_rate"] == 1 and changed["methods"] == ["GET"] and changed["drop_rate"] == 0.0
    assert mall.get("/v1/orders").status_code == 500
    for bad in ({"error_rate": 2}, {"explode": True}, {"error_status": 404}, {"latency_ms": -1}):
        response = operator.post("/faults", json=bad)
        assert response.status_code == 400 and response.json()["error"], bad
    assert operator.delete("/faults").json()["error_rate"] == 0.0
    assert mall.get("/v1/orders").status_code == 200


def test_unauthorized_requests_get_no_faults(sandbox):
    sandbox.faults = Faults(error_rate=1.0)
    assert httpx.get(f"{sandbox.url}/v1/orders").status_code == 401


def test_request_log_records_what_was_asked_and_answered(sandbox, mall):
    (order,) = sandbox.state.create_orders()
    oid = order["id"]
    mall.get("/v1/orders", params={"status": "in:open,shipping", "filter": "basic", "page": 1})
    mall.put(f"/v1/orders/{oid}", json={"confirmed": True})
    mall.put(f"/v1/orders/{oid}", json={"confirmed": True})
    mall.put(f"/v1/orders/{oid}", content=b"{bad", headers={"Content-Type": "application/json"})
    mall.get(f"/v1/orders/{oid}")
    httpx.get(f"{sandbox.url}/v1/orders/{oid}", params={"client_id": "nope"})
    entries = sandbox.request_log.entries()
    assert [(e.method, e.path, e.status_code, e.applied, e.order_id) for e in entries] == [
        ("GET", "/v1/orders", 200, False, None),
        ("PUT", f"/v1/orders/{oid}", 200, True, oid),
        ("PUT", f"/v1/orders/{oid}", 200, False, oid),  # already confirmed: nothing changed
        ("PUT", f"/v1/orders/{oid}", 400, False, oid),
        ("GET", f"/v1/orders/{oid}", 200, False, oid),
        ("GET", f"/v1/orders/{oid}", 401, False, oid),
    ]
    assert entries[0].query == {"status": "in:open,shipping", "filter": "basic", "page": "1"}
    assert entries[1].body == {"confirmed": True} and entries[3].body is None and entries[0].body is None
    assert [e.seq for e in entries] == list(range(1, 7))
    assert all(e.fault is None for e in entries) and entries[0].ts <= entries[-1].ts
    assert TEST_CLIENT_ID not in json.dumps([e.to_dict() for e in entries])
    assert len(sandbox.request_log.puts()) == 3 and len(sandbox.request_log.applied_puts(oid)) == 1
    assert len(sandbox.request_log.find("get", f"/v1/orders/{oid}", status_code=200)) == 1
    sandbox.request_log.clear()
    mall.get("/v1/orders")
    assert [e.seq for e in sandbox.request_log] == [7]


def test_client_id_never_reaches_the_sandbox_logs(sandbox, mall, caplog):
    caplog.set_level("DEBUG", logger="mall_connector.sandbox")
    sandbox.faults = Faults(error_after_apply_rate=1.0)
    (order,) = sandbox.state.create_orders()
    mall.put(f"/v1/orders/{order['id']}", json={"confirmed": True})
    mall.get("/v1/orders")
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("mall_connector.sandbox")]
    assert len(ours) >= 2 and not [m for m in ours if TEST_CLIENT_ID in m]
