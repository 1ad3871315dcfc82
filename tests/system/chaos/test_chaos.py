"""The small seeded chaos run inside `make test` (about 40 s): the real daemon, SIGKILLed and restarted
while MALL misbehaves and both sides keep changing; see tests/system/chaos/run.py and docs/reliability.md."""

from __future__ import annotations

import pytest

from tests.system.chaos.run import run_chaos

pytestmark = pytest.mark.e2e

SEED = 20261126


@pytest.mark.timeout(240)
def test_small_seeded_chaos_run_loses_nothing_and_sends_nothing_twice(tmp_path):
    result = run_chaos("small", SEED, folder=tmp_path / "chaos", log=lambda *_: None)
    print(result.summary())
    assert result.ok, "\n".join([result.summary(), *result.verdict.problems[:30]])
    # The run did shake things: it is not a pass by doing nothing.
    f = result.figures
    assert f["kills"] >= 3 and f["faults"] >= 20, f
    assert f["status_applied"] >= 10 and f["handed_orders"] >= 15 and f["confirmations_checked"] >= 15, f
    assert f["carrier_delivered"] >= 1 and f["carrier_calls"] >= f["carrier_delivered"], f  # issue 15
