"""The outbound decision table: what the connector does for each (MALL status, shop target) pair."""

import itertools

import pytest

from connector.mall.statuses import PARTNER_TRANSITIONS, Status, partner_may
from connector.sync.decide import MDP_REASON, decide_outbound

S = Status
FULL = {"tracking_number": "TN1", "tracking_url": "https://t/TN1", "delivered_at": "2026-11-20 10:00:00"}


def d(current, target, *, confirmed=True, mdp=False, payload=FULL, interrupted=False):
    return decide_outbound(order_id=7, target=target, current=current, confirmed=confirmed, mdp=mdp,
                           payload=payload, interrupted=interrupted)


@pytest.mark.parametrize("current,target", list(itertools.product(Status, Status)))
def test_never_pushes_an_illegal_transition(current, target):
    for mdp in (False, True):
        dec = d(current, target, mdp=mdp)
        if dec.action == "push":
            assert partner_may(current, target, mdp=mdp)
            assert dec.body["status"] == target.value
        elif partner_may(current, target, mdp=mdp):
            pytest.fail(f"allowed {current}->{target} (mdp={mdp}) was not pushed: {dec}")


def test_already_there_is_skipped_not_resent():
    dec = d(S.SHIPPED, S.SHIPPED)
    assert dec.action == "skip" and dec.reason.startswith("already there")


def test_interrupted_push_found_on_mall_is_done():
    assert d(S.SHIPPED, S.SHIPPED, interrupted=True).action == "done"


def test_unconfirmed_order_is_confirmed_with_the_change():
    assert d(S.OPEN, S.SHIPPING, confirmed=False).body == {"status": "shipping", "confirmed": True}
    assert d(S.OPEN, S.SHIPPING, confirmed=True).body == {"status": "shipping"}


def test_shipped_carries_tracking():
    assert d(S.SHIPPING, S.SHIPPED).body == {"status": "shipped", "tracking_number": "TN1", "tracking_url": "https://t/TN1"}


def test_shipped_without_tracking_fails_with_a_clear_reason():
    dec = d(S.SHIPPING, S.SHIPPED, payload={})
    assert dec.action == "fail" and "tracking number" in dec.reason
    dec = d(S.SHIPPING, S.SHIPPED, payload={"tracking_number": "X1", "carrier": "Foo Express"})
    assert dec.action == "fail" and "'Foo Express'" in dec.reason and "[shop.carrier_urls]" in dec.reason


def test_mdp_shipped_is_skipped():
    dec = d(S.SHIPPING, S.SHIPPED, mdp=True)
    assert dec.action == "skip" and dec.reason == MDP_REASON


def test_cancel_after_delivered_needs_a_credit_note():
    dec = d(S.DELIVERED, S.CANCELLED)
    assert dec.action == "skip" and dec.needs_action.kind == "credit_note"
    assert "credit note" in dec.needs_action.message and "14 days" in dec.needs_action.message


def test_cancel_after_shipped_needs_a_human():
    dec = d(S.SHIPPED, S.CANCELLED)
    assert dec.action == "skip" and dec.needs_action.kind == "cancel_after_shipped"


def test_illegal_transition_skipped_with_reason():
    dec = d(S.CANCELLED, S.SHIPPED)
    assert dec.action == "skip" and "not allowed" in dec.reason and "cancelled" in dec.reason


def test_behind_is_skipped():
    dec = d(S.SHIPPED, S.SHIPPING)
    assert dec.action == "skip" and dec.reason.startswith("already past it")


def test_delivered_needs_delivered_at():
    dec = d(S.SHIPPED, S.DELIVERED, payload={})
    assert dec.action == "fail" and "delivered_at" in dec.reason
    assert d(S.SHIPPED, S.DELIVERED).body == {"status": "delivered", "delivered_at": "2026-11-20 10:00:00"}
