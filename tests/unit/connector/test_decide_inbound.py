"""The inbound decision and the ordering rules, from hand-written tables (no sandbox, no re-call of helpers)."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from connector.mall.statuses import Status as S
from connector.sync.decide import (
    Confirm,
    HandBranchChange,
    HandMallChange,
    HandNewOrder,
    KnownOrder,
    MallOrderNow,
    RecordOnly,
    Wait,
    behind_older,
    decide_inbound,
    inbound_first,
    may_confirm,
    push_rounds,
)

HANDED_OPEN = KnownOrder(handed=True, handed_status=S.OPEN, handed_branch_id=None)
HANDED_PICKUP = KnownOrder(handed=True, handed_status=S.OPEN, handed_branch_id=501)


def now(status, confirmed=False, test=False, branch=None):
    return MallOrderNow(status=status, confirmed=confirmed, test=test, branch_id=branch)


# (case, known, MALL now, new order recorded, own push state, include_test) -> intent kinds, written out.
CASES = [
    ("new open order", None, now(S.OPEN), False, None, False, [HandNewOrder, RecordOnly, Confirm]),
    ("new open order, already confirmed", None, now(S.OPEN, confirmed=True), False, None, False,
     [HandNewOrder, RecordOnly]),
    ("new order queued, read again", None, now(S.OPEN), True, None, False, [Confirm]),
    ("blocked: wait for payment, no confirm", None, now(S.BLOCKED), False, None, False, [RecordOnly, Wait]),
    ("test order left alone", None, now(S.OPEN, test=True), False, None, False, [RecordOnly]),
    ("test order with include_test", None, now(S.OPEN, test=True), False, None, True,
     [HandNewOrder, RecordOnly, Confirm]),
    ("first seen shipped: record only", None, now(S.SHIPPED, confirmed=True), False, None, False, [RecordOnly]),
    ("handed, unchanged", HANDED_OPEN, now(S.OPEN, confirmed=True), True, None, False, []),
    ("handed, cancelled on MALL", HANDED_OPEN, now(S.CANCELLED), True, None, False, [HandMallChange, Confirm]),
    ("handed, our own shipping push echoes", HANDED_OPEN, now(S.SHIPPING, confirmed=True), True, "done", False,
     [RecordOnly]),
    ("handed, our push still retrying", HANDED_OPEN, now(S.SHIPPING, confirmed=True), True, "retry", False,
     [RecordOnly]),
    ("handed, our push was skipped: MALL's own", HANDED_OPEN, now(S.SHIPPING, confirmed=True), True, "skipped",
     False, [HandMallChange]),
    ("handed, branch moved", HANDED_PICKUP, now(S.OPEN, branch=502), True, None, False, [HandBranchChange, Confirm]),
    ("handed, branch same", HANDED_PICKUP, now(S.OPEN, confirmed=True, branch=501), True, None, False, []),
    ("handed, cancelled and branch moved", HANDED_PICKUP, now(S.CANCELLED, branch=502), True, None, False,
     [HandMallChange, HandBranchChange, Confirm]),
]


@pytest.mark.parametrize("case,known,order,recorded,own,include_test,expected", CASES, ids=[c[0] for c in CASES])
def test_inbound_decision_table(case, known, order, recorded, own, include_test, expected):
    d = decide_inbound(known=known, order=order, new_order_recorded=recorded, own_push_state=own,
                       include_test=include_test)
    assert [type(i) for i in d.intents] == expected
    assert d.reason


def test_new_order_intent_carries_status_and_branch():
    d = decide_inbound(known=None, order=now(S.OPEN, branch=77), new_order_recorded=False, own_push_state=None,
                       include_test=False)
    assert d.intents[0] == HandNewOrder(S.OPEN, 77)


def test_first_seen_past_open_marks_what_the_shop_is_taken_to_know():
    d = decide_inbound(known=None, order=now(S.SHIPPED, confirmed=True, branch=9), new_order_recorded=False,
                       own_push_state=None, include_test=False)
    (rec,) = d.intents
    assert (rec.handed_status, rec.handed_branch_id, rec.set_handed_branch) == (S.SHIPPED, 9, True)


def test_mall_change_note_and_branch_note():
    d = decide_inbound(known=HANDED_PICKUP, order=now(S.CANCELLED, branch=502), new_order_recorded=True,
                       own_push_state=None, include_test=False)
    assert d.intents[0].note == "cancelled on MALL (by the customer or MALL)"
    assert d.intents[1] == HandBranchChange(S.CANCELLED, 502, "pickup branch changed from 501 to 502")


def ch(cid, oid):
    return NS(id=cid, mall_order_id=oid)


def test_push_rounds_give_each_order_one_change_per_round_oldest_first():
    rounds = push_rounds([ch(1, 10), ch(2, 11), ch(3, 10), ch(4, 10), ch(5, 12)])
    assert [[c.id for c in r] for r in rounds] == [[1, 2, 5], [3], [4]]


def test_an_older_open_change_of_the_same_order_goes_first():
    # order 10's oldest open change is 1 (e.g. shipped waiting for a retry), so 3 (delivered) waits
    assert behind_older([ch(3, 10), ch(2, 11)], {10: 1, 11: 2}) == {3}
    assert behind_older([ch(3, 10)], {}) == set()


@pytest.mark.parametrize("confirms,handed,expected", [
    (True, "open", True),  # would confirm an order the inbound hands over: inbound first
    (True, None, False),  # the inbound never saw it: the push confirms it
    (False, "open", False),  # already confirmed: push at once
])
def test_inbound_before_outbound(confirms, handed, expected):
    assert inbound_first(push_confirms=confirms, handed_status=handed) is expected


def test_confirm_waits_for_every_mall_change():
    assert may_confirm(0) is True and may_confirm(1) is False
