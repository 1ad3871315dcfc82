"""What an admin does from the CLI (`ledger retry`, `ledger skip`, `ledger done`) or the console, through the
same state-transition function and repositories as the engines, one transaction per item.

Every action that changed something writes its audit row (connector/ledger/audit.py: who, what, when) in
the same transaction; ``actor`` defaults to the unix user running a ledger command (``cli:<user>``)."""

from __future__ import annotations

from dataclasses import dataclass

from connector.ledger import audit
from connector.ledger.transitions import ALLOWED
from connector.ledger.types import ChangeState, EventKind, ItemKind, item_ref


@dataclass(frozen=True)
class Steered:
    ok: bool
    message: str


def retry(ledger, kind: ItemKind, item_id: int, *, actor: audit.Actor | None = None) -> Steered:
    """Bring an item back: a change to pending (re-read from MALL before anything is sent), a quarantined inbox
    id, hand-off or confirmation to waiting, each with a fresh count of attempts."""
    ref = item_ref(kind, item_id)
    actor = actor or audit.Actor.cli()
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
                ledger.accounts.forget_not_found(c, ch.mall_order_id)  # issue 18: ask every account again
                ledger.orders.add_event(c, ch.mall_order_id, EventKind.RETRY,
                                        f"change {ch.id} put back to pending by {actor.by}")
                audit.record(c, actor, "retry", order_id=ch.mall_order_id, target=f"change {ch.id}",
                             detail=f"was {ch.state}: {ch.reason or ch.last_error or ''}".rstrip(": "))
        return Steered(moved, f"change {item_id} will be retried on the next pass" if moved
                       else f"change {item_id} changed meanwhile; look again (ledger list)")
    repo = {ItemKind.INBOX: ledger.inbox, ItemKind.HANDOFF: ledger.handoffs, ItemKind.CONFIRM: ledger.confirms}[kind]
    with ledger.write() as c:
        ok = repo.release(c, item_id)
        if ok and kind != ItemKind.HANDOFF:
            ledger.orders.add_event(c, item_id, EventKind.RETRY, f"{ref} put back by {actor.by}")
        if ok:
            audit.record(c, actor, "retry", order_id=None if kind == ItemKind.HANDOFF else item_id, target=ref)
    return Steered(ok, f"{ref} will be retried on the next pass" if ok
                   else f"{ref} is not quarantined (see: ledger list --state failed)")


def retry_all_failed(ledger, *, actor: audit.Actor | None = None) -> list[Steered]:
    actor = actor or audit.Actor.cli()
    return [retry(ledger, item.kind, item.id, actor=actor) for item in ledger.failed_items()]


def skip(ledger, change_id: int, reason: str, *, actor: audit.Actor | None = None) -> Steered:
    """Mark a change skipped by an admin: it will never be sent."""
    actor = actor or audit.Actor.cli()
    ch = ledger.changes.get(change_id)
    if ch is None:
        return Steered(False, f"no change {change_id}")
    if ChangeState.SKIPPED not in ALLOWED[ChangeState(ch.state)]:
        return Steered(False, f"change {change_id} is already {ch.state}")
    with ledger.write() as c:
        moved = ledger.changes.move(c, ch.id, ch.state, ChangeState.SKIPPED, reason=f"skipped by {actor.by}: {reason}")
        if moved:
            ledger.orders.add_event(c, ch.mall_order_id, EventKind.SKIPPED,
                                    f"change {change_id} skipped by {actor.by}: {reason}")
            audit.record(c, actor, "skip", order_id=ch.mall_order_id, target=f"change {change_id}", detail=reason)
    return Steered(moved, f"change {change_id} skipped" if moved else f"change {change_id} changed meanwhile; look again")


def _done_in(c, ledger, action_id: int, note: str | None, actor: audit.Actor) -> bool:
    order_id = ledger.actions.order_of(c, action_id)
    ok = ledger.actions.done(c, action_id, note)
    if ok:
        if order_id is not None:
            ledger.orders.add_event(c, order_id, EventKind.DONE, f"needs-action item {action_id} done by "
                                    f"{actor.by}" + (f": {note}" if note else ""))
        audit.record(c, actor, "done", order_id=order_id, target=f"item {action_id}", detail=note)
    return ok


def done_many(ledger, *, ids=(), kind: str | None = None, every: bool = False, note: str | None = None,
              actor: audit.Actor | None = None) -> tuple[list[int], list[int]]:
    """Clear several needs-action items in one transaction: the given ids, every open one of ``kind``, or all.
    Returns (closed ids, given ids that were not open)."""
    actor = actor or audit.Actor.cli()
    with ledger.write() as c:
        closed = [i for i in ledger.actions.pick_open(c, ids=ids, kind=kind, every=every)
                  if _done_in(c, ledger, i, note, actor)]
    return closed, [i for i in ids if i not in closed]


def done(ledger, action_id: int, note: str | None = None, *, actor: audit.Actor | None = None) -> Steered:
    """Clear a needs-action item once a human has handled it."""
    actor = actor or audit.Actor.cli()
    with ledger.write() as c:
        ok = _done_in(c, ledger, action_id, note, actor)
    return Steered(ok, f"item {action_id} done" if ok
                   else f"no open needs-action item {action_id} (see: ledger list --needs-action)")
