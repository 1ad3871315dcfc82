"""``decide_outbound`` over generated order states: it never asks MALL for an illegal transition, never
asks for the status MALL already has, always carries what MALL requires, and never skips what MALL would
take. The oracle below is written from the README's rules, independently of connector.mall.statuses, and
a second oracle is the sandbox's store itself (an order in the generated state takes the body)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.mall.statuses import Status
from connector.sandbox.state import OrderStore, SandboxError
from connector.sync.decide import decide_outbound
from tests.unit.property import PROFILE

# README, "How a shop status reaches MALL": what a partner may do, written out by hand.
LEGAL = {
    "open": {"shipping", "shipped", "cancelled"},
    "shipping": {"shipped", "cancelled"},
    "shipped": {"delivered", "returned"},
}
LEGAL_MDP = {"open": {"shipping", "cancelled"}, "shipping": {"cancelled"}}
TRACKING = re.compile(r"^[0-9a-zA-Z._-]+$")

statuses = st.sampled_from([s.value for s in Status])
tracking_numbers = st.one_of(st.none(), st.just(""), st.from_regex(r"[0-9A-Za-z._-]{1,20}", fullmatch=True),
                             st.text(max_size=12))
urls = st.one_of(st.none(), st.just(""), st.just("https://t.example/track?n=1"))
dates = st.one_of(st.none(), st.just("2026-11-20 10:11:12"))
payloads = st.fixed_dictionaries({
    "tracking_number": tracking_numbers, "tracking_url": urls, "carrier": st.sampled_from([None, "PPL", "Nobody"]),
    "delivered_at": dates, "first_delivery_attempt": dates,
})


def legal(current: str, target: str, mdp: bool) -> bool:
    return target in (LEGAL_MDP if mdp else LEGAL).get(current, set())


@settings(PROFILE, max_examples=1200)
@given(current=statuses, target=statuses, confirmed=st.booleans(), mdp=st.booleans(), payload=payloads,
       interrupted=st.booleans())
def test_a_push_is_always_a_legal_complete_transition(current, target, confirmed, mdp, payload, interrupted):
    d = decide_outbound(order_id=1, target=Status(target), current=Status(current), confirmed=confirmed, mdp=mdp,
                        payload=payload, interrupted=interrupted)
    assert d.action in ("push", "skip", "done", "fail") and d.reason
    if d.action != "push":
        assert d.body == {}
        if d.action == "done":  # only when our own interrupted push landed
            assert interrupted and current == target
        return
    body = d.body
    assert current != target, "never re-sends a status MALL already has"
    assert legal(current, target, mdp), f"illegal transition {current} → {target} (mdp={mdp})"
    assert body["status"] == target
    assert body.get("confirmed") is (True if not confirmed else None), "confirmed exactly when MALL needs it"
    if target == "shipped" and not mdp:
        assert TRACKING.match(body["tracking_number"]) and body["tracking_url"]
    if target == "delivered":
        assert body["delivered_at"]
    assert "delivered_at" not in body or target == "delivered"
    assert set(body) <= {"status", "confirmed", "tracking_number", "tracking_url", "delivered_at",
                         "first_delivery_attempt"}


@settings(PROFILE, max_examples=1200)
@given(current=statuses, target=statuses, confirmed=st.booleans(), mdp=st.booleans(), payload=payloads)
def test_nothing_mall_would_take_is_skipped(current, target, confirmed, mdp, payload):
    """The other way round: a legal transition with its data is pushed, never skipped or failed."""
    d = decide_outbound(order_id=1, target=Status(target), current=Status(current), confirmed=confirmed, mdp=mdp,
                        payload=payload)
    has_data = True
    if target == "shipped" and not mdp:
        has_data = bool(payload["tracking_number"] and TRACKING.match(payload["tracking_number"])
                        and payload["tracking_url"])
    if target == "delivered":
        has_data = bool(payload["delivered_at"])
    if legal(current, target, mdp) and has_data:
        assert d.action == "push", d
    if current == target:
        assert d.action == "skip" and "already there" in d.reason


def _order_in(store: OrderStore, current: str, mdp: bool, confirmed: bool) -> int:
    """A sandbox order in ``current`` (MALL Delivery or not), confirmed or not."""
    if current == "lost" and not mdp:
        return 0
    kind = "mdp" if mdp else "normal"
    (o,) = store.create_orders(1, kind=kind, status=current)
    store._orders[o["id"]]["confirmed"] = confirmed
    return o["id"]


@settings(PROFILE, max_examples=800)
@given(current=statuses, target=statuses, confirmed=st.booleans(), mdp=st.booleans(), payload=payloads)
def test_the_sandbox_takes_every_push(current, target, confirmed, mdp, payload):
    """Second oracle: MALL's look-alike accepts every body decide_outbound pushes (and changes the order)."""
    d = decide_outbound(order_id=1, target=Status(target), current=Status(current), confirmed=confirmed, mdp=mdp,
                        payload=payload)
    if d.action != "push":
        return
    store = OrderStore(seed=1)
    oid = _order_in(store, current, mdp, confirmed)
    assert oid, "decide pushed for a state MALL cannot have"
    try:
        assert store.partner_update(oid, d.body) is True
    except SandboxError as e:  # pragma: no cover - the failure message is the point
        raise AssertionError(f"MALL would refuse {d.body} on a {current} order (mdp={mdp}): {e.code} {e.message}")
    assert store.get(oid)["status"] == target
