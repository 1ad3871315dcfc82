"""What an admin does from the CLI (`ledger retry`, `ledger skip`, `ledger done`), through the same
state-transition function and repositories as the engines, one transaction per item."""

from __future__ import annotations

from dataclasses import dataclass

from connector.ledger.transitions import ALLOWED
from connector.ledger.types import ChangeState, EventKind, ItemKind, item_ref


@dataclass(frozen=True)
class Steered:
    ok: bool
    message: str


def retry(ledger, kind: ItemKind, item_id: int) -> Steered:
    """Bring an item back: a change to pending (re-read from MALL before anything is sent), a quarantined inbox
    id, hand-off or confirmation to waiting, each with a fresh count of attempts."""
    ref = item_ref(kind, item_id)
    if kind == ItemKind.CHANGE:
        ch = ledger.changes.get(item_id)
        if ch is None:
            return Steered(False, f"no change {item_id}")
        if ch.state == ChangeState.SENDING:
            return Steered(False, f"change {item_id} is being sent right now; look again after the pass")
        if ChangeState.PENDING not in ALLOWED[ChangeState(ch.state)]:
            return Steered(False, f"change {item_id} is {ch.state}; nothing to retry")
        with ledger.write() as c:
            # A fresh count, and outcome REREAD: the order is re-read from MALL before anything is sent again.
            moved = ledger.changes.move(c, ch.id, ch.state, ChangeState.PENDING, attempts=0, outcome="reread")
            if moved:
                ledger.orders.add_event(c, ch.mall_order_id, EventKind.RETRY,
                                        f"change {ch.id} put back to pending by an admin")
        return Steered(moved, f"change {item_id} will be retried on the next pass" if moved
                       else f"change {item_id} changed meanwhile; look again (ledger list)")
    repo = {ItemKind.INBOX: ledger.inbox, ItemKind.HANDOFF: ledger.handoffs, ItemKind.CONFIRM: ledger.confirms}[kind]
    with ledger.write() as c:
        ok = repo.release(c, item_id)
        if ok and kind != ItemKind.HANDOFF:
            ledger.orders.add_event(c, item_id, EventKind.RETRY, f"{ref} put back by an admin")
    return Steered(ok, f"{ref} will be retried on the next pass" if ok
                   else f"{ref} is not quarantined (see: ledger list --state failed)")


def retry_all_failed(ledger) -> list[Steered]:
    return [retry(ledger, item.kind, item.id) for item in ledger.failed_items()]


def skip(ledger, change_id: int, reason: str) -> Steered:
    """Mark a change skipped by an admin: it will never be sent."""
    ch = ledger.changes.get(change_id)
    if ch is None:
        return Steered(False, f"no change {change_id}")
    if ChangeState.SKIPPED not in ALLOWED[ChangeState(ch.state)]:
        return Steered(False, f"change {change_id} is already {ch.state}")
    with ledger.write() as c:
        moved = ledger.changes.move(c, ch.id, ch.state, ChangeState.SKIPPED, reason=f"skipped by an admin: {reason}")
        if moved:
            ledger.orders.add_event(c, ch.mall_order_id, EventKind.SKIPPED,
                                    f"change {change_id} skipped by an admin: {reason}")
    return Steered(moved, f"change {change_id} skipped" if moved else f"change {change_id} changed meanwhile; look again")


def done(ledger, action_id: int, note: str | None = None) -> Steered:
    """Clear a needs-action item once a human has handled it."""
    with ledger.write() as c:
        ok = ledger.actions.done(c, action_id, note)
    return Steered(ok, f"item {action_id} done" if ok
                   else f"no open needs-action item {action_id} (see: ledger list --needs-action)")
