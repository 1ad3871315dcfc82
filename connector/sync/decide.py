"""The decisions, as pure functions: given what the shop says and what MALL has, what to do.

Kept free of I/O so every rule is unit-tested over every status pair, and so the outbound and
inbound engines only carry decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from connector.ledger.types import ChangeState

from connector.mall.statuses import (
    PARTNER_SETTABLE,
    Status,
    check_update,
    is_behind,
    is_final,
    partner_may,
)

MDP_REASON = "MALL Delivery: MALL sets it from the carrier"


@dataclass(frozen=True)
class NeedsAction:
    """Something a human must do; opened as a needs-action item and alerted once."""

    kind: str
    message: str


@dataclass(frozen=True)
class OutboundDecision:
    action: Literal["push", "skip", "done", "fail"]
    reason: str
    body: dict = field(default_factory=dict)  # fields of the PUT when action == "push"
    needs_action: NeedsAction | None = None


def decide_outbound(
    *,
    order_id: int,
    target: Status,
    current: Status,
    confirmed: bool,
    mdp: bool,
    payload: dict,
    interrupted: bool = False,
) -> OutboundDecision:
    """Decide one shop change against the order's current MALL state.

    ``interrupted`` is True when an earlier attempt may have reached MALL (crash while sending,
    ambiguous failure): finding the target status then means our own push landed.
    """
    if current == target:
        if interrupted:
            return OutboundDecision("done", f"MALL has the order {target} (an earlier push landed)")
        return OutboundDecision("skip", f"already there: MALL has the order {target}")
    if mdp and target in (Status.SHIPPED, Status.DELIVERED, Status.RETURNED):
        return OutboundDecision("skip", MDP_REASON)
    if target not in PARTNER_SETTABLE:
        return OutboundDecision("skip", f"MALL-only status: only MALL sets {target}")
    if not partner_may(current, target, mdp=mdp):
        if current == Status.DELIVERED and target in (Status.CANCELLED, Status.RETURNED):
            return OutboundDecision(
                "skip",
                f"transition not allowed: MALL has the order delivered, the shop says {target}",
                needs_action=NeedsAction(
                    "credit_note",
                    f"Order {order_id}: the shop says {target}, but MALL already has it delivered, which cannot be "
                    "changed. Issue a credit note within 14 days with the order number, the return document number "
                    "(47xxxxxxxx, from MALL), the items and the amount, and send it to MALL Operations.",
                ),
            )
        if current == Status.SHIPPED and target == Status.CANCELLED:
            return OutboundDecision(
                "skip",
                "transition not allowed: the shop cancelled after MALL has the order shipped",
                needs_action=NeedsAction(
                    "cancel_after_shipped",
                    f"Order {order_id}: the shop cancelled it, but MALL has it shipped; MALL does not allow a "
                    "cancel once the parcel is with the carrier. When the parcel comes back, set it returned "
                    "in the shop; otherwise contact MALL partner support.",
                ),
            )
        if is_behind(current, target):
            return OutboundDecision("skip", f"already past it: MALL has the order {current}, the shop says {target}")
        if is_final(current) or current == Status.BLOCKED:
            return OutboundDecision("skip", f"transition not allowed: MALL has the order {current}, which is final"
                                    if is_final(current) else
                                    f"transition not allowed: MALL has the order {current} (waiting for payment)")
        return OutboundDecision("skip", f"transition not allowed: {current} → {target}")

    body: dict = {"status": target.value}
    if not confirmed:
        body["confirmed"] = True
    if target == Status.SHIPPED:
        body["tracking_number"] = payload.get("tracking_number")
        body["tracking_url"] = payload.get("tracking_url")
    if target == Status.DELIVERED:
        body["delivered_at"] = payload.get("delivered_at")
        if payload.get("first_delivery_attempt"):
            body["first_delivery_attempt"] = payload["first_delivery_attempt"]
    violation = check_update(
        current, confirmed=confirmed, mdp=mdp, target=target, confirm=bool(body.get("confirmed")),
        tracking_number=body.get("tracking_number"), tracking_url=body.get("tracking_url"),
        delivered_at=body.get("delivered_at"),
    )
    if violation is not None:
        reason = violation.message
        if violation.code == "TRACKING_REQUIRED":
            reason = _tracking_reason(payload)
        elif violation.code == "DELIVERED_AT_REQUIRED":
            reason = "delivered needs the delivery time: fill the delivered_at column in the shop feed"
        return OutboundDecision("fail", reason)
    return OutboundDecision("push", f"push {current} → {target}", {k: v for k, v in body.items() if v is not None})


def _tracking_reason(payload: dict) -> str:
    number, url, carrier = payload.get("tracking_number"), payload.get("tracking_url"), payload.get("carrier")
    if not number:
        return "shipped needs a tracking number: the shop row has none (column tracking_number)"
    if not url and carrier:
        return (f"shipped needs a tracking URL: the shop row has none and there is no URL template for carrier "
                f"{carrier!r}; add it under [shop.carrier_urls] (e.g. \"{carrier}\" = \"https://…{{number}}\")")
    return "shipped needs a tracking URL: the shop row has none and names no carrier (columns tracking_url or carrier)"


#: What each MALL-side status change means for the shop (the `note` column and alerts).
MALL_CHANGE_NOTES = {
    Status.OPEN: "paid on MALL (blocked → open)",
    Status.CANCELLED: "cancelled on MALL (by the customer or MALL)",
    Status.SHIPPED: "shipped (set on MALL)",
    Status.DELIVERED: "delivered (set on MALL)",
    Status.RETURNED: "returned (set on MALL)",
    Status.LOST: "lost by the carrier (set by MALL)",
    Status.SHIPPING: "being packed (set on MALL)",
    Status.BLOCKED: "blocked on MALL",
}


# -- inbound (MALL → shop) --------------------------------------------------------------------------

@dataclass(frozen=True)
class KnownOrder:
    """What the ledger knows of an order before this read: what the shop was handed."""

    handed: bool  # the order itself reached the shop (or was first seen past `open` and never needs to)
    handed_status: Status | None = None
    handed_branch_id: int | None = None


@dataclass(frozen=True)
class MallOrderNow:
    """MALL's current order, reduced to what the inbound decision reads."""

    status: Status
    confirmed: bool
    test: bool = False
    branch_id: int | None = None


@dataclass(frozen=True)
class HandNewOrder:
    """Hand the order to the shop as a new order (change ``mall:{id}:new``)."""

    status: Status
    branch_id: int | None


@dataclass(frozen=True)
class HandMallChange:
    """Hand a status MALL set to the shop (change ``mall:{id}:{status}``)."""

    status: Status
    note: str
    branch_id: int | None


@dataclass(frozen=True)
class HandBranchChange:
    """Hand a pickup-branch change to the shop (change ``mall:{id}:branch:{branch}``)."""

    status: Status
    branch_id: int
    note: str


@dataclass(frozen=True)
class RecordOnly:
    """Record an event (and what the shop is taken to know), hand nothing over."""

    event: str | None  # EventKind value of the history line; None: no line
    message: str
    handed_status: Status | None = None  # set orders.handed_status: the shop knows this status already
    handed_branch_id: int | None = None
    set_handed_branch: bool = False  # set orders.handed_branch_id to ``handed_branch_id`` (None included)


@dataclass(frozen=True)
class Confirm:
    """The order is unconfirmed on MALL: confirm it once everything MALL changed has reached the shop."""


@dataclass(frozen=True)
class Wait:
    """Nothing to do until MALL changes the order (blocked: waiting for payment)."""

    reason: str


Intent = HandNewOrder | HandMallChange | HandBranchChange | RecordOnly | Confirm | Wait

#: Our own outbound change for a status in one of these states means a MALL status equal to it is our echo.
OWN_PUSH_STATES = frozenset({ChangeState.DONE, ChangeState.SENDING, ChangeState.RETRY})


@dataclass(frozen=True)
class InboundDecision:
    intents: tuple[Intent, ...]
    reason: str  # one line for the log: what the shop must learn


def decide_inbound(
    *,
    known: KnownOrder | None,
    order: MallOrderNow,
    new_order_recorded: bool,
    own_push_state: str | None,
    include_test: bool,
) -> InboundDecision:
    """What the shop must learn from MALL's current order.

    ``known``: the ledger's order row (None: never seen). ``new_order_recorded``: a new-order change for
    it exists already (handed or waiting). ``own_push_state``: the state of the connector's own outbound
    change to ``order.status`` (None: none), so that our own push echoing back is not handed to the shop
    as a MALL change.
    """
    status = order.status
    confirm: tuple[Intent, ...] = () if order.confirmed else (Confirm(),)
    if order.test and not include_test:
        return InboundDecision((RecordOnly("ignored", "test order: recorded and left alone "
                                                      "([mall] include_test_orders = false)"),),
                               "test order: recorded and left alone")
    if status == Status.BLOCKED:
        # Not confirmed either: a blocked order is confirmed once it is paid and handed to the shop.
        return InboundDecision((RecordOnly("seen", "blocked (waiting for payment): recorded, not handed to the shop"),
                                Wait("waiting for payment")), "blocked on MALL: waiting for payment")
    handed = known is not None and known.handed
    if not handed:
        if new_order_recorded:
            return InboundDecision(confirm, "new order already queued for the shop")
        if status == Status.OPEN:
            return InboundDecision((HandNewOrder(status, order.branch_id), RecordOnly("new", "new order for the shop"),
                                    *confirm), "new order: to be handed to the shop")
        # First seen past `open` (handled before the connector ran, or in the portal): the shop already has it or
        # never needs it, so nothing is handed over.
        return InboundDecision((RecordOnly("seen", f"first seen in status {status}: not handed to the shop as new",
                                           handed_status=status, handed_branch_id=order.branch_id,
                                           set_handed_branch=True), *confirm),
                               f"first seen in status {status}: recorded only")
    intents: list[Intent] = []
    if known.handed_status != status:
        if own_push_state in OWN_PUSH_STATES:
            intents.append(RecordOnly(None, f"MALL has {status}: the connector's own push", handed_status=status))
        else:
            note = MALL_CHANGE_NOTES.get(status, f"status {status} set on MALL")
            intents.append(HandMallChange(status, note, order.branch_id))
    if (known.handed_branch_id is not None and order.branch_id is not None
            and order.branch_id != known.handed_branch_id):
        intents.append(HandBranchChange(status, order.branch_id,
                                        f"pickup branch changed from {known.handed_branch_id} to {order.branch_id}"))
    hands = any(isinstance(i, (HandMallChange, HandBranchChange)) for i in intents)
    reason = "changed on MALL: to be handed to the shop" if hands else f"MALL has it {status}; nothing new for the shop"
    return InboundDecision((*intents, *confirm), reason)


# -- ordering rules ------------------------------------------------------------------------------

def push_rounds(changes: list) -> list[list]:
    """Open outbound changes (oldest first) in rounds: an order with several gets one per round, oldest first,
    so each is decided on the state the one before it left (as if they were pushed one at a time)."""
    rounds: list[list] = []
    depth: dict[int, int] = {}
    for ch in changes:
        n = depth[ch.mall_order_id] = depth.get(ch.mall_order_id, -1) + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(ch)
    return rounds


def behind_older(changes: list, oldest_open: dict[int, int]) -> set[int]:
    """Ids of changes whose order has an older outbound change still open (``oldest_open``: order → lowest open
    change id): they wait for it, so that the order moves on MALL as it did in the shop. Decided first,
    delivered would be skipped as "not allowed" from open, and then never pushed."""
    return {ch.id for ch in changes if oldest_open.get(ch.mall_order_id, ch.id) < ch.id}


def inbound_first(*, push_confirms: bool, handed_status: str | None) -> bool:
    """Inbound before outbound: a push that would confirm an order the inbound pipeline hands to the shop waits.

    MALL unconfirms an order when it changes it (a customer cancel, a branch change); confirming it with a status
    push before that change reached the shop would acknowledge what the shop never got. Orders the inbound never
    handed over are confirmed by the push."""
    return push_confirms and handed_status is not None


def may_confirm(open_mall_changes: int) -> bool:
    """Confirm only once every MALL-side change of the order has reached the shop."""
    return open_mall_changes == 0


# -- verifying confirmations (issue 17) ----------------------------------------------------------

def verify_needs_reread(*, listed: bool, status: Status | None, confirmed: bool | None,
                        handed_status: Status | None, own_push_state: str | None) -> bool:
    """After a confirmation sent without a re-read: must the order be read again, because MALL may have changed
    it between the connector's read and its confirmation?

    ``listed``: MALL's order list had the order (basic data: status and confirmed, no pickup branch). Read again
    when it is missing from the list, unconfirmed again (MALL changed it since), or in a status the shop was not
    handed and the connector did not push itself."""
    if not listed or status is None or confirmed is None:
        return True
    if not confirmed:
        return True
    if status == handed_status:
        return False
    return own_push_state not in OWN_PUSH_STATES
