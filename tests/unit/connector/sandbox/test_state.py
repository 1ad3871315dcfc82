"""The order store and generator: realistic, self-consistent orders and MALL's rules on every change."""

from __future__ import annotations

import re
import threading
from datetime import datetime

import pytest

from connector.mall.statuses import ALL_STATUSES, TRACKING_NUMBER_RE, Status
from connector.sandbox import fakedata
from connector.sandbox.state import PRAGUE, OrderStore, SandboxError

DT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NOW = datetime(2024, 5, 14, 10, 30, tzinfo=PRAGUE)
RANK = {s: i for i, s in enumerate(ALL_STATUSES)}


def fixed_store(seed: int = 0) -> OrderStore:
    return OrderStore(seed=seed, clock=lambda: NOW)


def nulls(value, path="") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{path}[{i}]")]
    return []


def test_same_seed_same_orders_and_another_seed_others():
    assert fixed_store(7).seed_orders(30) == fixed_store(7).seed_orders(30)
    assert fixed_store(7).seed_orders(30) != fixed_store(8).seed_orders(30)


def test_seeded_orders_cover_every_status_with_consistent_fields():
    store = fixed_store(1)
    orders = store.seed_orders(120)
    assert {o["status"] for o in orders} == {s.value for s in ALL_STATUSES}
    ids = [o["id"] for o in orders]
    assert ids == sorted(ids) and len(set(ids)) == 120 and ids[0] == 10085339302
    kinds = {"mdp": 0, "pickup": 0, "cod": 0}
    for o in orders:
        status = Status(o["status"])
        history = store.history(o["id"])
        reached = [Status(h["to"]) for h in history]
        assert o["id"] > 2**32 and o["id"] == o["purchase_id"] * 100 + 2
        assert nulls(o) == [], o["id"]
        # the history is a chain from creation by MALL to the current status
        assert history[0]["who"] == "mall" and history[0]["from"] is None
        assert all(h["from"] == prev["to"] for prev, h in zip(history, history[1:]))
        assert reached[-1] is status
        # a timestamp for exactly the statuses the order went through, in time order
        stamps = [o[s.value] for s in reached]
        assert all(DT.match(t) for t in stamps) and stamps == sorted(stamps)
        assert {s.value for s in ALL_STATUSES if s.value in o} == {s.value for s in reached}
        assert DATE.match(o["ship_date"]) and DATE.match(o["delivery_date"]) and o["ship_date"] < o["delivery_date"]
        # tracking from shipped on; delivered_at only when delivered
        assert ("tracking_number" in o) == (Status.SHIPPED in reached)
        if "tracking_number" in o:
            assert TRACKING_NUMBER_RE.match(o["tracking_number"]) and o["tracking_url"].startswith("https://")
        assert ("delivered_at" in o) == (status is Status.DELIVERED)
        if status is Status.DELIVERED:
            assert o["first_delivery_attempt"] <= o["delivered_at"] == o["delivered"]
        if status is Status.LOST:
            assert o["mdp"]
        if status is Status.BLOCKED:
            assert not o["confirmed"]
        if history[-1]["who"] == "partner":
            assert o["confirmed"]
        # customers, items, money
        a = o["address"]
        assert isinstance(a["phone"], str) and isinstance(a["zip"], str) and "@" in a["email"]
        assert a["phone"].startswith("+420" if a["country"] == "CZ" else "+421")
        assert o["currency"] == ("EUR" if a["country"] == "SK" else "CZK")
        for item in o["items"]:
            assert isinstance(item["id"], str) and isinstance(item["article_id"], int) and item["quantity"] >= 1
            assert item["vat"] in ((21, 12, 0) if a["country"] == "CZ" else (23, 19, 5))
        goods = sum(i["price"] * i["quantity"] for i in o["items"])
        if o["payment_type"] == "B":
            kinds["cod"] += 1
            assert o["cod"] == pytest.approx(goods + o["delivery_price"] + o["cod_price"]) and o["cod_price"] > 0
        else:
            assert o["cod"] == 0 and o["cod_price"] == 0
        delivery = next(d for d in fakedata.DELIVERIES if d.code == o["delivery_method"])
        assert delivery.mdp == o["mdp"] and delivery.country == a["country"]
        assert ("branch_id" in o) == delivery.pickup
        if delivery.pickup:
            kinds["pickup"] += 1
            assert o["branches"] == {"branch_id": o["branch_id"], "overridden": False}
        kinds["mdp"] += o["mdp"]
        assert not o["test"]
    assert all(n > 5 for n in kinds.values()), kinds
    assert len({o["address"]["name"] for o in orders}) > 20


@pytest.mark.parametrize("kind", ["normal", "test", "mdp", "pickup", "cod"])
def test_created_orders_are_unconfirmed_queued_and_of_their_kind(kind):
    store = fixed_store()
    orders = store.create_orders(4, kind=kind)
    assert store.pending_changed() == [o["id"] for o in orders]
    for o in orders:
        assert o["status"] == "open" and not o["confirmed"] and o["open"] == NOW.strftime("%Y-%m-%d %H:%M:%S")
        assert o["test"] == (kind == "test")
        assert ("blocked" in o) == (kind != "test")  # test orders start in open
        assert o["mdp"] == (kind == "mdp")
        if kind == "pickup":
            assert isinstance(o["branch_id"], int) and o["branches"]["branch_id"] == o["branch_id"]
        if kind == "cod":
            assert o["cod"] > 0 and o["payment_type"] == "B"
        if kind == "normal":
            assert "branch_id" not in o and o["cod"] == 0
    assert store.drain_changed() == [o["id"] for o in orders]
    assert store.pending_changed() == []


@pytest.mark.parametrize("kwargs", [
    {"kind": "test", "status": "blocked"},
    {"kind": "normal", "status": "lost"},
    {"kind": "gift"},
    {"status": "paid"},
    {"count": 0},
])
def test_create_refuses_impossible_orders(kwargs):
    with pytest.raises(SandboxError) as e:
        fixed_store().create_orders(**kwargs)
    assert e.value.http_status == 400


def test_created_order_in_a_later_status_has_its_past():
    store = fixed_store()
    (o,) = store.create_orders(kind="mdp", status="delivered")
    assert [h["to"] for h in store.history(o["id"])] == ["blocked", "open", "shipping", "shipped", "delivered"]
    assert o["delivered_at"] == o["delivered"] and "tracking_number" in o and not o["confirmed"]


def test_partner_update_history_and_confirmation():
    store = fixed_store()
    (o,) = store.create_orders(kind="normal")
    assert store.partner_update(o["id"], {"confirmed": True, "status": "shipping"}) is True
    assert store.partner_update(o["id"], {"confirmed": True}) is False  # nothing left to change
    after = store.get(o["id"])
    assert after["status"] == "shipping" and after["confirmed"] and after["shipping"]
    assert [(h["who"], h["action"], h["to"]) for h in store.history(o["id"])][-2:] == [
        ("partner", "confirm", "open"), ("partner", "update", "shipping")]
    assert store.pending_changed() == [o["id"]]  # from the creation only: partner changes send no webhook


def test_rules_come_from_check_update():
    store = fixed_store()
    (o,) = store.create_orders(kind="normal")
    with pytest.raises(SandboxError) as e:
        store.partner_update(o["id"], {"status": "shipping"})
    assert (e.value.http_status, e.value.code) == (400, "ORDER_NOT_CONFIRMED")
    assert store.get(o["id"]) == o


def test_concurrent_identical_updates_apply_exactly_once():
    store = fixed_store()
    (o,) = store.create_orders(kind="normal")
    results, barrier = [], threading.Barrier(16)

    def put():
        barrier.wait()
        try:
            results.append(store.partner_update(o["id"], {"confirmed": True, "status": "shipping"}))
        except SandboxError as e:
            results.append(e.code)

    threads = [threading.Thread(target=put) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1 and results.count("STATUS_UNCHANGED") == 15
    assert [h["to"] for h in store.history(o["id"])].count("shipping") == 1


def test_mall_events_follow_mall_may_and_unconfirm():
    store = fixed_store()
    (blocked,) = store.create_orders(kind="normal", status="blocked")
    (mdp,) = store.create_orders(kind="mdp")
    (plain,) = store.create_orders(kind="normal", status="shipped")
    store.drain_changed()

    store.partner_update(blocked["id"], {"confirmed": True})
    paid = store.mall_event(blocked["id"], "pay")
    assert paid["status"] == "open" and not paid["confirmed"] and store.pending_changed() == [blocked["id"]]
    with pytest.raises(SandboxError, match="cannot move"):
        store.mall_event(blocked["id"], "pay")  # open -> open
    with pytest.raises(SandboxError, match="only a blocked order"):
        store.mall_event(blocked["id"], "unpaid_cancel")
    with pytest.raises(SandboxError, match="not a MALL Delivery"):
        store.mall_event(plain["id"], "mdp_deliver")
    with pytest.raises(SandboxError) as e:
        store.mall_event(plain["id"], "dance")
    assert e.value.http_status == 400

    store.partner_update(mdp["id"], {"confirmed": True, "status": "shipping"})
    shipped = store.mall_event(mdp["id"], "mdp_ship")
    assert shipped["status"] == "shipped" and TRACKING_NUMBER_RE.match(shipped["tracking_number"])
    lost = store.mall_event(mdp["id"], "mdp_lose")
    assert lost["status"] == "lost" and lost["lost"]
    assert store.history(mdp["id"])[-1] == {"who": "mall", "action": "mdp_lose", "from": "shipped", "to": "lost",
                                             "when": "2024-05-14 10:30:00"}


def test_change_branch_keeps_the_original_branch():
    store = fixed_store()
    (o,) = store.create_orders(kind="pickup")
    (home,) = store.create_orders(kind="normal")
    old = o["branch_id"]
    moved = store.mall_event(o["id"], "change_branch", branch_id=old + 1)
    assert moved["branch_id"] == old + 1
    assert moved["branches"] == {"branch_id": old, "secondary_branch_id": old + 1, "overridden": True,
                                 "last_change": "2024-05-14 10:30:00"}
    assert moved["status"] == "open" and not moved["confirmed"]
    with pytest.raises(SandboxError, match="not a pickup"):
        store.mall_event(home["id"], "change_branch", branch_id=5)
    with pytest.raises(SandboxError, match="positive integer"):
        store.mall_event(o["id"], "change_branch", branch_id="5")


def test_stats_count_recent_orders_per_status():
    store = fixed_store(2)
    store.seed_orders(40)
    store.create_orders(3, kind="test")
    everything = store.stats(days=3650)
    assert sum(everything.values()) == 40 and list(everything) == [
        "blocked", "open", "shipping", "shipped", "cancelled", "delivered", "lost", "returned"]
    assert sum(store.stats(days=3650, include_test=True).values()) == 43
    assert sum(store.stats(days=1).values()) < 40


def test_reads_are_copies():
    store = fixed_store()
    (o,) = store.create_orders()
    o["status"] = "lost"
    store.get(o["id"])["items"].clear()
    assert store.get(o["id"])["status"] == "open" and store.get(o["id"])["items"]
