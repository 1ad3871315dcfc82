"""The one error policy: what an error means for the operation it interrupted.

Every exception the sync engines meet while working on one item (an inbox id, a change, a hand-off
batch, a confirmation) is passed to ``outcome_for(op, error)``, which returns an ``Outcome``; the
engines only carry it out (``Engine.contain`` in connector/sync/common.py). Nothing else in
connector/sync catches a MALL error. The table (also in docs/architecture.md):

=====================  ==================================================================
error                  outcome
=====================  ==================================================================
401 MallUnauthorized   STOP: end the job, alert (nothing can work until a human fixes it)
403 MallForbidden      STOP: the account may not do this; alert
list refresh           any error but 401/403: REREAD (the orders are read one by one)
404 MallNotFound       inbox read, confirm read/PUT, delivery read: DROP; push read/PUT: FAIL
400/422 Validation     push PUT: first try REREAD (MALL may have changed the order), later FAIL;
                       confirm PUT: FAIL; anything else: RETRY
429 RateLimited        RETRY after the reset MALL gave; a push pass ends there
5xx, transport, bad    RETRY with backoff (a push's ambiguous failure: REREAD before resending)
MallOutcomeUnknown     push PUT: REREAD; confirm PUT (idempotent): RETRY
MallBadResponse        push PUT: REREAD (MALL may have applied it); anything else: RETRY
verify (issue 17)      any error but 401/403: RETRY (the orders stay to verify; the next pass tries)
HandoffError           RETRY with backoff
LedgerError            RETRY with backoff
anything else          push PUT: REREAD; else RETRY with backoff: recorded on the item,
                       quarantined after max_attempts
=====================  ==================================================================

MALL Delivery (connector/sync/labels.py, serials.py; issue 21): POST labels (``LABELS``) is not idempotent:
404 FAIL; 400/422 FAIL, refused (a batch is then asked order by order); 429 RETRY, ending the pass;
MallOutcomeUnknown, MallBadResponse and anything not from MALL REREAD (the consignments are read before
asking again); other MALL errors RETRY. Reading consignments (``LABELS_READ``): RETRY (the request stays
open). PUT serial-numbers (``SERIALS``, idempotent): 404 FAIL (unknown order or item), 400/422 FAIL,
refused; 429 RETRY, ending the pass; anything else RETRY. 401/403 STOP, as everywhere.

RETRY and REREAD count an attempt; past ``[sync] max_attempts`` the item is quarantined (FAIL,
the reason kept) by ``after_failure``. The outcome is stored in typed columns (``outcome``,
``error_class``, ``refused``), never parsed back from the message.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import pydantic

from adapters.base import FeedUnavailable, HandoffError
from connector.ledger.db import LedgerError
from connector.ledger.repo import utcnow
from connector.mall.errors import (
    MallBadResponse,
    MallError,
    MallForbidden,
    MallNotFound,
    MallOutcomeUnknown,
    MallRateLimited,
    MallServerError,
    MallTransportError,
    MallUnauthorized,
    MallValidationError,
)

MESSAGE_MAX = 2000  # characters of an error message kept on an item


class Op(StrEnum):
    """The operations of the sync engines that one item goes through."""

    INBOX_READ = "inbox_read"  # GET the order of an inbox id
    RECORD = "record"  # store what MALL said and decide what the shop must learn
    PUSH_READ = "push_read"  # GET the order before deciding a push
    LIST_REFRESH = "list_refresh"  # one list call for the states of many orders
    PUSH = "push"  # PUT a status change
    HANDOFF_RECORD = "handoff_record"  # build the shop's record of one change
    HANDOFF = "handoff"  # stage / publish one batch in the shop's outbox
    CONFIRM_READ = "confirm_read"  # GET the order before confirming it
    CONFIRM = "confirm"  # PUT confirmed: true
    SWEEP = "sweep"  # list MALL's unconfirmed orders
    DECIDE = "decide"  # decide a change on the state read (pure, but fed with outside data)
    FEED_READ = "feed_read"  # read the shop's feed (the whole feed: retried by the next poll)
    DELIVERY_READ = "delivery_read"  # issue 15: one watched parcel's step (its order's MALL read, its carrier answer)
    # -- MALL Delivery (issue 21) --
    LABELS = "labels"  # POST /v1/orders/labels for a batch of orders (not idempotent)
    LABELS_READ = "labels_read"  # GET /v1/orders/{id}/consignments before asking again
    SERIALS = "serials"  # PUT an item's serial numbers (idempotent)
    # -- quota (issue 17) --
    VERIFY = "verify"  # one list call checking recently confirmed orders (GET /v1/orders?filter=basic&id=in:…)


class Kind(StrEnum):
    RETRY = "retry"  # try the item again after a backoff
    REREAD = "reread"  # read the order from MALL again, then decide again (scheduled like a retry)
    FAIL = "fail"  # the item fails with a reason; a human decides
    STOP = "stop"  # end the job and alert: nothing else can work either (401, 403)
    DROP = "drop"  # forget the item: it does not exist (404 for an inbox id)


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    reason: str
    error_class: str
    message: str
    at_least_s: float = 0.0  # never retry sooner (MALL's rate-limit reset)
    end_pass: bool = False  # stop this pass after recording (MALL keeps rate-limiting)
    refused: bool = False  # MALL refused the write outright: it certainly did not apply it


#: What each operation was doing, for the reason kept on the item.
DOING = {
    Op.INBOX_READ: "reading the order from MALL",
    Op.RECORD: "recording the order read from MALL",
    Op.PUSH_READ: "reading the order from MALL before the push",
    Op.LIST_REFRESH: "reading order states from MALL's order list",
    Op.PUSH: "pushing the status to MALL",
    Op.HANDOFF_RECORD: "building the record for the shop",
    Op.HANDOFF: "handing the batch to the shop",
    Op.CONFIRM_READ: "reading the order from MALL before confirming",
    Op.CONFIRM: "confirming the order on MALL",
    Op.SWEEP: "listing MALL's unconfirmed orders",
    Op.DECIDE: "deciding the change",
    Op.FEED_READ: "reading the shop feed",
    Op.DELIVERY_READ: "following the order's delivery",  # issue 15
    Op.LABELS: "asking MALL for the labels",
    Op.LABELS_READ: "reading the order's consignments from MALL",
    Op.SERIALS: "sending the serial numbers to MALL",
    Op.VERIFY: "checking recently confirmed orders against MALL's order list",
}


def describe(error: BaseException) -> str:
    """The error's message, bounded, for an item's record (MallError messages never carry the client_id; a
    model's validation error names fields and reasons only, never the values, which may be customer data)."""
    if isinstance(error, pydantic.ValidationError):
        text = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in error.errors())
        text = f"{error.title}: {text}"
    else:
        text = str(error) or error.__class__.__name__
    return text[:MESSAGE_MAX]


def outcome_for(op: Op, error: BaseException, *, first_try: bool = False) -> Outcome:
    """The outcome of ``error`` raised by ``op``. ``first_try``: the item was decided on the ledger's copy of
    the order, never on a fresh read (a push's first attempt)."""
    cls = error.__class__.__name__
    message = describe(error)
    doing = DOING[op]

    def out(kind: Kind, reason: str, **kw) -> Outcome:
        return Outcome(kind, reason[:MESSAGE_MAX], cls, message, **kw)

    if isinstance(error, MallUnauthorized):
        return out(Kind.STOP, "MALL rejected the client_id (401): check [mall] client_id")
    if isinstance(error, MallForbidden):
        return out(Kind.STOP, f"MALL does not allow this account {doing} (403): {message}")
    if op in (Op.LABELS, Op.LABELS_READ, Op.SERIALS):
        return _mdp_outcome(op, error, out, doing, message, cls)
    if op == Op.LIST_REFRESH:
        # Only an optimisation: whatever went wrong, the orders are read one by one instead.
        return out(Kind.REREAD, f"{doing} failed ({cls}: {message}); the orders are read one by one")
    if isinstance(error, MallNotFound):
        if op in (Op.INBOX_READ, Op.CONFIRM_READ, Op.CONFIRM, Op.DELIVERY_READ):
            return out(Kind.DROP, "MALL does not know this order id (404)")
        if op in (Op.PUSH_READ, Op.PUSH):
            return out(Kind.FAIL, "MALL does not know this order: check the mall_order_id in the shop feed")
        return out(Kind.RETRY, f"{doing} failed: {message}")
    if isinstance(error, MallValidationError):
        if op == Op.PUSH:
            if first_try:
                return out(Kind.REREAD, f"MALL refused it ({error.message}); the order will be re-read and "
                                        "decided again", refused=True)
            return out(Kind.FAIL, f"MALL refused it: {error.message}", refused=True)
        if op == Op.CONFIRM:
            return out(Kind.FAIL, f"MALL refused the confirmation: {error.message}", refused=True)
        return out(Kind.RETRY, f"{doing} failed: {message}")
    if isinstance(error, MallRateLimited):
        return out(Kind.RETRY, f"{doing}: MALL is rate-limiting: {message}", at_least_s=float(error.reset_s or 0.0),
                   end_pass=op == Op.PUSH)
    if isinstance(error, MallOutcomeUnknown) or (op == Op.PUSH and isinstance(error, MallBadResponse)):
        if op == Op.PUSH:
            return out(Kind.REREAD, f"outcome unknown, the order will be re-read before any resend: {message}")
        return out(Kind.RETRY, f"{doing} failed: {message}")
    if isinstance(error, (MallServerError, MallTransportError, MallBadResponse, MallError)):
        return out(Kind.RETRY, f"{doing} failed: {message}")
    if isinstance(error, HandoffError):
        return out(Kind.RETRY, f"{doing} failed: {message}")
    if isinstance(error, FeedUnavailable):
        return out(Kind.RETRY, f"{doing} failed, the shop feed is unreadable: {message}")
    if isinstance(error, LedgerError):
        return out(Kind.RETRY, f"{doing} failed, the ledger could not be written: {message}")
    if op == Op.PUSH:
        # Raised while the PUT was on its way or its answer read: MALL may have applied it.
        return out(Kind.REREAD, f"{doing} failed ({cls}: {message}); the order will be re-read before any resend")
    return out(Kind.RETRY, f"{doing} failed: {cls}: {message}")


def _mdp_outcome(op: Op, error: BaseException, out, doing: str, message: str, cls: str) -> Outcome:
    """MALL Delivery labels and serial numbers (the table in the module docstring)."""
    if op == Op.LABELS_READ:
        return out(Kind.RETRY, f"{doing} failed ({cls}: {message}); the labels request stays open")
    if isinstance(error, MallNotFound):
        if op == Op.SERIALS:
            return out(Kind.FAIL, f"MALL does not know this order or item (404): {error.message or 'not found'}; "
                                  "check the serials source")
        return out(Kind.FAIL, f"MALL does not know the order (404): {message}")
    if isinstance(error, MallValidationError):
        what = "labels" if op == Op.LABELS else "serial numbers"
        return out(Kind.FAIL, f"MALL refused the {what}: {error.message or message}", refused=True)
    if isinstance(error, MallRateLimited):
        return out(Kind.RETRY, f"{doing}: MALL is rate-limiting: {message}", at_least_s=float(error.reset_s or 0.0),
                   end_pass=True)
    if op == Op.LABELS and (isinstance(error, (MallOutcomeUnknown, MallBadResponse))
                            or not isinstance(error, MallError)):
        return out(Kind.REREAD, f"{doing}: outcome unknown, the consignments will be read before asking again: "
                                f"{cls}: {message}")
    return out(Kind.RETRY, f"{doing} failed: {message}")


@dataclass(frozen=True)
class Disposition:
    """What to record on an item after an outcome that counts an attempt (RETRY, REREAD)."""

    quarantine: bool
    attempts: int
    next_attempt_at: datetime | None
    reason: str


def backoff_at(attempts: int, base_s: float, max_s: float, *, at_least_s: float = 0.0,
               rng: random.Random | None = None, now: datetime | None = None) -> datetime:
    """When to try again: exponential from ``base_s`` with ±10 % jitter, capped, never before ``at_least_s``."""
    delay = min(max_s, base_s * (2 ** max(0, attempts - 1)))
    delay *= (rng or random).uniform(0.9, 1.1)
    return (now or utcnow()) + timedelta(seconds=max(delay, at_least_s))


def after_failure(outcome: Outcome, attempts: int, *, max_attempts: int, retry_base_s: float,
                  retry_max_s: float) -> Disposition:
    """``attempts`` is the count including the one that just failed. At ``max_attempts`` the item is quarantined."""
    if outcome.kind == Kind.FAIL:
        return Disposition(True, attempts, None, outcome.reason)
    if attempts >= max_attempts:
        return Disposition(True, attempts, None, f"gave up after {attempts} attempts: {outcome.reason}")
    return Disposition(False, attempts, backoff_at(attempts, retry_base_s, retry_max_s,
                                                   at_least_s=outcome.at_least_s), outcome.reason)

