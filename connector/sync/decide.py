"""The decisions, as pure functions: given what the shop says and what MALL has, what to do.

Kept free of I/O so every rule is unit-tested over every status pair, and so the outbound and
inbound engines only carry decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
