"""issue 17: after a confirmation sent without a re-read, which orders the batched check sends back to be read.
A hand-written table (what the shop was handed, what MALL's list says), not derived from the code."""

from __future__ import annotations

import pytest

from connector.ledger.types import ChangeState
from connector.mall.statuses import Status
from connector.sync.decide import verify_needs_reread
from connector.sync.policy import Kind, Op, outcome_for
from connector.mall.errors import MallForbidden, MallNotFound, MallRateLimited, MallServerError

S = Status
CASES = [
    # listed, status, confirmed, handed, own push state, read again?
    (True, S.OPEN, True, S.OPEN, None, False),  # nothing changed
    (True, S.CANCELLED, True, S.OPEN, None, True),  # MALL cancelled it between the read and the PUT
    (True, S.SHIPPED, True, S.OPEN, None, True),  # MALL Delivery shipped it meanwhile
    (True, S.SHIPPING, True, S.OPEN, ChangeState.DONE.value, False),  # the shop's own push
    (True, S.SHIPPING, True, S.OPEN, ChangeState.SENDING.value, False),  # our push on its way
    (True, S.SHIPPING, True, S.OPEN, ChangeState.SKIPPED.value, True),  # not ours after all
    (True, S.OPEN, False, S.OPEN, None, True),  # unconfirmed again: MALL changed something (a branch?)
    (False, None, None, S.OPEN, None, True),  # not in the list at all
    (True, S.CANCELLED, True, S.CANCELLED, None, False),  # the shop already has the cancel
]


@pytest.mark.parametrize("listed,status,confirmed,handed,own,expected", CASES)
def test_verify_needs_reread(listed, status, confirmed, handed, own, expected):
    assert verify_needs_reread(listed=listed, status=status, confirmed=confirmed, handed_status=handed,
                               own_push_state=own) is expected


@pytest.mark.parametrize("error,kind", [
    (MallForbidden("GET /v1/orders", 403, "no"), Kind.STOP),
    (MallNotFound("GET /v1/orders", 404, "gone"), Kind.RETRY),
    (MallRateLimited("GET /v1/orders", 429, "slow", reset_s=30), Kind.RETRY),
    (MallServerError("GET /v1/orders", 503, "down"), Kind.RETRY),
    (ValueError("odd"), Kind.RETRY),
])
def test_a_failed_verification_is_retried_next_pass_only_401_403_stop(error, kind):
    outcome = outcome_for(Op.VERIFY, error)
    assert outcome.kind == kind
    if isinstance(error, MallRateLimited):
        assert outcome.at_least_s == 30
