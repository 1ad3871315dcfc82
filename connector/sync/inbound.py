"""MALL → shop: webhook inbox and unconfirmed sweep → GET the full order → hand it to the shop → confirm.

Every step is recorded before the next one starts, so a crash at any point resumes without
losing or repeating anything:

* an inbox row is removed only in the transaction that records what the order needs;
* an outbox batch gets its final name in the ledger before a byte is written, is staged under a
  temporary name, and is published by an atomic rename (see docs/architecture.md);
* ``confirmed: true`` is sent only once everything MALL changed has reached the shop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from adapters.base import HandoffError, MallChange, NewOrder, NewOrderItem
from connector.ledger import Ledger
from connector.ledger import schema as s
from connector.ledger.repo import ChangeRow, OrderRow, utcnow
from connector.mall.errors import MallError, MallNotFound, MallRateLimited, MallUnauthorized, MallValidationError
from connector.mall.models import Order, StatusUpdate
from connector.mall.statuses import Status
from connector.mapping import Mapping
from connector.sync.common import Engine, backoff_at, mall_time
from connector.sync.decide import MALL_CHANGE_NOTES

log = logging.getLogger("mall_connector.inbound")


def _file_stamp(config) -> str:
    """issue 14: outbox file names carry the time in [shop] timezone and name the zone."""
    from connector.timefmt import file_stamp

    return file_stamp(utcnow(), config.shop.timezone)


def _note_handoff_error(ledger: Ledger, name: str, e: Exception) -> None:
    """issue 14: the alert about a hand-off that cannot be written says why."""
    from connector.ledger.alerting import record_handoff_error

    record_handoff_error(ledger, f"{name}: {e}")


def store_snapshot(ledger: Ledger, c, order: Order) -> None:
    """Record what MALL says about an order (inside the caller's write transaction)."""
    address = order.address
    branch = order.branch_id if order.branch_id is not None else (order.branches.branch_id if order.branches else None)
    ledger.ensure_order(
        c, order.id,
        mall_status=order.status.value, mall_confirmed=order.confirmed, mall_read_at=utcnow(),
        mdp=order.mdp, test=order.test, purchase_id=order.purchase_id,
        customer=(address.name if address else None), delivery_method=order.delivery_method,
        branch_id=branch, ship_date=order.ship_date.isoformat() if order.ship_date else None,
        mall_delivered_at=mall_time(order.delivered_at),
        snapshot=order.model_dump_json(exclude_none=True),
    )


def order_from_snapshot(snapshot: str) -> Order:
    return Order.model_validate_json(snapshot)


def _branch_of(order: Order) -> int | None:
    return order.branch_id if order.branch_id is not None else (order.branches.branch_id if order.branches else None)


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
        delivery_method=order.delivery_method or "", branch_id=_branch_of(order), payment_type=order.payment_type or "",
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


class InboundSync(Engine):
    """MALL → shop: inbox, sweep, hand-off and confirmation."""

    def run(self, result: InboundResult | None = None) -> InboundResult:
        """One pass: drain the inbox, hand over what is new, confirm what the shop has."""
        result = result or InboundResult()
        self.drain(result)
        self.handoff(result)
        self.confirm(result)
        return result

    # -- sweep --------------------------------------------------------------------------------
    def sweep(self, result: InboundResult | None = None) -> InboundResult:
        """List MALL's unconfirmed orders and queue them: catches every webhook that never came."""
        result = result or InboundResult()
        basics = self.client.list_unconfirmed(include_test=self.config.mall.include_test_orders)
        known = self.ledger.get_orders([b.id for b in basics])
        queue = []
        for b in basics:
            k = known.get(b.id)
            if b.status == Status.BLOCKED and k is not None and k.mall_status == Status.BLOCKED.value:
                continue  # unchanged blocked order: nothing to do until it is paid
            queue.append(b.id)
        result.swept += self.ledger.enqueue_inbox(queue, source="sweep")
        return result

    # -- drain --------------------------------------------------------------------------------
    def drain(self, result: InboundResult | None = None) -> InboundResult:
        result = result or InboundResult()
        cfg = self.config.sync
        while True:
            ids = self.ledger.due_inbox(cfg.batch_size)
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
        except MallNotFound:
            with self.ledger.write() as c:
                self.ledger.add_event(c, oid, "dropped", "MALL does not know this order id (404): dropped from the inbox")
                self.ledger.inbox_remove(oid, conn=c)
            log.warning("order %s: MALL does not know it (404); dropped", oid, extra={"order_id": oid})
            result.dropped += 1
            return
        except MallUnauthorized:
            raise
        except MallError as e:
            attempts = self.ledger.inbox_attempts(oid) + 1
            at_least = e.reset_s if isinstance(e, MallRateLimited) and e.reset_s else 0.0
            at = backoff_at(attempts, self.config.sync.retry_base_s, self.config.sync.retry_max_s, at_least_s=at_least)
            self.ledger.inbox_retry(oid, at, str(e))
            log.info("order %s: could not read it from MALL, will retry: %s", oid, e, extra={"order_id": oid})
            result.retry += 1
            return
        result.fetched += 1
        self.record_order(order, result)

    def record_order(self, order: Order, result: InboundResult) -> None:
        """Store the snapshot and decide what the shop must learn, in one transaction with the inbox removal."""
        oid = order.id
        mapping = self.mapping
        before = (result.new_orders, result.mall_changes, result.ignored_test)
        with self.ledger.write() as c:
            self._decide_inbound(c, order, mapping, result)
        if (result.new_orders, result.mall_changes, result.ignored_test) == before:
            reason = f"MALL has it {order.status}; nothing new for the shop"
        elif result.new_orders > before[0]:
            reason = "new order: to be handed to the shop"
        elif result.mall_changes > before[1]:
            reason = "changed on MALL: to be handed to the shop"
        else:
            reason = "test order: recorded and left alone"
        log.info("order %s: %s", oid, reason, extra={"order_id": oid, "reason": reason})

    def _decide_inbound(self, c, order: Order, mapping: Mapping, result: InboundResult) -> None:
        oid = order.id
        known_row = c.execute(select(s.orders).where(s.orders.c.mall_order_id == oid)).first()
        known = OrderRow.from_row(known_row) if known_row else None
        store_snapshot(self.ledger, c, order)
        self.ledger.inbox_remove(oid, conn=c)
        if order.test and not self.config.mall.include_test_orders:
            self.ledger.add_event(c, oid, "ignored", "test order: recorded and left alone ([mall] include_test_orders = false)")
            result.ignored_test += 1
            return
        status = order.status
        if status == Status.BLOCKED:
            self.ledger.add_event(c, oid, "seen", "blocked (waiting for payment): recorded, not handed to the shop")
            return
        handed = known is not None and known.handed_at is not None
        new_pending = self.ledger.get_change_by_key(c, f"mall:{oid}:new")
        if not handed and new_pending is None:
            if status == Status.OPEN:
                self.ledger.insert_change(
                    c, key=f"mall:{oid}:new", order_id=oid, origin="mall", kind="new_order",
                    target_status=status.value, shop_status=mapping.shop_status_for(status),
                    payload={"status": status.value, "branch_id": _branch_of(order)},
                )
                self.ledger.add_event(c, oid, "new", "new order for the shop")
                result.new_orders += 1
            else:
                # Seen for the first time past `open` (handled before the connector ran, or in the
                # portal): the shop already has it or never needs it, so nothing is handed over.
                self.ledger.add_event(c, oid, "seen", f"first seen in status {status}: not handed to the shop as new")
                self.ledger.ensure_order(c, oid, handed_status=status.value, handed_branch_id=_branch_of(order))
        elif handed:
            self._mall_side_changes(c, order, known, mapping, result)
        if not order.confirmed:
            self.ledger.ensure_order(c, oid, needs_confirm=True)

    def _mall_side_changes(self, c, order: Order, known: OrderRow, mapping: Mapping, result: InboundResult) -> None:
        oid, status = order.id, order.status
        if known.handed_status != status.value:
            ours = self.ledger.get_change_by_key(c, f"shop:{oid}:{status.value}")
            if ours is not None and ours.state in ("done", "sending", "retry"):
                # Our own push echoing back: the shop set it, so it already knows.
                self.ledger.ensure_order(c, oid, handed_status=status.value)
            else:
                note = MALL_CHANGE_NOTES.get(status, f"status {status} set on MALL")
                if self.ledger.insert_change(
                    c, key=f"mall:{oid}:{status.value}", order_id=oid, origin="mall", kind="status",
                    target_status=status.value, shop_status=mapping.shop_status_for(status),
                    payload={"status": status.value, "note": note, "changed_at": mall_time(order.entered_at(status)),
                             "branch_id": _branch_of(order)},
                ) is not None:
                    self.ledger.add_event(c, oid, "mall_change", note)
                    result.mall_changes += 1
        branch = _branch_of(order)
        if known.handed_branch_id is not None and branch is not None and branch != known.handed_branch_id:
            note = f"pickup branch changed from {known.handed_branch_id} to {branch}"
            if self.ledger.insert_change(
                c, key=f"mall:{oid}:branch:{branch}", order_id=oid, origin="mall", kind="branch",
                target_status=status.value, shop_status=mapping.shop_status_for(status),
                payload={"status": status.value, "note": note, "branch_id": branch,
                         "changed_at": mall_time(order.branches.last_change if order.branches else None)},
            ) is not None:
                self.ledger.add_event(c, oid, "mall_change", note)
                result.mall_changes += 1

    # -- hand-off to the shop -----------------------------------------------------------------
    def handoff(self, result: InboundResult | None = None) -> InboundResult:
        """Finish interrupted batches first, then hand new records over in batches."""
        result = result or InboundResult()
        for hid, name, kind, state in self.ledger.open_handoffs():
            if not self._finish_handoff(hid, name, kind, state, result):
                return result  # the shop side is failing: do not pile up more batches
        cfg = self.config.sync
        last_id = 0
        while True:
            batch = self.ledger.due_changes("mall", cfg.batch_size, after_id=last_id)
            if not batch:
                break
            last_id = batch[-1].id
            todo = [ch for ch in batch if ch.handoff_id is None]
            for kind, group in (("orders", [ch for ch in todo if ch.kind == "new_order"]),
                                ("changes", [ch for ch in todo if ch.kind != "new_order"])):
                if group:
                    hid, name = self.ledger.create_handoff(kind, [ch.id for ch in group],
                                                           stamp=_file_stamp(self.config))
                    if not self._finish_handoff(hid, name, kind, "sending", result):
                        return result
        return result

    def _records(self, kind: str, changes: list[ChangeRow]) -> list:
        mapping = self.mapping
        orders = self.ledger.get_orders([ch.mall_order_id for ch in changes])
        records = []
        for ch in changes:
            snap = orders[ch.mall_order_id].snapshot
            order = order_from_snapshot(snap)
            if kind == "orders":
                records.append(new_order_record(order, mapping))
            else:
                status = Status(ch.payload.get("status", order.status.value))
                records.append(MallChange(
                    mall_order_id=ch.mall_order_id, mall_status=status.value,
                    shop_status=mapping.shop_status_for(status),
                    changed_at=ch.payload.get("changed_at") or mall_time(utcnow().replace(tzinfo=None)) or "",
                    branch_id=ch.payload.get("branch_id"), note=ch.payload.get("note", ""),
                ))
        return records

    def _finish_handoff(self, hid: int, name: str, kind: str, state: str, result: InboundResult) -> bool:
        changes = self.ledger.handoff_changes(hid)
        try:
            records = self._records(kind, changes)
            if state == "sending":
                self.adapter.stage_handoff(name, kind, records)
                self.ledger.set_handoff_state(hid, "staged")
            self.adapter.publish_handoff(name)  # False: the rename already happened before a crash
        except HandoffError as e:
            log.error("could not hand batch %s to the shop (will retry): %s", name, e)
            _note_handoff_error(self.ledger, name, e)
            return False
        now = utcnow()
        with self.ledger.write() as c:
            c.execute(s.handoffs.update().where(s.handoffs.c.id == hid).values(state="done", done_at=now))
            for ch, record in zip(changes, records):
                self.ledger.update_change(ch.id, conn=c, state="done", reason=f"handed to the shop in {name}")
                values = {"handed_status": ch.payload.get("status")}
                if ch.kind == "new_order":
                    # The record is built from the newest snapshot, which may be newer than the change's payload
                    # (e.g. cancelled or moved to another branch before the hand-off): remember what the shop got,
                    # or the next read would tell the shop the same thing again.
                    values["handed_at"] = now
                    values["handed_status"] = record.status
                    values["handed_branch_id"] = record.branch_id
                elif ch.kind == "branch":
                    values["handed_branch_id"] = ch.payload.get("branch_id")
                self.ledger.ensure_order(c, ch.mall_order_id, **values)
                self.ledger.add_event(c, ch.mall_order_id, "handed", f"handed to the shop in {name}")
                steps = self.adapter.manual_steps(record)
                if ch.kind == "branch":
                    # A human must always act on a branch change: the parcel goes to the new branch.
                    self.ledger.add_action(
                        c, key=f"branch_change:{ch.key}", order_id=ch.mall_order_id, kind="branch_change",
                        message=steps or f"Order {ch.mall_order_id}: {ch.payload.get('note')}. The parcel must go "
                                         "to the new pickup branch; print the label for it.")
                elif steps:
                    self.ledger.add_action(c, key=f"shop_action:{ch.key}", order_id=ch.mall_order_id,
                                           kind="shop_action", message=steps)
        result.handed += len(changes)
        if self.metrics is not None:
            self.metrics.handoff(kind)
        log.info("handed %d record(s) to the shop in %s", len(changes), name)
        return True

    # -- confirm ------------------------------------------------------------------------------
    def confirm(self, result: InboundResult | None = None) -> InboundResult:
        """PUT confirmed: true for orders whose every MALL-side change has reached the shop."""
        result = result or InboundResult()
        with self.ledger.read() as c:
            waiting = select(s.changes.c.mall_order_id).where(
                s.changes.c.origin == "mall", s.changes.c.state.in_(("pending", "sending", "retry")))
            ids = list(c.execute(select(s.orders.c.mall_order_id).where(
                s.orders.c.needs_confirm.is_(True), s.orders.c.mall_order_id.not_in(waiting))).scalars())
        for oid in ids:
            if self.should_stop():
                break
            # Re-read first: MALL may have changed the order since it was read for the hand-off (a customer
            # cancel, a branch change), and confirming now would acknowledge a change the shop has not got;
            # such a change is recorded and handed over first, the confirmation waits for the next pass.
            try:
                order = self.client.get_order(oid)
            except MallNotFound:
                with self.ledger.write() as c:
                    self.ledger.ensure_order(c, oid, needs_confirm=False)
                    self.ledger.add_event(c, oid, "dropped", "MALL no longer knows this order (404): not confirmed")
                continue
            except MallUnauthorized:
                raise
            except MallError as e:
                log.info("order %s: not re-read before confirming (%s); will try again next pass", oid, e)
                continue
            self.record_order(order, result)
            if any(ch.origin == "mall" for ch in self.ledger.list_changes(states=("pending", "sending", "retry"),
                                                                          order_id=oid)):
                continue
            try:
                self.client.update_order(oid, StatusUpdate(confirmed=True))
            except MallUnauthorized:
                raise
            except MallValidationError as e:
                with self.ledger.write() as c:
                    self.ledger.ensure_order(c, oid, needs_confirm=False)
                    self.ledger.add_event(c, oid, "confirm_refused", f"MALL refused the confirmation: {e.message}")
                log.warning("order %s: MALL refused the confirmation: %s", oid, e.message)
                continue
            except MallError as e:
                log.info("order %s: confirmation not sent (%s); will try again next pass", oid, e)
                continue
            # MALL has no conditional update: a change made between the re-read and the PUT is confirmed by it
            # (and drops out of the unconfirmed sweep). Read the order once more in the next drain so such a
            # change still reaches the shop. Queued before needs_confirm is cleared, so a crash loses neither.
            self.ledger.enqueue_inbox([oid], source="confirmed")
            with self.ledger.write() as c:
                self.ledger.ensure_order(c, oid, needs_confirm=False, mall_confirmed=True)
                self.ledger.add_event(c, oid, "confirmed", "confirmed on MALL")
            log.info("order %s: confirmed on MALL (the shop has everything MALL changed)", oid, extra={"order_id": oid})
            result.confirmed += 1
        return result
