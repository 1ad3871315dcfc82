"""The status rules, checked over every pair of statuses against MALL's documented tables."""

import itertools

import pytest

from connector.mall.statuses import (
    FINAL_STATUSES,
    PARTNER_SETTABLE,
    Status,
    check_update,
    is_behind,
    mall_may,
    parse_status,
    partner_may,
)

S = Status
# The documented partner transitions (mall-api.md §4), written out independently of the module's tables.
PARTNER_ALLOWED = {
    (S.OPEN, S.SHIPPING), (S.OPEN, S.SHIPPED), (S.OPEN, S.CANCELLED),
    (S.SHIPPING, S.SHIPPED), (S.SHIPPING, S.CANCELLED),
    (S.SHIPPED, S.DELIVERED), (S.SHIPPED, S.RETURNED),
}
MDP_PARTNER_ALLOWED = {(S.OPEN, S.SHIPPING), (S.OPEN, S.CANCELLED), (S.SHIPPING, S.CANCELLED)}
PAIRS = list(itertools.product(Status, Status))


@pytest.mark.parametrize("current,target", PAIRS)
def test_partner_transitions_match_the_documented_table(current, target):
    assert partner_may(current, target) == ((current, target) in PARTNER_ALLOWED)
    assert partner_may(current, target, mdp=True) == ((current, target) in MDP_PARTNER_ALLOWED)


@pytest.mark.parametrize("current,target", PAIRS)
def test_check_update_over_every_pair(current, target):
    fields = {"tracking_number": "ABC-123.x_9", "tracking_url": "https://t.example/ABC"} if target == S.SHIPPED else {}
    if target == S.DELIVERED:
        fields["delivered_at"] = "2026-11-20 10:00:00"
    v = check_update(current, confirmed=True, mdp=False, target=target, **fields)
    if (current, target) in PARTNER_ALLOWED:
        assert v is None
    else:
        assert v is not None and v.code in {
            "STATUS_UNCHANGED", "STATUS_NOT_SETTABLE", "TRANSITION_NOT_ALLOWED"}, (current, target, v)


@pytest.mark.parametrize("current,target", PAIRS)
def test_mall_only_transitions(current, target):
    # MALL: blocked→open|cancelled, open/shipping→cancelled; MDP carrier sync shipping→shipped, shipped→delivered|returned|lost.
    expected_plain = {(S.BLOCKED, S.OPEN), (S.BLOCKED, S.CANCELLED), (S.OPEN, S.CANCELLED), (S.SHIPPING, S.CANCELLED)}
    expected_mdp = expected_plain | {(S.SHIPPING, S.SHIPPED), (S.SHIPPED, S.DELIVERED), (S.SHIPPED, S.RETURNED),
                                     (S.SHIPPED, S.LOST)}
    assert mall_may(current, target) == ((current, target) in expected_plain)
    assert mall_may(current, target, mdp=True) == ((current, target) in expected_mdp)


def test_final_states_have_no_way_out():
    for final in FINAL_STATUSES:
        for target in Status:
            assert not partner_may(final, target)
            assert not partner_may(final, target, mdp=True)


def test_partner_can_never_set_blocked_open_lost():
    assert {S.BLOCKED, S.OPEN, S.LOST}.isdisjoint(PARTNER_SETTABLE)
    for cur in Status:
        for target in (S.BLOCKED, S.OPEN, S.LOST):
            assert check_update(cur, confirmed=True, mdp=False, target=target) is not None


def test_shipped_needs_tracking_number_and_url():
    assert check_update(S.OPEN, confirmed=True, mdp=False, target=S.SHIPPED).code == "TRACKING_REQUIRED"
    assert check_update(S.OPEN, confirmed=True, mdp=False, target=S.SHIPPED,
                        tracking_number="123").code == "TRACKING_REQUIRED"
    bad = check_update(S.OPEN, confirmed=True, mdp=False, target=S.SHIPPED, tracking_number="12 3",
                       tracking_url="https://x/1")
    assert bad.code == "TRACKING_NUMBER_INVALID" and "12 3" in bad.message
    assert check_update(S.OPEN, confirmed=True, mdp=False, target=S.SHIPPED, tracking_number="Z-1.2_3",
                        tracking_url="https://x/1") is None


def test_delivered_at_rules():
    assert check_update(S.SHIPPED, confirmed=True, mdp=False, target=S.DELIVERED).code == "DELIVERED_AT_REQUIRED"
    for target in (S.SHIPPING, S.CANCELLED, None):
        v = check_update(S.OPEN, confirmed=True, mdp=False, target=target, confirm=True, delivered_at="2026-01-01 00:00:00")
        assert v.code == "DELIVERED_AT_NOT_ALLOWED"


def test_confirmation_needed_before_or_with_first_change():
    assert check_update(S.OPEN, confirmed=False, mdp=False, target=S.SHIPPING).code == "ORDER_NOT_CONFIRMED"
    assert check_update(S.OPEN, confirmed=False, mdp=False, target=S.SHIPPING, confirm=True) is None
    assert check_update(S.OPEN, confirmed=False, mdp=False, target=None, confirm=True) is None
    assert check_update(S.OPEN, confirmed=False, mdp=False, target=None).code == "NOTHING_TO_UPDATE"


def test_mdp_orders_only_pack_or_cancel():
    v = check_update(S.SHIPPING, confirmed=True, mdp=True, target=S.SHIPPED, tracking_number="1", tracking_url="u")
    assert v.code == "MDP_STATUS_BY_MALL"
    assert check_update(S.OPEN, confirmed=True, mdp=True, target=S.SHIPPING) is None


def test_is_behind_and_parse():
    assert is_behind(S.SHIPPED, S.SHIPPING)
    assert not is_behind(S.SHIPPING, S.SHIPPED)
    assert not is_behind(S.SHIPPED, S.CANCELLED)  # a final target is not "behind"
    assert parse_status(" Shipped ") is S.SHIPPED
    with pytest.raises(ValueError, match="'shiped' is not a MALL status"):
        parse_status("shiped")


def test_cancelled_is_not_past_anything():
    assert not is_behind(S.CANCELLED, S.SHIPPING)
    assert not is_behind(S.CANCELLED, S.SHIPPED)
    assert is_behind(S.DELIVERED, S.SHIPPED)
