"""The error policy, table-driven: every error class against every operation, expected outcomes written out."""

from __future__ import annotations

import subprocess

import pytest

from adapters.base import FeedUnavailable, HandoffError
from connector.ledger.db import LedgerError
from connector.sync.policy import Kind, Op, after_failure, outcome_for
from tests.support.errors import mall_errors
from tests.support.paths import ROOT

EP = "GET /v1/orders/{id}"
ERRORS = {
    **mall_errors(EP, not_found="no such order", invalid="transition not allowed", transport="timed out",
                  bad="data.purchase_id: out of range"),
    "handoff": HandoffError("outbox not writable"),
    "feed": FeedUnavailable("feed missing"),
    "ledger": LedgerError("ledger is locked"),
    "overflow": OverflowError("Python int too large to convert to SQLite INTEGER"),
    "recursion": RecursionError("maximum recursion depth exceeded"),
    "value": ValueError("bad value"),
}
OPS = [Op.INBOX_READ, Op.RECORD, Op.PUSH_READ, Op.LIST_REFRESH, Op.PUSH, Op.HANDOFF_RECORD, Op.HANDOFF,
       Op.CONFIRM_READ, Op.CONFIRM, Op.SWEEP, Op.DECIDE, Op.FEED_READ]

R, RR, F, S, D = Kind.RETRY, Kind.REREAD, Kind.FAIL, Kind.STOP, Kind.DROP
# Rows: error; columns in the order of OPS:
#            inbox  record push_r list  push  h_rec  hand  conf_r conf  sweep decide feed
TABLE = {
    "401":        [S,  S,  S,  S,  S,  S,  S,  S,  S,  S,  S,  S],
    "403":        [S,  S,  S,  S,  S,  S,  S,  S,  S,  S,  S,  S],
    "404":        [D,  R,  F,  RR, F,  R,  R,  D,  D,  R,  R,  R],
    "400":        [R,  R,  R,  RR, F,  R,  R,  R,  F,  R,  R,  R],  # push: FAIL unless first try (below)
    "429":        [R,  R,  R,  RR, R,  R,  R,  R,  R,  R,  R,  R],
    "5xx":        [R,  R,  R,  RR, R,  R,  R,  R,  R,  R,  R,  R],
    "transport":  [R,  R,  R,  RR, R,  R,  R,  R,  R,  R,  R,  R],
    "bad":        [R,  R,  R,  RR, RR, R,  R,  R,  R,  R,  R,  R],
    "unknown":    [R,  R,  R,  RR, RR, R,  R,  R,  R,  R,  R,  R],
    "mall-other": [R,  R,  R,  RR, R,  R,  R,  R,  R,  R,  R,  R],
    "handoff":    [R,  R,  R,  RR, R,  R,  R,  R,  R,  R,  R,  R],
    "feed":       [R,  R,  R,  RR, R,  R,  R,  R,  R,  R,  R,  R],
    "ledger":     [R,  R,  R,  RR, R,  R,  R,  R,  R,  R,  R,  R],
    "overflow":   [R,  R,  R,  RR, RR, R,  R,  R,  R,  R,  R,  R],
    "recursion":  [R,  R,  R,  RR, RR, R,  R,  R,  R,  R,  R,  R],
    "value":      [R,  R,  R,  RR, RR, R,  R,  R,  R,  R,  R,  R],
}


@pytest.mark.parametrize("name", list(TABLE))
@pytest.mark.parametrize("op", OPS)
def test_every_error_against_every_operation(name, op):
    expected = TABLE[name][OPS.index(op)]
    outcome = outcome_for(op, ERRORS[name])
    assert outcome.kind == expected, f"{name} in {op}: {outcome}"
    assert outcome.error_class == type(ERRORS[name]).__name__
    assert outcome.reason  # always a reason to keep on the item


def test_a_refused_first_push_is_re_read_and_decided_again_not_failed():
    first = outcome_for(Op.PUSH, ERRORS["400"], first_try=True)
    later = outcome_for(Op.PUSH, ERRORS["400"], first_try=False)
    assert (first.kind, first.refused) == (Kind.REREAD, True)
    assert (later.kind, later.refused) == (Kind.FAIL, True)
    assert later.reason == "MALL refused it: transition not allowed"


def test_an_ambiguous_push_failure_is_not_marked_refused():
    assert outcome_for(Op.PUSH, ERRORS["unknown"]).refused is False
    assert outcome_for(Op.PUSH, ERRORS["overflow"]).refused is False


def test_rate_limit_waits_for_the_reset_and_ends_only_a_push_pass():
    push = outcome_for(Op.PUSH, ERRORS["429"])
    read = outcome_for(Op.INBOX_READ, ERRORS["429"])
    assert push.at_least_s == 7 and push.end_pass is True
    assert read.at_least_s == 7 and read.end_pass is False


def test_retry_backs_off_from_base_to_max_and_quarantines_at_max_attempts():
    o = outcome_for(Op.INBOX_READ, ERRORS["overflow"])
    d1 = after_failure(o, 1, max_attempts=3, retry_base_s=10, retry_max_s=25)
    d2 = after_failure(o, 2, max_attempts=3, retry_base_s=10, retry_max_s=25)
    d3 = after_failure(o, 3, max_attempts=3, retry_base_s=10, retry_max_s=25)
    assert not d1.quarantine and not d2.quarantine and d3.quarantine
    assert d3.next_attempt_at is None and d3.reason.startswith("gave up after 3 attempts: ")
    assert "OverflowError" in d3.reason
    # 10 s, then 20 s (±10 % jitter), never more than retry_max_s (+10 %).
    from connector.ledger.rows import utcnow

    now = utcnow()
    assert 8.5 <= (d1.next_attempt_at - now).total_seconds() <= 11.5
    assert 17.5 <= (d2.next_attempt_at - now).total_seconds() <= 22.5
    d9 = after_failure(o, 2, max_attempts=9, retry_base_s=100, retry_max_s=25)
    assert (d9.next_attempt_at - now).total_seconds() <= 28


def test_fail_outcome_quarantines_at_once():
    o = outcome_for(Op.PUSH_READ, ERRORS["404"])
    d = after_failure(o, 1, max_attempts=8, retry_base_s=1, retry_max_s=2)
    assert d.quarantine and d.reason == o.reason


def test_no_except_mall_in_the_sync_layer_outside_the_policy():
    root = ROOT
    out = subprocess.run(["grep", "-rn", "except Mall", str(root / "connector" / "sync")],
                         capture_output=True, text=True)
    hits = [line for line in out.stdout.splitlines() if "/policy.py:" not in line]
    assert hits == []


def test_a_model_error_keeps_fields_and_reasons_never_the_values():
    import pydantic

    from connector.mall.models import Order

    try:
        Order.model_validate({"id": "Jana Nováková, Praha 4"})
    except pydantic.ValidationError as e:
        outcome = outcome_for(Op.RECORD, e)
    assert "Nováková" not in outcome.message and "Nováková" not in outcome.reason
    assert outcome.message.startswith("Order: id: ") and outcome.error_class == "ValidationError"
