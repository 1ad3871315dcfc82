"""MALL order statuses and the rules for moving between them.

Pure functions, shared by the sync engine (to decide before sending) and the
sandbox (to answer like MALL does). Sources: ../shared/reference/mall-api.md §4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    BLOCKED = "blocked"
    OPEN = "open"
    SHIPPING = "shipping"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    RETURNED = "returned"
    CANCELLED = "cancelled"
    LOST = "lost"


ALL_STATUSES: tuple[Status, ...] = tuple(Status)
FINAL_STATUSES = frozenset({Status.DELIVERED, Status.RETURNED, Status.CANCELLED, Status.LOST})

#: Transitions a partner may make through the API (non-MALL-Delivery orders).
PARTNER_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.OPEN: frozenset({Status.SHIPPING, Status.SHIPPED, Status.CANCELLED}),
    Status.SHIPPING: frozenset({Status.SHIPPED, Status.CANCELLED}),
    Status.SHIPPED: frozenset({Status.DELIVERED, Status.RETURNED}),
}

#: On MALL Delivery (``mdp``) orders the partner only packs or cancels; MALL sets the rest from the carrier.
MDP_PARTNER_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.OPEN: frozenset({Status.SHIPPING, Status.CANCELLED}),
    Status.SHIPPING: frozenset({Status.CANCELLED}),
}

#: Transitions only MALL makes (payment, customer/call-centre cancel, carrier sync, loss).
MALL_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.BLOCKED: frozenset({Status.OPEN, Status.CANCELLED}),
    Status.OPEN: frozenset({Status.CANCELLED}),
    Status.SHIPPING: frozenset({Status.CANCELLED, Status.SHIPPED}),
    Status.SHIPPED: frozenset({Status.DELIVERED, Status.RETURNED, Status.LOST}),
}

#: Statuses a partner can ever ask for; a mapping onto anything else is a mistake.
PARTNER_SETTABLE = frozenset({Status.SHIPPING, Status.SHIPPED, Status.DELIVERED, Status.RETURNED, Status.CANCELLED})

TRACKING_NUMBER_RE = re.compile(r"^[0-9a-zA-Z._-]+$")

# Order of progress along the happy path, used to tell "already past it" from "not allowed".
_RANK = {
    Status.BLOCKED: 0,
    Status.OPEN: 1,
    Status.SHIPPING: 2,
    Status.SHIPPED: 3,
    Status.DELIVERED: 4,
    Status.RETURNED: 4,
    Status.CANCELLED: 4,
    Status.LOST: 4,
}


def parse_status(value: str) -> Status:
    """The Status for a MALL status string; ValueError naming the value otherwise."""
    try:
        return Status(value.strip().lower())
    except ValueError:
        raise ValueError(f"{value!r} is not a MALL status (one of {', '.join(ALL_STATUSES)})") from None


def is_final(status: Status) -> bool:
    return status in FINAL_STATUSES


def partner_may(current: Status, target: Status, *, mdp: bool = False) -> bool:
    """True when a partner may move an order from ``current`` to ``target``."""
    table = MDP_PARTNER_TRANSITIONS if mdp else PARTNER_TRANSITIONS
    return target in table.get(current, frozenset())


def mall_may(current: Status, target: Status, *, mdp: bool = False) -> bool:
    """True when MALL itself may move an order (used by the sandbox's operator endpoints)."""
    if target is Status.LOST and not mdp:
        return False
    if current is Status.SHIPPING and target is Status.SHIPPED and not mdp:
        return False
    if current is Status.SHIPPED and target in (Status.DELIVERED, Status.RETURNED) and not mdp:
        # Without MALL Delivery the partner reports delivery; MALL's call centre never does.
        return False
    return target in MALL_TRANSITIONS.get(current, frozenset())


def is_behind(current: Status, target: Status) -> bool:
    """True when the order has already gone past ``target`` on the normal path (e.g. shipped vs shipping).

    A cancelled order never went down the path, so it is not "past" anything."""
    if current is Status.CANCELLED:
        return False
    return _RANK[current] > _RANK[target] and not is_final(target)


@dataclass(frozen=True)
class RuleViolation:
    """Why a status update would be refused: a stable code and a sentence for humans."""

    code: str
    message: str


def check_update(
    current: Status,
    *,
    confirmed: bool,
    mdp: bool,
    target: Status | None,
    confirm: bool = False,
    tracking_number: str | None = None,
    tracking_url: str | None = None,
    delivered_at: object | None = None,
) -> RuleViolation | None:
    """Check a PUT /v1/orders/{id} against MALL's rules; None when MALL would accept it.

    ``target`` None means a pure confirmation (``{"confirmed": true}``).
    """
    if delivered_at is not None and target is not Status.DELIVERED:
        return RuleViolation("DELIVERED_AT_NOT_ALLOWED", "delivered_at can only be sent with status delivered")
    if target is None:
        if not confirm:
            return RuleViolation("NOTHING_TO_UPDATE", "the update carries neither confirmed nor status")
        return None
    if target == current:
        return RuleViolation("STATUS_UNCHANGED", f"the order is already {current}")
    if not (confirmed or confirm):
        return RuleViolation("ORDER_NOT_CONFIRMED", "the order must be confirmed before or with its first status change")
    if target not in PARTNER_SETTABLE:
        return RuleViolation("STATUS_NOT_SETTABLE", f"a partner cannot set status {target}; only MALL does")
    if not partner_may(current, target, mdp=mdp):
        if mdp and target in (Status.SHIPPED, Status.DELIVERED, Status.RETURNED):
            return RuleViolation(
                "MDP_STATUS_BY_MALL", f"MALL Delivery order: MALL sets {target} from the carrier"
            )
        return RuleViolation("TRANSITION_NOT_ALLOWED", f"cannot change status from {current} to {target}")
    if target is Status.SHIPPED and not mdp:
        if not tracking_number or not tracking_url:
            return RuleViolation(
                "TRACKING_REQUIRED", "status shipped needs both tracking_number and tracking_url"
            )
        if not TRACKING_NUMBER_RE.match(tracking_number):
            return RuleViolation(
                "TRACKING_NUMBER_INVALID",
                f"tracking_number {tracking_number!r} may contain only 0-9 a-z A-Z . _ -",
            )
    if target is Status.DELIVERED and delivered_at is None:
        return RuleViolation("DELIVERED_AT_REQUIRED", "status delivered needs delivered_at")
    return None
