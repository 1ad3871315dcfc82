"""MALL → shop: webhook inbox and unconfirmed sweep → GET the full order → hand it to the shop → confirm.

Every step is recorded before the next one starts, so a crash at any point resumes without
losing or repeating anything:

* an inbox row is removed only in the transaction that records what the order needs;
* an outbox batch gets its final name in the ledger before a byte is written, is staged under a
  temporary name, and is published by an atomic rename (see docs/architecture.md);
* ``confirmed: true`` is sent only once everything MALL changed has reached the shop.

Each item (an inbox id, a change's record, a batch, a confirmation) is contained: whatever it raises,
the error policy (policy.py) says what it means, the outcome is recorded on that item, and the pass
goes on with the next one. What the shop must learn is decided by ``decide_inbound`` (decide.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from adapters.base import MallChange, NewOrder, NewOrderItem
from connector.ledger.rows import ChangeRow, HandoffRow, utcnow
from connector.ledger.types import (
    ActionKind,
    ChangeKind,
    ChangeState,
    EventKind,
    HandoffKind,
    HandoffState,
    ItemKind,
    Origin,
    action_key,
    branch_change_key,
    mall_change_key,
    new_order_key,
    shop_change_key,
)
from connector.mall.models import Order, StatusUpdate
from connector.mall.statuses import Status
from connector.mapping import Mapping
from connector.sync.common import Engine, mall_time
from connector.sync.decide import (
    Confirm,
    HandBranchChange,
    HandMallChange,
    HandNewOrder,
    KnownOrder,
    MallOrderNow,
    RecordOnly,
    decide_inbound,
    may_confirm,
    verify_needs_reread,
)
from connector.mall.quota import call_kind
from connector.sync.policy import Kind, Op
from connector.sync.snapshot import branch_of, order_from_snapshot, store_snapshot  # noqa: F401 - re-exported

log = logging.getLogger("mall_connector.inbound")

_branch_of = branch_of  # the first release's name


def _file_stamp(config) -> str:
    """issue 14: outbox file names carry the time in [shop] timezone and name the zone."""
    from connector.timefmt import file_stamp

    return file_stamp(utcnow(), config.shop.timezone)


def _note_handoff_error(ledger: Ledger, name: str, message: str) -> None:
    """issue 14: the alert about a hand-off that cannot be written says why."""
    from connector.ledger.alerting import record_handoff_error

    record_handoff_error(ledger, f"{name}: {message}")


def new_order_record(order: Order, mapping: Mapping) -> NewOrder:
    a = order.address
    created = order.open or order.blocked
    return NewOrder(
        mall_order_id=order.id, purchase_id=order.purchase_id, status=order.status.value,
        shop_status=mapping.shop_status_for(order.status), created_at=mall_time(created) or "",
        ship_date=order.ship_date.isoformat() if order.ship_date else None,
        delivery_date=order.delivery_date.isoformat() if order.delivery_date else None,
        customer_name=(a.name or "") if a else "", company=(a.company or "") if a else "",
        street=(a.street or "") if a else "", city=(a.city or "") if a else "", zip=(a.zip or "") if a else "",
        country=(a.country or "") if a else "", phone=(a.phone or "") if a else "", email=(a.email or "") if a else "",
        delivery_method=order.delivery_method or "", branch_id=branch_of(order), payment_type=order.payment_type or "",
        cod=float(order.cod or 0), delivery_price=float(order.delivery_price or 0), currency=order.currency or "",
        items=tuple(
            NewOrderItem(item_id=str(i.id), article_id=i.article_id, title=i.title or "", quantity=i.quantity,
                         price=float(i.price), vat=float(i.vat or 0))
            for i in order.items
        ),
    )


@dataclass
class InboundResult:
    swept: int = 0
    fetched: int = 0
    new_orders: int = 0
    mall_changes: int = 0
    handed: int = 0
    confirmed: int = 0
    dropped: int = 0
    retry: int = 0
    ignored_test: int = 0
    quarantined: int = 0  # items that reached [sync] max_attempts in this pass
    sweep_failed: str | None = None  # why the sweep could not list MALL's unconfirmed orders
    verified: int = 0  # confirmations checked (issue 17)
    verify_rereads: int = 0  # of them queued to be read again
    verify_calls: int = 0  # list calls made for it
    verify_failed: str | None = None


SWEEP_KV = "last_sweep_at"  # issue 17: when the last sweep listed MALL's unconfirmed orders (UTC)
RESERVE_SWEEP_EVERY_S = 3600  # in the reserve, sweeps at most hourly
VERIFY_BATCH = 100  # orders per verification list call (GET /v1/orders?filter=basic&id=in:…)
VERIFY_MAX_PER_PASS = 1000  # bounded: a backlog (after a reserve spell) is worked off over several passes


class InboundSync(Engine):
    """MALL → shop: inbox, sweep, hand-off, confirmation and its verification."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        #: False once MALL was seen ignoring the id filter of the order list: confirmations are then verified by
        #: reading each order (issue 17).
        self.verify_by_list = True

    def run(self, result: InboundResult | None = None, *, retry_now: bool = False) -> InboundResult:
        """One pass: drain the inbox, hand over what is new, confirm what the shop has. ``retry_now``: items
        backing off after a failure are tried now (`sync-once --retry-now`); quarantined ones never are."""
        result = result or InboundResult()
        self.drain(result, retry_now=retry_now)
        self.handoff(result, retry_now=retry_now)
        self.confirm(result, retry_now=retry_now)
        self.verify(result)
        return result

    # -- sweep --------------------------------------------------------------------------------
    def sweep(self, result: InboundResult | None = None) -> InboundResult:
        """List MALL's unconfirmed orders and queue them: catches every webhook that never came. A failing
        list is logged and tried again by the next sweep; the inbox pass goes on regardless."""
        result = result or InboundResult()
        if not self._sweep_due():
            result.sweep_failed = "postponed: MALL's daily call budget is in the reserve (swept within the hour)"
            return result
        try:
            basics = self.client.list_unconfirmed(include_test=self.config.mall.include_test_orders)
        except Exception as e:  # contained: see policy.py (401/403 re-raise)
            outcome = self.outcome(Op.SWEEP, e)
            result.sweep_failed = outcome.reason
            log.warning("sweep: %s", outcome.reason)
            return result
        known = self.ledger.orders.get_many([b.id for b in basics])
        queue = []
        for b in basics:
            k = known.get(b.id)
            if b.status == Status.BLOCKED and k is not None and k.mall_status == Status.BLOCKED.value:
                continue  # unchanged blocked order: nothing to do until it is paid
            queue.append(b.id)
        result.swept += self.ledger.inbox.enqueue(queue, source="sweep")
        return result

    def _sweep_due(self) -> bool:
        """issue 17: in the reserve a sweep runs at most hourly (MALL's own advice); otherwise always."""
        from connector.sync.ratelimit import in_reserve

        last = self.ledger.kv.get(SWEEP_KV)
        now = utcnow()
        if last and in_reserve(self.client, self.config.mall.reserve_share, self.ledger):
            try:
                if (now - datetime.fromisoformat(last)).total_seconds() < RESERVE_SWEEP_EVERY_S:
                    log.info("sweep postponed: MALL's daily call budget is in the reserve ([mall] reserve_share)")
                    return False
            except ValueError:
                pass
        with self.ledger.write() as c:
            self.ledger.kv.set(c, SWEEP_KV, now.isoformat())
        return True

    # -- drain --------------------------------------------------------------------------------
    def drain(self, result: InboundResult | None = None, *, retry_now: bool = False) -> InboundResult:
        result = result or InboundResult()
        cfg = self.config.sync
        tried: set[int] = set()
        while True:
            ids = [i for i in self.ledger.inbox.due(cfg.batch_size, due_anyway=retry_now,
                                                    **({"account": self.account} if self.account else {}))
                   if i not in tried]  # issue 18: one account's pass
            tried.update(ids)
            if not ids:
                break
            for oid in ids:
                if self.should_stop():
                    return result
                self._fetch_one(oid, result)
            if len(ids) < cfg.batch_size:
                break
        return result

    def _fetch_one(self, oid: int, result: InboundResult) -> None:
        try:
            order = self.client.get_order(oid)
            if order.id != oid:  # recording it would leave this id in the inbox, read again on every pass
                raise ValueError(f"MALL answered GET /v1/orders/{oid} with order {order.id}")
        except Exception as e:  # contained: see policy.py
            self._inbox_failed(oid, Op.INBOX_READ, e, result)
            return
        result.fetched += 1
        try:
            self.record_order(order, result)
        except Exception as e:  # contained: e.g. a value the ledger cannot store
            self._inbox_failed(oid, Op.RECORD, e, result)

    def _inbox_failed(self, oid: int, op: Op, error: BaseException, result: InboundResult) -> None:
        """Carry out the policy's outcome for an inbox id."""
        outcome = self.outcome(op, error)
        if outcome.kind == Kind.DROP:
            with self.ledger.write() as c:
                self.ledger.orders.add_event(c, oid, EventKind.DROPPED,
                                             f"{outcome.reason}: dropped from the inbox")
                self.ledger.inbox.remove(c, oid)
            log.warning("order %s: %s; dropped", oid, outcome.reason, extra={"order_id": oid})
            result.dropped += 1
            return
        disp = self.disposition(outcome, self.ledger.inbox.attempts(oid) + 1)
        with self.ledger.write() as c:
            self.ledger.inbox.record_failure(c, oid, attempts=disp.attempts, next_attempt_at=disp.next_attempt_at,
                                             quarantine=disp.quarantine, error_class=outcome.error_class,
                                             message=outcome.message, reason=disp.reason)
            if disp.quarantine:
                self.ledger.orders.add_event(c, oid, EventKind.QUARANTINED, f"inbox id quarantined: {disp.reason}")
        if disp.quarantine:
            result.quarantined += 1
            log.error("order %s: inbox id quarantined after %d attempt(s): %s", oid, disp.attempts, disp.reason,
                      extra={"order_id": oid, "reason": disp.reason})
            self.quarantined(ItemKind.INBOX, oid)
        else:
            result.retry += 1
            log.info("order %s: %s; will retry", oid, outcome.reason, extra={"order_id": oid})

    def record_order(self, order: Order, result: InboundResult) -> None:
        """Store the snapshot and carry out the inbound decision, in one transaction with the inbox removal."""
        oid = order.id
        mapping = self.mapping
        from connector.accounts import include_test_of

        include_test = include_test_of(self.config, self.account)  # issue 18: the pass's account's own setting
        now = MallOrderNow(status=order.status, confirmed=order.confirmed, test=order.test, branch_id=branch_of(order))
        with self.ledger.write() as c:
            row = self.ledger.orders.get(oid, c)
            known = None if row is None else KnownOrder(
                handed=row.handed_at is not None,
                handed_status=Status(row.handed_status) if row.handed_status else None,
                handed_branch_id=row.handed_branch_id)
            own = self.ledger.changes.by_key(c, shop_change_key(oid, order.status.value))
            decision = decide_inbound(
                known=known, order=now, include_test=include_test,
                new_order_recorded=self.ledger.changes.by_key(c, new_order_key(oid)) is not None,
                own_push_state=own.state if own is not None else None)
            store_snapshot(self.ledger, c, order)
            self.ledger.inbox.remove(c, oid)
            if order.confirmed:
                # Read after its confirmation (MALL unconfirms an order it changes): this read verifies it.
                self.ledger.verifications.done(c, [oid])
            counts = self._carry_out(c, order, decision.intents, mapping)
        result.new_orders += counts["new"]
        result.mall_changes += counts["changes"]
        result.ignored_test += counts["ignored"]
        log.info("order %s: %s", oid, decision.reason, extra={"order_id": oid, "reason": decision.reason})

    def _carry_out(self, c, order: Order, intents, mapping: Mapping) -> dict[str, int]:
        oid = order.id
        counts = {"new": 0, "changes": 0, "ignored": 0}
        for intent in intents:
            if isinstance(intent, HandNewOrder):
                self.ledger.changes.insert(
                    c, key=new_order_key(oid), order_id=oid, origin=Origin.MALL, kind=ChangeKind.NEW_ORDER,
                    target_status=intent.status.value, shop_status=mapping.shop_status_for(intent.status),
                    payload={"status": intent.status.value, "branch_id": intent.branch_id})
                counts["new"] += 1
            elif isinstance(intent, HandMallChange):
                if self.ledger.changes.insert(
                    c, key=mall_change_key(oid, intent.status.value), order_id=oid, origin=Origin.MALL,
                    kind=ChangeKind.STATUS, target_status=intent.status.value,
                    shop_status=mapping.shop_status_for(intent.status),
                    payload={"status": intent.status.value, "note": intent.note,
                             "changed_at": mall_time(order.entered_at(intent.status)), "branch_id": intent.branch_id},
                ) is not None:
                    self.ledger.orders.add_event(c, oid, EventKind.MALL_CHANGE, intent.note)
                    counts["changes"] += 1
            elif isinstance(intent, HandBranchChange):
                if self.ledger.changes.insert(
                    c, key=branch_change_key(oid, intent.branch_id), order_id=oid, origin=Origin.MALL,
                    kind=ChangeKind.BRANCH, target_status=intent.status.value,
                    shop_status=mapping.shop_status_for(intent.status),
                    payload={"status": intent.status.value, "note": intent.note, "branch_id": intent.branch_id,
                             "changed_at": mall_time(order.branches.last_change if order.branches else None)},
                ) is not None:
                    self.ledger.orders.add_event(c, oid, EventKind.MALL_CHANGE, intent.note)
                    counts["changes"] += 1
            elif isinstance(intent, RecordOnly):
                if intent.event:
                    self.ledger.orders.add_event(c, oid, intent.event, intent.message)
                if intent.event == EventKind.IGNORED:
                    counts["ignored"] += 1
                values = {}
                if intent.handed_status is not None:
                    values["handed_status"] = intent.handed_status.value
                if intent.set_handed_branch:
                    values["handed_branch_id"] = intent.handed_branch_id
                if values:
                    self.ledger.orders.ensure(c, oid, **values)
            elif isinstance(intent, Confirm):
                self.ledger.orders.ensure(c, oid, needs_confirm=True)
            # Wait: nothing to record beyond the event
        return counts

    # -- hand-off to the shop -----------------------------------------------------------------
    def handoff(self, result: InboundResult | None = None, *, retry_now: bool = False) -> InboundResult:
        """Finish interrupted batches first, then hand new records over in batches. A batch that fails backs off
        on its own and the others go on (a change joins one batch only, so failing batches cannot pile up)."""
        result = result or InboundResult()
        for h in self.ledger.handoffs.open(due_only=not retry_now):
            self._finish_handoff(h, result)
        cfg = self.config.sync
        last_id = 0
        while True:
            batch = self.ledger.changes.due(Origin.MALL, cfg.batch_size, after_id=last_id)
            if not batch:
                break
            last_id = batch[-1].id
            todo = [ch for ch in batch if ch.handoff_id is None]
            for kind, group in ((HandoffKind.ORDERS, [ch for ch in todo if ch.kind == ChangeKind.NEW_ORDER]),
                                (HandoffKind.CHANGES, [ch for ch in todo if ch.kind != ChangeKind.NEW_ORDER])):
                group = self._buildable(kind, group, result)
                if group:
                    with self.ledger.write() as c:
                        hid, name = self.ledger.handoffs.create(c, kind, [ch.id for ch in group],
                                                               stamp=_file_stamp(self.config))
                    self._finish_handoff(HandoffRow(hid, name, str(kind), HandoffState.SENDING.value), result)
        return result

    def _buildable(self, kind: str, changes: list[ChangeRow], result: InboundResult) -> list[ChangeRow]:
        """The changes whose shop record can be built, checked before they join a batch: one that cannot (e.g. a
        snapshot the models refuse) is recorded on that change, and the batch goes on without it."""
        if not changes:
            return []
        orders = self.ledger.orders.get_many([ch.mall_order_id for ch in changes])
        mapping = self.mapping
        ok = []
        for ch in changes:
            try:
                self._record(kind, ch, orders.get(ch.mall_order_id), mapping)
            except Exception as e:  # contained: see policy.py
                self._change_failed(ch, Op.HANDOFF_RECORD, e, result)
            else:
                ok.append(ch)
        return ok

    def _change_failed(self, ch: ChangeRow, op: Op, error: BaseException, result: InboundResult) -> None:
        outcome = self.outcome(op, error)
        disp = self.disposition(outcome, ch.attempts + 1)
        to = ChangeState.FAILED if disp.quarantine else ChangeState.RETRY
        with self.ledger.write() as c:
            self.ledger.changes.move(c, ch.id, ch.state, to, attempts=disp.attempts,
                                     next_attempt_at=disp.next_attempt_at, last_error=outcome.message,
                                     error_class=outcome.error_class, outcome=outcome.kind.value,
                                     reason=disp.reason if disp.quarantine else None)
            self.ledger.orders.add_event(c, ch.mall_order_id, to, f"change {ch.id}: {disp.reason}")
        if disp.quarantine:
            result.quarantined += 1
            log.error("order %s: change %s quarantined: %s", ch.mall_order_id, ch.id, disp.reason)
            self.quarantined(ItemKind.CHANGE, ch.id)
        else:
            result.retry += 1

    def _records(self, kind: str, changes: list[ChangeRow]) -> list:
        mapping = self.mapping
        orders = self.ledger.orders.get_many([ch.mall_order_id for ch in changes])
        return [self._record(kind, ch, orders.get(ch.mall_order_id), mapping) for ch in changes]

    @staticmethod
    def _record(kind: str, ch: ChangeRow, row, mapping: Mapping):
        """The shop's record of one change, from the newest snapshot of its order."""
        if row is None or not row.snapshot:
            raise ValueError(f"the ledger has no MALL data for order {ch.mall_order_id}")
        order = order_from_snapshot(row.snapshot)
        if kind == HandoffKind.ORDERS:
            return new_order_record(order, mapping)
        status = Status(ch.payload.get("status", order.status.value))
        return MallChange(
            mall_order_id=ch.mall_order_id, mall_status=status.value, shop_status=mapping.shop_status_for(status),
            changed_at=ch.payload.get("changed_at") or mall_time(utcnow().replace(tzinfo=None)) or "",
            branch_id=ch.payload.get("branch_id"), note=ch.payload.get("note", ""),
        )

    def _finish_handoff(self, h: HandoffRow, result: InboundResult) -> bool:
        """Stage (unless staged) and publish one batch; False when it failed (recorded on the batch)."""
        changes = self.ledger.changes.of_handoff(h.id)
        try:
            records = self._records(h.kind, changes)
            if h.state == HandoffState.SENDING:
                self.adapter.stage_handoff(h.name, h.kind, records)
                with self.ledger.write() as c:
                    self.ledger.handoffs.set_state(c, h.id, HandoffState.STAGED)
                h = HandoffRow(h.id, h.name, h.kind, HandoffState.STAGED.value, h.attempts, h.next_attempt_at)
            self.adapter.publish_handoff(h.name)  # False: the rename already happened before a crash
        except Exception as e:  # contained: see policy.py
            self._handoff_failed(h, e, result)
            return False
        now = utcnow()
        with self.ledger.write() as c:
            self.ledger.handoffs.set_state(c, h.id, HandoffState.DONE)
            for ch, record in zip(changes, records):
                self.ledger.changes.move(c, ch.id, ch.state, ChangeState.DONE, reason=f"handed to the shop in {h.name}")
                values = {"handed_status": ch.payload.get("status")}
                if ch.kind == ChangeKind.NEW_ORDER:
                    # The record is built from the newest snapshot, which may be newer than the change's payload
                    # (e.g. cancelled or moved to another branch before the hand-off): remember what the shop got,
                    # or the next read would tell the shop the same thing again.
                    values["handed_at"] = now
                    values["handed_status"] = record.status
                    values["handed_branch_id"] = record.branch_id
                elif ch.kind == ChangeKind.BRANCH:
                    values["handed_branch_id"] = ch.payload.get("branch_id")
                self.ledger.orders.ensure(c, ch.mall_order_id, **values)
                self.ledger.orders.add_event(c, ch.mall_order_id, EventKind.HANDED, f"handed to the shop in {h.name}")
                steps = self.adapter.manual_steps(record)
                if ch.kind == ChangeKind.BRANCH:
                    # A human must always act on a branch change: the parcel goes to the new branch.
                    self.ledger.actions.add(
                        c, key=action_key(ActionKind.BRANCH_CHANGE, ch.key), order_id=ch.mall_order_id,
                        kind=ActionKind.BRANCH_CHANGE,
                        message=steps or f"Order {ch.mall_order_id}: {ch.payload.get('note')}. The parcel must go "
                                         "to the new pickup branch; print the label for it.")
                elif steps:
                    self.ledger.actions.add(c, key=action_key(ActionKind.SHOP_ACTION, ch.key),
                                            order_id=ch.mall_order_id, kind=ActionKind.SHOP_ACTION, message=steps)
        result.handed += len(changes)
        if self.metrics is not None:
            self.metrics.handoff(h.kind)
        log.info("handed %d record(s) to the shop in %s", len(changes), h.name)
        for ch, record in zip(changes, records):
            self.hooks.call("after_handoff", ch, record)
        return True

    def _handoff_failed(self, h: HandoffRow, error: BaseException, result: InboundResult) -> None:
        outcome = self.outcome(Op.HANDOFF, error)
        _note_handoff_error(self.ledger, h.name, outcome.message)  # issue 14
        disp = self.disposition(outcome, h.attempts + 1)
        with self.ledger.write() as c:
            self.ledger.handoffs.record_failure(c, h, attempts=disp.attempts, next_attempt_at=disp.next_attempt_at,
                                                quarantine=disp.quarantine, error_class=outcome.error_class,
                                                message=outcome.message, reason=disp.reason)
        if disp.quarantine:
            result.quarantined += 1
            log.error("hand-off %s quarantined after %d attempt(s): %s", h.name, disp.attempts, disp.reason)
            self.quarantined(ItemKind.HANDOFF, h.id)
        else:
            log.error("could not hand batch %s to the shop (will retry): %s", h.name, outcome.reason)

    # -- confirm ------------------------------------------------------------------------------
    def confirm(self, result: InboundResult | None = None, *, retry_now: bool = False) -> InboundResult:
        """PUT confirmed: true for orders whose every MALL-side change has reached the shop.

        Orders with a webhook (or sweep) id still waiting in the inbox are read first: MALL told of a change the
        ledger has not seen yet, so confirming now would acknowledge it unread."""
        result = result or InboundResult()
        held = self.ledger.confirms.held(only_quarantined=retry_now)
        mine = {"account": self.account} if self.account else {}  # issue 18: this engine's account only
        todo = [oid for oid in self.ledger.orders.needing_confirm(**mine) if oid not in held]
        waiting = self.ledger.inbox.waiting_among(todo) if todo else set()
        for oid in todo:
            if oid in waiting:
                continue
            if self.should_stop():
                break
            self._confirm_one(oid, result)
        return result

    def _confirm_one(self, oid: int, result: InboundResult) -> None:
        # No re-read before the PUT (issue 17: one GET and one PUT per new order). MALL has no conditional update,
        # so a change between the connector's read and this PUT is confirmed by it either way; it reaches the shop
        # because MALL sends a webhook for every change it makes (that webhook's read is compared with what the
        # shop was handed), and, should that webhook be lost, through the batched check of `verify`.
        row = self.ledger.orders.get(oid)
        if row is not None and row.mall_confirmed:
            # Confirmed already (a status push carried confirmed: true, or MALL's answer said so): no PUT.
            with self.ledger.write() as c:
                self.ledger.orders.ensure(c, oid, needs_confirm=False)
                self.ledger.confirms.clear(c, oid)
            return
        try:
            if not may_confirm(self.ledger.changes.open_of_order(oid, Origin.MALL)):
                return
            self.client.update_order(oid, StatusUpdate(confirmed=True))
        except Exception as e:  # contained: see policy.py
            self._confirm_failed(oid, Op.CONFIRM, e, result)
            return
        with self.ledger.write() as c:
            self.ledger.orders.ensure(c, oid, needs_confirm=False, mall_confirmed=True)
            self.ledger.confirms.clear(c, oid)
            self.ledger.orders.add_event(c, oid, EventKind.CONFIRMED, "confirmed on MALL")
            self.ledger.verifications.add(c, oid, utcnow())
        log.info("order %s: confirmed on MALL (the shop has everything MALL changed)", oid, extra={"order_id": oid})
        result.confirmed += 1

    # -- verify (issue 17) --------------------------------------------------------------------
    def verify(self, result: InboundResult | None = None, *, now=None) -> InboundResult:
        """Check the orders confirmed since the last check against MALL's order list, one call per 100 orders
        (pickup-branch orders: a GET each, the list does not show the branch),
        once every ``[sync] verify_window_s`` (when the oldest waiting confirmation is that old): an order MALL
        changed between the connector's read and its confirmation (and whose webhook was lost) is queued in the
        inbox, whose read hands the change to the shop through ``decide_inbound``. If MALL ignores the id filter,
        the orders are queued to be read one by one instead (as the push path does)."""
        result = result or InboundResult()
        oldest = self.ledger.verifications.oldest()
        if oldest is None:
            return result
        now = now or utcnow()
        if (now - oldest).total_seconds() < self.config.sync.verify_window_s:
            return result
        if not self.optional_calls_allowed("verify"):
            return result
        ids = self.ledger.verifications.pending(VERIFY_MAX_PER_PASS)
        # MALL's list does not carry the pickup branch: a branch change between the read and the PUT (whose
        # webhook was lost) shows only in the detail, so pickup orders are verified by reading it.
        rows = self.ledger.orders.get_many(ids)
        pickup = [oid for oid in ids if rows.get(oid) is not None
                  and (rows[oid].branch_id is not None or rows[oid].handed_branch_id is not None)]
        if pickup:
            self._verified(pickup, list(pickup), result)
            ids = [oid for oid in ids if oid not in set(pickup)]
        for i in range(0, len(ids), VERIFY_BATCH):
            if self.should_stop():
                break
            chunk = ids[i:i + VERIFY_BATCH]
            if not self.verify_by_list:
                self._verify_one_by_one(chunk, result)
                continue
            try:
                with call_kind("verify"):
                    listed, honoured = self.client.list_by_ids(chunk, include_test=True)
            except Exception as e:  # contained: see policy.py (401/403 re-raise); the next pass tries again
                outcome = self.outcome(Op.VERIFY, e)
                result.verify_failed = outcome.reason
                log.warning("verify: %s", outcome.reason)
                break
            finally:
                result.verify_calls += 1
            if not honoured:
                self.verify_by_list = False
                log.warning("MALL's order list ignored the id filter; confirmed orders are verified one by one")
                self._verify_one_by_one(chunk, result)
                continue
            self._compare_listed(chunk, listed, result)
        return result

    def _compare_listed(self, chunk: list[int], listed: dict, result: InboundResult) -> None:
        rows = self.ledger.orders.get_many(chunk)
        with self.ledger.read() as c:
            own_changes = self.ledger.changes.by_keys(
                c, [shop_change_key(oid, b.status.value) for oid, b in listed.items() if oid in rows])
        reread = []
        for oid in chunk:
            basic, row = listed.get(oid), rows.get(oid)
            handed = Status(row.handed_status) if row is not None and row.handed_status else None
            own_change = own_changes.get(shop_change_key(oid, basic.status.value)) if basic is not None else None
            own = own_change.state if own_change is not None else None
            if verify_needs_reread(listed=basic is not None, status=basic.status if basic else None,
                                   confirmed=basic.confirmed if basic else None, handed_status=handed,
                                   own_push_state=own):
                reread.append(oid)
        self._verified(chunk, reread, result)

    def _verify_one_by_one(self, chunk: list[int], result: InboundResult) -> None:
        """MALL ignores the id filter: each order is read with its own GET (through the inbox)."""
        self._verified(chunk, list(chunk), result)

    def _verified(self, chunk: list[int], reread: list[int], result: InboundResult) -> None:
        if reread:  # queued (committed) before the verifications go, so a crash in between loses nothing
            self.ledger.inbox.enqueue(reread, source="verify")
        with self.ledger.write() as c:
            self.ledger.verifications.done(c, chunk)
        result.verified += len(chunk)
        result.verify_rereads += len(reread)
        if reread:
            log.info("verify: %d of %d confirmed order(s) to be read again", len(reread), len(chunk))

    def optional_calls_allowed(self, what: str) -> bool:
        """False while MALL's daily budget is in the reserve ([mall] reserve_share): optional calls wait."""
        from connector.sync.ratelimit import in_reserve

        if in_reserve(self.client, self.config.mall.reserve_share, self.ledger):
            log.info("%s postponed: MALL's daily call budget is in the reserve ([mall] reserve_share)", what)
            return False
        return True

    def _confirm_failed(self, oid: int, op: Op, error: BaseException, result: InboundResult) -> None:
        outcome = self.outcome(op, error)
        if outcome.kind == Kind.DROP:
            with self.ledger.write() as c:
                self.ledger.orders.ensure(c, oid, needs_confirm=False)
                self.ledger.confirms.clear(c, oid)
                self.ledger.orders.add_event(c, oid, EventKind.DROPPED, f"{outcome.reason}: not confirmed")
            return
        if outcome.kind == Kind.FAIL and outcome.refused:
            # MALL refused the confirmation outright: trying again cannot help, and it is no item to quarantine.
            with self.ledger.write() as c:
                self.ledger.orders.ensure(c, oid, needs_confirm=False)
                self.ledger.confirms.clear(c, oid)
                self.ledger.orders.add_event(c, oid, EventKind.CONFIRM_REFUSED, outcome.reason)
            log.warning("order %s: %s", oid, outcome.reason)
            return
        disp = self.disposition(outcome, self.ledger.confirms.attempts(oid) + 1)
        with self.ledger.write() as c:
            self.ledger.confirms.record_failure(c, oid, attempts=disp.attempts, next_attempt_at=disp.next_attempt_at,
                                                quarantine=disp.quarantine, error_class=outcome.error_class,
                                                message=outcome.message, reason=disp.reason)
            if disp.quarantine:
                self.ledger.orders.add_event(c, oid, EventKind.QUARANTINED, f"confirmation quarantined: {disp.reason}")
        if disp.quarantine:
            result.quarantined += 1
            log.error("order %s: confirmation quarantined after %d attempt(s): %s", oid, disp.attempts, disp.reason)
            self.quarantined(ItemKind.CONFIRM, oid)
        else:
            log.info("order %s: %s; will try again", oid, outcome.reason)
