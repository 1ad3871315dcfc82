"""The ledger's vocabulary: states and kinds as enums, keys built by one constructor each.

Every state or key the engines, the CLI and the exports write or compare comes from here, so a
literal is never retyped (a typo would be a silent new state). The values are the strings stored
in the ledger since the first release: existing ledgers read the same.
"""

from __future__ import annotations

from enum import StrEnum


class ChangeState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed for a PUT / a hand-off; after a crash: re-read before resending
    RETRY = "retry"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"  # quarantined: waits for a human (`ledger retry` / `ledger skip`)


OPEN_CHANGE_STATES = (ChangeState.PENDING, ChangeState.SENDING, ChangeState.RETRY)
FINISHED_CHANGE_STATES = (ChangeState.DONE, ChangeState.SKIPPED, ChangeState.FAILED)


class Origin(StrEnum):
    SHOP = "shop"  # outbound: the shop feed said it, it goes to MALL
    MALL = "mall"  # inbound: MALL said it, it goes to the shop


class ChangeKind(StrEnum):
    STATUS = "status"
    NEW_ORDER = "new_order"
    BRANCH = "branch"


class HandoffKind(StrEnum):
    ORDERS = "orders"
    CHANGES = "changes"


class HandoffState(StrEnum):
    SENDING = "sending"  # recorded with its final name; the temp file may be missing or partial
    STAGED = "staged"  # the temp file is complete; publishing is a rename
    DONE = "done"
    FAILED = "failed"  # quarantined after [sync] max_attempts; `resume_state` says where it stood


OPEN_HANDOFF_STATES = (HandoffState.SENDING, HandoffState.STAGED)


class InboxState(StrEnum):
    WAITING = "waiting"
    FAILED = "failed"  # quarantined: not read again until `ledger retry inbox:ID`


class ConfirmState(StrEnum):
    RETRY = "retry"
    FAILED = "failed"


class ItemKind(StrEnum):
    """What a quarantined item is (the prefix of its id in `ledger list --state failed`)."""

    CHANGE = "change"
    INBOX = "inbox"
    HANDOFF = "handoff"
    CONFIRM = "confirm"


class ActionKind(StrEnum):
    CREDIT_NOTE = "credit_note"
    CANCEL_AFTER_SHIPPED = "cancel_after_shipped"
    BRANCH_CHANGE = "branch_change"
    SHOP_ACTION = "shop_action"
    DEADLINE = "deadline"  # confirm/ship deadline (sync/deadlines.py)


class EventKind(StrEnum):
    """The `kind` of a per-order history line (`ledger show`)."""

    SHOP = "shop"
    CHANGE = "change"
    PUSHED = "pushed"
    RETRY = "retry"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    NEW = "new"
    SEEN = "seen"
    IGNORED = "ignored"
    MALL_CHANGE = "mall_change"
    HANDED = "handed"
    DROPPED = "dropped"
    CONFIRMED = "confirmed"
    CONFIRM_REFUSED = "confirm_refused"
    QUARANTINED = "quarantined"


# -- keys ------------------------------------------------------------------------------------
# A change's key makes it exactly-once: the same fact (order, target) never becomes a second change.

def shop_change_key(order_id: int, target: str) -> str:
    """The outbound change 'the shop wants MALL at ``target``'."""
    return f"shop:{order_id}:{target}"


def unmapped_change_key(order_id: int, shop_status: str) -> str:
    """An unmapped shop status, recorded once per (order, status as compared)."""
    return f"shop:{order_id}:unmapped:{shop_status.strip().casefold()}"


def new_order_key(order_id: int) -> str:
    """The inbound change 'hand this new order to the shop'."""
    return f"mall:{order_id}:new"


def mall_change_key(order_id: int, status: str) -> str:
    """The inbound change 'MALL set ``status``; tell the shop'."""
    return f"mall:{order_id}:{status}"


def branch_change_key(order_id: int, branch_id: int) -> str:
    """The inbound change 'the pickup branch is now ``branch_id``'."""
    return f"mall:{order_id}:branch:{branch_id}"


def action_key(kind: str, ref: object) -> str:
    """A needs-action item's key: one item per (kind, what it is about), never opened twice."""
    return f"{kind}:{ref}"


def item_ref(kind: ItemKind, item_id: int) -> str:
    """How a quarantined item is named on the command line: ``42`` for a change, ``inbox:1001`` for others."""
    return str(item_id) if kind == ItemKind.CHANGE else f"{kind.value}:{item_id}"


def parse_item_ref(text: str) -> tuple[ItemKind, int]:
    """The inverse of ``item_ref``; ValueError with the accepted forms for anything else."""
    kind, sep, rest = text.strip().partition(":")
    try:
        if not sep:
            return ItemKind.CHANGE, int(kind)
        return ItemKind(kind.lower()), int(rest)
    except ValueError:
        raise ValueError(f"{text!r} is not an item id: give a change id (42) or inbox:ID, handoff:ID, "
                         "confirm:ID (see: ledger list --state failed)") from None
