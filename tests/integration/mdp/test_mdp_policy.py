"""The error policy's MALL Delivery rows (Op.LABELS, LABELS_READ, SERIALS): expected outcomes written out."""

from __future__ import annotations

import pytest

from connector.sync.policy import Kind, Op, outcome_for
from tests.support.errors import mall_errors

EP = "POST /v1/orders/labels"
ERRORS = {
    **mall_errors(EP, not_found="no such item", invalid="order not in shipping", transport="connection refused",
                  bad="labels_raw: not base64"),
    "value": ValueError("bad value"),
}
OPS = [Op.LABELS, Op.LABELS_READ, Op.SERIALS]
R, RR, F, S = Kind.RETRY, Kind.REREAD, Kind.FAIL, Kind.STOP
#                labels read serials
TABLE = {
    "401":        [S,  S,  S],
    "403":        [S,  S,  S],
    "404":        [F,  R,  F],
    "400":        [F,  R,  F],
    "429":        [R,  R,  R],
    "5xx":        [R,  R,  R],
    "transport":  [R,  R,  R],
    "bad":        [RR, R,  R],
    "unknown":    [RR, R,  R],
    "mall-other": [R,  R,  R],
    "value":      [RR, R,  R],
}


@pytest.mark.parametrize("name", list(TABLE))
@pytest.mark.parametrize("op", OPS)
def test_every_error_against_every_mdp_operation(name, op):
    outcome = outcome_for(op, ERRORS[name])
    assert outcome.kind == TABLE[name][OPS.index(op)], f"{name} in {op}: {outcome}"
    assert outcome.error_class == type(ERRORS[name]).__name__
    assert outcome.reason


def test_a_refused_label_or_serials_request_is_marked_refused_with_malls_message():
    labels = outcome_for(Op.LABELS, ERRORS["400"])
    serials = outcome_for(Op.SERIALS, ERRORS["400"])
    assert (labels.refused, labels.reason) == (True, "MALL refused the labels: order not in shipping")
    assert (serials.refused, serials.reason) == (True, "MALL refused the serial numbers: order not in shipping")
    assert outcome_for(Op.LABELS, ERRORS["unknown"]).refused is False


def test_an_unknown_item_names_the_serials_source():
    assert "check the serials source" in outcome_for(Op.SERIALS, ERRORS["404"]).reason


def test_rate_limit_ends_a_labels_or_serials_pass_after_the_reset():
    for op in (Op.LABELS, Op.SERIALS):
        o = outcome_for(op, ERRORS["429"])
        assert o.at_least_s == 7 and o.end_pass is True
