"""MALL's 24-hour rule: an order must be processed within 24 h of becoming ``open`` (paid).

Late orders count against the partner's SLA, and nothing in MALL's API warns about them, so a
needs-action item is opened a few hours before the limit (``[sync] confirm_deadline_warn_h``) for each
order that is still ``open`` on MALL and that the shop has not moved on either. The item closes by
itself once the order moves (on MALL, or a shop change on its way to MALL).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from connector.ledger import Ledger
from connector.ledger.types import ActionKind, ChangeState
from connector.ledger.types import action_key as make_action_key
from connector.mall.models import PRAGUE
from connector.mall.statuses import Status
from connector.sync.snapshot import order_from_snapshot

log = logging.getLogger("mall_connector.deadlines")

KIND = ActionKind.DEADLINE
LIMIT_H = 24.0
#: A shop change in one of these states means the shop has moved the order on (sent, or about to be).
#: "retry" and "failed" do not: MALL still sees the order open and the clock keeps running.
MOVED_ON_STATES = (ChangeState.PENDING, ChangeState.SENDING, ChangeState.DONE)


def action_key(order_id: int) -> str:
    return make_action_key(KIND, order_id)


def check_deadlines(ledger: Ledger, *, now: datetime | None = None, warn_after_h: float = 20.0,
                    include_test: bool = False, tz: str | None = None,
                    include_test_accounts: dict[str, bool] | None = None) -> int:
    """Open deadline items for orders open longer than ``warn_after_h`` hours; close the ones that cleared.

    ``now`` is aware, or naive UTC (the ledger's convention). Returns how many items were opened.
    Test orders are skipped unless ``include_test`` ([mall] include_test_orders). ``tz`` is the zone
    the message shows times in ([shop] timezone; default Europe/Prague, MALL's own).
    ``include_test_accounts`` (issue 18): account -> its own ``include_test_orders``; an order of an account
    not named there (or not known yet) takes ``include_test``.
    """
    per_account = include_test_accounts or {}
    now = _aware(now or datetime.now(timezone.utc))
    rows, shop_moves = ledger.reports.orders_with_shop_moves(Status.OPEN.value)
    moved = {oid for oid, state in shop_moves if state in MOVED_ON_STATES}
    retrying = {oid for oid, state in shop_moves if state == ChangeState.RETRY}

    due: dict[int, str] = {}
    for r in rows:
        if (r.test and not per_account.get(r.account, include_test)) or r.mall_order_id in moved:
            continue
        opened = _opened_at(r.snapshot)
        if opened is None:
            continue  # no open timestamp to count from (not fetched yet)
        age_h = (now - opened).total_seconds() / 3600
        if age_h > warn_after_h:
            due[r.mall_order_id] = _message(r.mall_order_id, opened, age_h, r.mall_order_id in retrying, tz)

    waiting = {a["mall_order_id"] for a in ledger.actions.open() if a["kind"] == KIND}
    opened_n = 0
    new = [oid for oid in due if oid not in waiting]
    if new:
        with ledger.write() as c:
            for oid in new:
                if ledger.actions.add(c, key=action_key(oid), order_id=oid, kind=KIND, message=due[oid]) is not None:
                    opened_n += 1
                    log.warning("%s", due[oid], extra={"order_id": oid})
    cleared = sorted(oid for oid in waiting - due.keys() if oid is not None)
    if cleared:
        known = ledger.orders.get_many(cleared)
        for oid in cleared:
            row = known.get(oid)
            status = row.mall_status if row is not None else None
            if oid in moved and status == Status.OPEN.value:
                note = "cleared: the shop moved the order on; the connector is passing it to MALL"
            else:
                note = f"cleared: the order is {status or 'no longer in the ledger'} on MALL"
            with ledger.write() as c:
                ledger.actions.close(c, oid, KIND, note)
    return opened_n


def _opened_at(snapshot: str | None) -> datetime | None:
    """MALL's ``open`` timestamp from the stored order, or None when unknown or unreadable."""
    if not snapshot:
        return None
    try:
        return order_from_snapshot(snapshot).open
    except ValueError:
        return None


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt


def _message(order_id: int, opened: datetime, age_h: float, retrying: bool, tz: str | None = None) -> str:
    from connector.timefmt import local, zone_name

    zone = tz or PRAGUE
    limit = local(opened + timedelta(hours=LIMIT_H), zone)
    left_h = LIMIT_H - age_h
    since = local(opened, zone)
    if left_h > 0:
        when = f"{left_h:.1f} h left (until {limit})"
        todo = "Pack it and set it to shipping in the shop (or cancel it there if it cannot be sent)"
    else:
        when = f"the limit passed {-left_h:.1f} h ago ({limit})"
        todo = "Process it now: set it to shipping in the shop (or cancel it there if it cannot be sent)"
    text = (f"Order {order_id} has been open on MALL for {age_h:.1f} h (since {since}); MALL expects "
            f"orders processed within 24 h: {when}; times in {zone_name(zone)}. {todo}; the connector passes it "
            f"on to MALL.")
    if retrying:
        text += " A status change from the shop is already waiting for a retry: see `mall-connector ledger list`."
    return text
