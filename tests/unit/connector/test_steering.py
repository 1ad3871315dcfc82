"""`ledger retry / skip / done` go through the same state-transition function as the engines."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.ledger import open_ledger
from connector.ledger.rows import HandoffRow
from connector.ledger.transitions import IllegalTransition, check
from connector.ledger.types import ChangeState as C, HandoffState, InboxState
from tests.support.worlds import CsvShop


class Nowhere:
    url = "http://127.0.0.1:9"  # never called by these commands


@pytest.fixture
def shop(tmp_path):
    return CsvShop(tmp_path, Nowhere())


@pytest.fixture
def ledger(shop):
    led = open_ledger(shop.config().ledger.url)  # SQLite, or PostgreSQL (tests/support/pg.py)
    yield led
    led.close()


def run(shop, *args):
    return CliRunner().invoke(main, ["--config", str(shop.config_path), "ledger", *args], catch_exceptions=False)


def add_change(ledger, oid, state, key=None, attempts=0):
    with ledger.write() as c:
        ledger.orders.ensure(c, oid)
        cid = ledger.changes.insert(c, key=key or f"shop:{oid}:shipping", order_id=oid, origin="shop", kind="status",
                                    shop_status="packing", target_status="shipping")
        if state != C.PENDING:
            ledger.changes.move(c, cid, C.PENDING, state, attempts=attempts, reason="because")
    return cid


# Hand-written: which moves the state machine allows (everything not listed is refused).
ALLOWED_MOVES = {
    (C.PENDING, C.SENDING), (C.PENDING, C.RETRY), (C.PENDING, C.DONE), (C.PENDING, C.SKIPPED), (C.PENDING, C.FAILED),
    (C.PENDING, C.PENDING),
    (C.SENDING, C.DONE), (C.SENDING, C.RETRY), (C.SENDING, C.FAILED), (C.SENDING, C.PENDING), (C.SENDING, C.SKIPPED),
    (C.SENDING, C.SENDING),
    (C.RETRY, C.SENDING), (C.RETRY, C.DONE), (C.RETRY, C.FAILED), (C.RETRY, C.PENDING), (C.RETRY, C.SKIPPED),
    (C.RETRY, C.RETRY),
    (C.FAILED, C.PENDING), (C.FAILED, C.SKIPPED),
    (C.SKIPPED, C.PENDING),
}


@pytest.mark.parametrize("frm", list(C))
@pytest.mark.parametrize("to", list(C))
def test_transition_table(frm, to):
    if (frm, to) in ALLOWED_MOVES:
        check(frm, to)
    else:
        with pytest.raises(IllegalTransition):
            check(frm, to)


def test_a_move_from_a_state_the_change_has_left_does_nothing(ledger):
    cid = add_change(ledger, 1, C.RETRY)
    with ledger.write() as c:
        assert ledger.changes.move(c, cid, C.PENDING, C.SENDING) is False
        assert ledger.changes.move(c, cid, C.RETRY, C.SENDING) is True
    assert ledger.changes.get(cid).state == C.SENDING


def test_retry_brings_a_failed_change_back_for_a_re_read(shop, ledger):
    cid = add_change(ledger, 7, C.FAILED, attempts=8)
    r = run(shop, "retry", str(cid))
    assert r.exit_code == 0 and "will be retried" in r.output
    ch = ledger.changes.get(cid)
    assert (ch.state, ch.attempts, ch.outcome, ch.reason, ch.done_at) == (C.PENDING, 0, "reread", None, None)
    assert any("put back to pending by an admin" in m for _, _, m in ledger.orders.events_for(7))


def test_retry_refuses_a_done_change(shop, ledger):
    cid = add_change(ledger, 7, C.DONE)
    r = run(shop, "retry", str(cid))
    assert r.exit_code == 1 and "nothing to retry" in r.output
    assert ledger.changes.get(cid).state == C.DONE


def test_skip_and_refusing_to_skip_what_is_done(shop, ledger):
    pending = add_change(ledger, 7, C.PENDING)
    done = add_change(ledger, 8, C.DONE)
    r = run(shop, "skip", str(pending), "--reason", "fixed in the portal")
    assert r.exit_code == 0
    ch = ledger.changes.get(pending)
    assert ch.state == C.SKIPPED and ch.reason == "skipped by an admin: fixed in the portal" and ch.done_at
    r = run(shop, "skip", str(done), "--reason", "x")
    assert r.exit_code == 1 and "already done" in r.output


def test_done_clears_a_needs_action_item_once(shop, ledger):
    with ledger.write() as c:
        aid = ledger.actions.add(c, key="credit_note:5", order_id=5, kind="credit_note", message="issue a credit note")
    assert run(shop, "done", str(aid), "--note", "sent").exit_code == 0
    assert ledger.actions.open() == []
    r = run(shop, "done", str(aid))
    assert r.exit_code == 1 and "no open needs-action item" in r.output


def test_retry_failed_brings_back_every_kind_of_quarantined_item(shop, ledger):
    cid = add_change(ledger, 1, C.FAILED, attempts=12)
    ledger.inbox.enqueue([2])
    with ledger.write() as c:
        ledger.orders.ensure(c, 3, needs_confirm=True)
        ledger.orders.ensure(c, 4)
        mall = ledger.changes.insert(c, key="mall:4:new", order_id=4, origin="mall", kind="new_order")
        hid, name = ledger.handoffs.create(c, "orders", [mall])
        ledger.handoffs.set_state(c, hid, HandoffState.STAGED)
        fail = dict(attempts=12, next_attempt_at=None, quarantine=True, error_class="RuntimeError", message="boom",
                    reason="gave up after 12 attempts: boom")
        ledger.inbox.record_failure(c, 2, **fail)
        ledger.confirms.record_failure(c, 3, **fail)
        ledger.handoffs.record_failure(c, HandoffRow(hid, name, "orders", HandoffState.STAGED.value), **fail)
    listed = json.loads(run(shop, "list", "--state", "failed", "--format", "json").output)
    refs = {str(r["change"]): r for r in listed}
    assert set(refs) == {str(cid), "inbox:2", "confirm:3", f"handoff:{hid}"}
    assert str(refs[f"handoff:{hid}"]["mall_order_id"]) == "4" and int(refs["inbox:2"]["attempts"]) == 12
    assert ledger.orders.needing_confirm() == [3] and 3 in ledger.confirms.held()

    r = run(shop, "retry", "--failed")
    assert r.exit_code == 0 and "4 item(s)" in r.output
    assert ledger.failed_items() == []
    assert ledger.changes.get(cid).state == C.PENDING
    assert ledger.inbox.due(10) == [2] and ledger.inbox.attempts(2) == 0
    (h,) = ledger.handoffs.open(due_only=True)
    assert h.state == HandoffState.STAGED and h.attempts == 0  # staged stays staged: never written twice
    assert ledger.confirms.held() == set()
    with ledger.read() as c:
        assert {r.state for r in c.execute(ledger_inbox_select())} == {InboxState.WAITING}


def ledger_inbox_select():
    from connector.ledger import schema as s

    return s.inbox.select()


def test_a_bad_item_id_is_a_clear_usage_error(shop, ledger):
    r = run(shop, "retry", "parcel:9")
    assert r.exit_code == 2 and "not an item id" in r.output and "Traceback" not in r.output
    r = run(shop, "retry", "inbox:9")
    assert r.exit_code == 1 and "inbox:9 is not quarantined" in r.output


def test_show_names_what_is_quarantined_for_the_order(shop, ledger):
    ledger.inbox.enqueue([5])
    with ledger.write() as c:
        ledger.orders.ensure(c, 5)
        ledger.inbox.record_failure(c, 5, attempts=12, next_attempt_at=None, quarantine=True,
                                    error_class="OverflowError", message="too large",
                                    reason="gave up after 12 attempts: recording the order read from MALL failed")
    r = run(shop, "show", "5")
    assert r.exit_code == 0
    assert "inbox:5" in r.output and "12 attempt(s)" in r.output and "recording the order" in r.output
