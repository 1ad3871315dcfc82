"""The real MallClient against the sandbox over real HTTP: every method, typed errors, retries, ambiguity.

Retries use a tiny RetryPolicy whose ``sleep`` records the wait and "lets time pass" by clearing the
sandbox's faults, so nothing really sleeps and each retry is deterministic.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from connector.mall.client import MallClient, RetryPolicy
from connector.mall.errors import (
    MallNotFound,
    MallOutcomeUnknown,
    MallRateLimited,
    MallServerError,
    MallTransportError,
    MallUnauthorized,
    MallValidationError,
)
from connector.mall.models import BasicOrder, Order, StatusUpdate
from connector.mall.statuses import Status
from connector.sandbox.faults import Faults
from connector.sandbox.state import PRAGUE
from tests.conftest import TEST_CLIENT_ID


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sandbox, sleeps):
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        sandbox.faults = Faults()  # the outage / limit window is over

    policy = RetryPolicy(max_attempts=3, base_s=0.01, max_backoff_s=0.02, max_total_s=30, reset_cap_s=60, sleep=sleep)
    with MallClient(sandbox.url, TEST_CLIENT_ID, timeout_s=5, retry=policy) as c:
        yield c


def test_list_orders_reads_every_page(sandbox, client):
    open_ids = [o["id"] for o in sandbox.state.create_orders(230)]
    blocked = sandbox.state.create_orders(3, status="blocked")
    test = sandbox.state.create_orders(2, kind="test")
    orders = client.list_orders(page_size=100)
    assert all(isinstance(o, BasicOrder) for o in orders)
    assert [o.id for o in orders] == open_ids
    # MALL serves at most 10 a page whatever page_size asks (the sandbox's --max-page-size, default 10): the
    # client follows paging.pages, 23 pages for 230 orders, each asked once.
    assert [e.query["page"] for e in sandbox.request_log.gets("/v1/orders")] == [str(p) for p in range(1, 24)]
    assert client.list_orders(basic=False, page_size=1000) == open_ids
    assert {o.id for o in client.list_orders(include_test=True)} == set(open_ids) | {o["id"] for o in test}
    assert [o.id for o in client.list_orders(status="blocked")] == [o["id"] for o in blocked]
    assert len(client.list_orders(status=["open", "blocked"])) == 233
    assert client.list_orders(mdp=True) == []
    first = next(client.iter_orders(page_size=10))
    assert first.id == open_ids[0] and first.customer == sandbox.state.get(open_ids[0])["address"]["name"]


def test_list_unconfirmed(sandbox, client):
    fresh = [o["id"] for o in sandbox.state.create_orders(3, status="blocked")]
    test = sandbox.state.create_orders(kind="test")[0]["id"]
    (done,) = sandbox.state.create_orders()
    client.update_order(done["id"], StatusUpdate(confirmed=True))
    assert [o.id for o in client.list_unconfirmed()] == fresh
    assert [o.id for o in client.list_unconfirmed(include_test=True)] == fresh + [test]


def test_get_order_parses_every_kind(sandbox, client):
    for kind in ("normal", "pickup", "mdp", "cod", "test"):
        (raw,) = sandbox.state.create_orders(kind=kind, status="shipped" if kind != "test" else "open")
        order = client.get_order(raw["id"])
        assert isinstance(order, Order) and order.id == raw["id"] and order.test == (kind == "test")
        assert order.address.name == raw["address"]["name"] and order.items[0].id == raw["items"][0]["id"]
        assert order.open == datetime.strptime(raw["open"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=PRAGUE)
        if kind == "pickup":
            assert order.branch_id == raw["branch_id"] == order.branches.branch_id
        if kind == "cod":
            assert order.cod == order.total > 0
        if kind != "test":
            assert order.tracking_number == raw["tracking_number"]


def test_update_order_and_tracking(sandbox, client):
    (raw,) = sandbox.state.create_orders(kind="cod")
    oid = raw["id"]
    client.update_order(oid, StatusUpdate(confirmed=True, status=Status.SHIPPING))
    client.update_order(oid, StatusUpdate(status="shipped", tracking_number="PPL-1", tracking_url="https://t.example/1"))
    client.update_tracking(oid, "PPL-2", "https://t.example/2")
    delivered = datetime(2024, 5, 14, 10, 0, tzinfo=PRAGUE)
    client.update_order(oid, StatusUpdate(status="delivered", delivered_at=delivered, first_delivery_attempt=delivered))
    order = client.get_order(oid)
    assert order.status is Status.DELIVERED and order.confirmed and order.tracking_number == "PPL-2"
    assert order.delivered_at == delivered
    assert [e.body for e in sandbox.request_log.puts(oid)][-1] == {
        "status": "delivered", "delivered_at": "2024-05-14 10:00:00", "first_delivery_attempt": "2024-05-14 10:00:00"}
    assert len(sandbox.request_log.applied_puts(oid)) == 4


def test_stats(sandbox, client):
    sandbox.state.seed_orders(24)
    stats = client.stats(days=3650)
    assert sum(stats.model_dump().values()) == 24 and stats.lost == 3


def test_typed_errors(sandbox, client):
    (raw,) = sandbox.state.create_orders(status="shipping")
    with pytest.raises(MallNotFound) as not_found:
        client.get_order(99999999999)
    assert not_found.value.codes == ["RESOURCE_NOT_FOUND"]
    with pytest.raises(MallValidationError) as refused:
        client.update_order(raw["id"], StatusUpdate(confirmed=True, status="shipped"))
    assert refused.value.codes == ["TRACKING_REQUIRED"] and refused.value.status_code == 400
    with pytest.raises(MallValidationError) as tracking:
        client.update_tracking(raw["id"], "T1", "https://t.example/1")
    assert tracking.value.codes == ["TRACKING_NOT_ALLOWED"]
    assert len(sandbox.request_log.puts()) == 2  # 4xx answers are never retried
    with MallClient(sandbox.url, "not-the-right-id", retry=RetryPolicy(max_attempts=1)) as stranger:
        with pytest.raises(MallUnauthorized) as unauthorized:
            stranger.list_orders()
    assert "not-the-right-id" not in str(unauthorized.value) and TEST_CLIENT_ID not in str(unauthorized.value)


def test_429_is_waited_out_and_retried(sandbox, client, sleeps):
    (raw,) = sandbox.state.create_orders()
    sandbox.faults = Faults(rate_limit_rate=1.0, rate_limit_reset_s=3)
    assert client.get_order(raw["id"]).id == raw["id"]
    sandbox.faults = Faults(rate_limit_rate=1.0, rate_limit_reset_s=2)
    client.update_order(raw["id"], StatusUpdate(confirmed=True))  # MALL did not act on a 429: safe to re-send
    assert sleeps == [3, 2]
    assert [(e.method, e.status_code) for e in sandbox.request_log] == [
        ("GET", 429), ("GET", 200), ("PUT", 429), ("PUT", 200)]
    assert len(sandbox.request_log.applied_puts(raw["id"])) == 1


def test_long_rate_limit_is_not_waited_for(sandbox, client, sleeps):
    sandbox.faults = Faults(rate_limit_budget=0, rate_limit_window_s=600)
    with pytest.raises(MallRateLimited) as limited:
        client.list_orders()
    assert limited.value.reset_s == 600 and sleeps == [] and len(sandbox.request_log) == 1


def test_5xx_and_drops_on_reads_are_retried(sandbox, client, sleeps):
    sandbox.state.create_orders(2)
    sandbox.faults = Faults(error_rate=1.0)
    assert len(client.list_orders()) == 2
    sandbox.faults = Faults(drop_rate=1.0)
    assert len(client.list_orders(basic=False)) == 2
    assert [e.fault for e in sandbox.request_log] == ["5xx", None, "drop", None] and len(sleeps) == 2


def test_5xx_after_apply_is_outcome_unknown_and_sent_once(sandbox, client):
    (raw,) = sandbox.state.create_orders(status="shipping")
    sandbox.faults = Faults(error_after_apply_rate=1.0)
    update = StatusUpdate(confirmed=True, status="shipped", tracking_number="T-9", tracking_url="https://t.example/9")
    with pytest.raises(MallOutcomeUnknown) as unknown:
        client.update_order(raw["id"], update)
    assert isinstance(unknown.value.cause, MallServerError)
    (put,) = sandbox.request_log.puts(raw["id"])  # exactly once: never re-sent blindly
    assert (put.status_code, put.applied, put.fault) == (500, True, "5xx_after_apply")
    assert client.get_order(raw["id"]).status is Status.SHIPPED  # re-reading shows it was applied


def test_5xx_before_apply_is_also_outcome_unknown_for_the_client(sandbox, client):
    (raw,) = sandbox.state.create_orders()
    sandbox.faults = Faults(error_rate=1.0)
    with pytest.raises(MallOutcomeUnknown):
        client.update_order(raw["id"], StatusUpdate(confirmed=True))
    (put,) = sandbox.request_log.puts(raw["id"])
    assert (put.applied, put.fault) == (False, "5xx")
    assert client.get_order(raw["id"]).confirmed is False


def test_dropped_put_is_outcome_unknown(sandbox, client):
    (raw,) = sandbox.state.create_orders()
    sandbox.faults = Faults(drop_rate=1.0, methods=("PUT",))
    with pytest.raises(MallOutcomeUnknown) as unknown:
        client.update_order(raw["id"], StatusUpdate(confirmed=True))
    assert isinstance(unknown.value.cause, MallTransportError)
    assert [(e.fault, e.status_code) for e in sandbox.request_log.puts()] == [("drop", None)]


def test_on_response_hook_sees_every_answer(sandbox):
    seen: list[tuple[str, int]] = []
    sandbox.state.create_orders()
    with MallClient(sandbox.url, TEST_CLIENT_ID, on_response=lambda endpoint, status: seen.append((endpoint, status))) as c:
        c.list_orders()
        c.stats()
    assert seen == [("GET /v1/orders", 200), ("GET /v1/orders/stats", 200)]


def test_decimal_money_survives(sandbox, client):
    (raw,) = sandbox.state.create_orders(kind="cod")
    order = client.get_order(raw["id"])
    assert order.cod == Decimal(str(raw["cod"]))


def test_unconfirmed_sweep_reads_every_page_under_malls_cap(sandbox, client):
    """The sweep's list is paged like MALL (10 a page, size = orders on the page): all 35 arrive, 4 calls."""
    fresh = [o["id"] for o in sandbox.state.create_orders(35)]
    sandbox.request_log.clear()
    assert [o.id for o in client.list_unconfirmed()] == fresh
    calls = sandbox.request_log.gets("/v1/orders/unconfirmed")
    assert [e.query["page"] for e in calls] == ["1", "2", "3", "4"]
    assert all(e.query["page_size"] == "100" for e in calls)  # asked for 100, capped to 10 by the sandbox
