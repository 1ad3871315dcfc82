"""Shop → MALL: read the shop feed, record changes, push each one to MALL exactly once.

A change has a deterministic key (order, target status), so re-reading the feed never makes a
second one. Before a PUT the change is marked ``sending`` and committed; after a crash or an
ambiguous failure the order is re-read from MALL before anything is sent again. Transient
failures are scheduled in the ledger (they survive restarts) up to ``[sync] max_attempts``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

from adapters.base import FeedProblem, FeedUnavailable, ShopAdapter, ShopOrderState
from connector.config import Config
from connector.ledger import Ledger
from connector.ledger import schema as s
from connector.ledger.repo import ChangeRow, OrderRow, utcnow
from connector.mall.errors import (
    MallError,
    MallNotFound,
    MallOutcomeUnknown,
    MallRateLimited,
    MallUnauthorized,
    MallValidationError,
)
from connector.mall.statuses import Status, parse_status
from connector.mapping import Mapping
from connector.sync.common import backoff_at, fingerprint, mall_time
from connector.sync.decide import decide_outbound
from connector.tracking import tracking_url_for

log = logging.getLogger("mall_connector.outbound")

FEED_KV = "shop_feed_fingerprint"
FEED_FAILURES_KV = "shop_feed_failures"
ROWS_PER_TXN = 500


@dataclass
class PollResult:
    rows: int = 0
    changed_rows: int = 0
    new_changes: int = 0
    unmapped: int = 0
    problems: list[FeedProblem] = field(default_factory=list)
    not_ready: bool = False
    unchanged: bool = False
    unavailable: str | None = None


@dataclass
class PushResult:
    pushed: int = 0
    skipped: int = 0
    failed: int = 0
    retry: int = 0
    done_by_reread: int = 0
    reads: int = 0


class OutboundSync:
    def __init__(self, *, ledger: Ledger, client, adapter: ShopAdapter, mapping: Mapping | Callable[[], Mapping],
                 config: Config, metrics=None):
        self.ledger = ledger
        self.client = client
        self.adapter = adapter
        self._mapping = mapping
        self.config = config
        self.metrics = metrics
        #: Called between items: returns True when the process is stopping (and proves progress to the watchdog).
        self.should_stop: Callable[[], bool] = lambda: False

    @property
    def mapping(self) -> Mapping:
        return self._mapping() if callable(self._mapping) else self._mapping

    # -- reading the shop ---------------------------------------------------------------------
    def poll_shop(self, *, wait_for_settle: bool = False) -> PollResult:
        """Read the feed and turn every row that differs from what was last seen into a change."""
        result = PollResult()
        previous = self.ledger.get_kv(FEED_KV)
        try:
            feed = self.adapter.read_feed(previous_fingerprint=previous, wait_for_settle=wait_for_settle)
        except FeedUnavailable as e:
            failures = int(self.ledger.get_kv(FEED_FAILURES_KV) or 0) + 1
            self.ledger.set_kv(FEED_FAILURES_KV, str(failures))
            log.warning("shop feed unreadable (%d poll(s) in a row): %s", failures, e)
            result.unavailable = str(e)
            return result
        if self.ledger.get_kv(FEED_FAILURES_KV) not in (None, "0"):
            self.ledger.set_kv(FEED_FAILURES_KV, "0")
        result.not_ready, result.unchanged, result.problems = feed.not_ready, feed.unchanged, list(feed.problems)
        for p in feed.problems:
            log.warning("shop feed: %s (row skipped)", p)
        if feed.not_ready or feed.unchanged:
            return result
        rows: dict[int, ShopOrderState] = {}
        for row in feed.rows:
            rows[row.mall_order_id] = row  # the last row of an order wins
        result.rows = len(rows)
        ids = list(rows)
        mapping = self.mapping
        for i in range(0, len(ids), ROWS_PER_TXN):
            chunk = ids[i : i + ROWS_PER_TXN]
            known = self.ledger.get_orders(chunk)
            with self.ledger.write() as c:
                for oid in chunk:
                    self._record_row(c, rows[oid], known.get(oid), mapping, result)
        if feed.fingerprint is not None:
            self.ledger.set_kv(FEED_KV, feed.fingerprint)
        return result

    def _row_payload(self, row: ShopOrderState) -> dict:
        url = row.tracking_url
        if row.tracking_number and not url and row.carrier:
            url = tracking_url_for(row.carrier, row.tracking_number, self.config.shop.carrier_urls)
        return {
            "tracking_number": row.tracking_number,
            "tracking_url": url,
            "carrier": row.carrier,
            "delivered_at": mall_time(row.delivered_at),
            "first_delivery_attempt": mall_time(row.first_delivery_attempt),
        }

    def _record_row(self, c, row: ShopOrderState, known: OrderRow | None, mapping: Mapping, result: PollResult) -> None:
        seen = {
            "status": row.status, "shop_order_id": row.shop_order_id, "tracking_number": row.tracking_number,
            "tracking_url": row.tracking_url, "carrier": row.carrier, "delivered_at": row.delivered_at,
            "first_delivery_attempt": row.first_delivery_attempt, "location": row.location,
        }
        fp = fingerprint(seen)
        if known is not None and known.shop_fingerprint == fp:
            return  # same as last seen: no change
        result.changed_rows += 1
        oid = row.mall_order_id
        self.ledger.ensure_order(
            c, oid, shop_order_id=row.shop_order_id, shop_status=row.status, shop_fingerprint=fp,
            shop_seen_at=utcnow(), shop_tracking_number=row.tracking_number, shop_tracking_url=row.tracking_url,
            shop_carrier=row.carrier, shop_location=row.location,
        )
        lookup = mapping.lookup(row.status)
        if lookup.kind == "ignored":
            self.ledger.add_event(c, oid, "shop", f"shop status {row.status!r} (ignored by the mapping)")
            return
        if lookup.kind == "unmapped":
            result.unmapped += 1
            key = f"shop:{oid}:unmapped:{row.status.strip().casefold()}"
            reason = (f"unmapped shop status {row.status!r}: add it to [to_mall] or [ignore] in {mapping.path}")
            if self.ledger.insert_change(c, key=key, order_id=oid, origin="shop", kind="status", state="skipped",
                                         shop_status=row.status, reason=reason) is not None:
                self.ledger.add_event(c, oid, "skipped", reason)
                log.warning("order %s: %s", oid, reason, extra={"order_id": oid, "reason": reason})
            return
        target: Status = lookup.target
        payload = self._row_payload(row)
        key = f"shop:{oid}:{target.value}"
        existing = self.ledger.get_change_by_key(c, key)
        if existing is None:
            cid = self.ledger.insert_change(c, key=key, order_id=oid, origin="shop", kind="status",
                                            shop_status=row.status, target_status=target.value, payload=payload)
            result.new_changes += 1
            self.ledger.add_event(c, oid, "change", f"shop status {row.status!r} → MALL {target} (change {cid})")
            return
        if existing.payload == payload:
            return
        if existing.state in ("pending", "retry"):
            self.ledger.update_change(existing.id, conn=c, payload=payload)
        elif existing.state == "failed":
            # New data (e.g. the tracking number arrived): give the change another go.
            self.ledger.update_change(existing.id, conn=c, payload=payload, state="pending", attempts=0,
                                      reason=None, next_attempt_at=None, done_at=None)
            self.ledger.add_event(c, oid, "change", f"shop row changed; change {existing.id} is pending again")
            result.new_changes += 1

    # -- pushing to MALL ----------------------------------------------------------------------
    def push_due(self, *, include_not_due: bool = False) -> PushResult:
        """Work through open changes (pending, interrupted, due retries), oldest first."""
        result = PushResult()
        last_id = 0
        batch = self.config.sync.batch_size
        while True:
            todo = self.ledger.due_changes("shop", batch, include_not_due=include_not_due, after_id=last_id)
            if not todo:
                break
            for ch in todo:
                if self.should_stop():
                    return result
                last_id = ch.id
                self._push_one(ch, result)
        return result

    def _mall_state(self, ch: ChangeRow, result: PushResult) -> OrderRow | None:
        """The order's MALL state, re-read when unknown, stale, or after an earlier attempt."""
        known = self.ledger.get_order(ch.mall_order_id)
        age_limit = timedelta(seconds=self.config.sync.refresh_age_s)
        fresh = (known is not None and known.mall_status is not None and known.mall_read_at is not None
                 and utcnow() - known.mall_read_at <= age_limit)
        if fresh and ch.attempts == 0 and ch.state == "pending":
            return known
        order = self.client.get_order(ch.mall_order_id)
        result.reads += 1
        from connector.sync.inbound import store_snapshot  # shared snapshot writer

        with self.ledger.write() as c:
            store_snapshot(self.ledger, c, order)
        return self.ledger.get_order(ch.mall_order_id)

    def _push_one(self, ch: ChangeRow, result: PushResult) -> None:
        oid = ch.mall_order_id
        cfg = self.config.sync
        try:
            state = self._mall_state(ch, result)
        except MallNotFound:
            self._finish(ch, "failed", f"MALL does not know order {oid}: check the mall_order_id in the shop feed", result)
            return
        except MallUnauthorized:
            raise
        except MallError as e:
            self._retry(ch, f"could not read the order from MALL: {e}", result, e)
            return
        decision = decide_outbound(
            order_id=oid, target=parse_status(ch.target_status), current=parse_status(state.mall_status),
            confirmed=bool(state.mall_confirmed), mdp=bool(state.mdp), payload=ch.payload,
            interrupted=ch.attempts > 0 or ch.state == "sending",
        )
        if decision.action in ("skip", "done"):
            self._finish(ch, "skipped" if decision.action == "skip" else "done", decision.reason, result,
                         needs_action=decision.needs_action)
            return
        if decision.action == "fail":
            self._finish(ch, "failed", decision.reason, result)
            return
        if ch.attempts >= cfg.max_attempts:
            self._finish(ch, "failed", f"gave up after {ch.attempts} attempts: {ch.last_error}", result)
            return
        if not self.ledger.claim_for_sending(ch.id, (ch.state,)):
            return  # someone else took it meanwhile
        body = decision.body
        log.info("order %s: %s", oid, decision.reason, extra={"order_id": oid, "change_id": ch.id})
        try:
            from connector.mall.models import StatusUpdate

            self.client.update_order(oid, StatusUpdate(**body))
        except MallValidationError as e:
            self._finish(ch, "failed", f"MALL refused it: {e.message}", result)
            return
        except MallNotFound:
            self._finish(ch, "failed", f"MALL does not know order {oid}", result)
            return
        except MallUnauthorized:
            self._retry(ch, "MALL rejected the client_id (401)", result)
            raise
        except MallOutcomeUnknown as e:
            self._retry(ch, f"outcome unknown, the order will be re-read before any resend: {e}", result, e,
                        outcome="unknown")
            return
        except MallError as e:
            self._retry(ch, str(e), result, e)
            return
        with self.ledger.write() as c:
            self.ledger.update_change(ch.id, conn=c, state="done", reason=decision.reason, last_error=None)
            values = {"mall_status": ch.target_status, "mall_read_at": utcnow()}
            if ch.target_status == "delivered" and body.get("delivered_at"):
                values["mall_delivered_at"] = body["delivered_at"]
            if body.get("confirmed"):
                values["mall_confirmed"] = True
            self.ledger.ensure_order(c, oid, **values)
            self.ledger.add_event(c, oid, "pushed", f"MALL accepted {json.dumps(body, ensure_ascii=False)}")
        result.pushed += 1
        self._metric("done")

    def _finish(self, ch: ChangeRow, state: str, reason: str, result: PushResult, *, needs_action=None) -> None:
        oid = ch.mall_order_id
        with self.ledger.write() as c:
            self.ledger.update_change(ch.id, conn=c, state=state, reason=reason, next_attempt_at=None)
            self.ledger.add_event(c, oid, state, reason)
            if needs_action is not None:
                self.ledger.add_action(c, key=f"{needs_action.kind}:{oid}", order_id=oid, kind=needs_action.kind,
                                       message=needs_action.message)
        level = logging.WARNING if state == "failed" else logging.INFO
        log.log(level, "order %s: change %s %s: %s", oid, ch.id, state, reason,
                extra={"order_id": oid, "change_id": ch.id, "reason": reason})
        if state == "failed":
            result.failed += 1
        elif state == "skipped":
            result.skipped += 1
        else:
            result.done_by_reread += 1
        self._metric(state)

    def _retry(self, ch: ChangeRow, error: str, result: PushResult, exc: Exception | None = None, *,
               outcome: str = "retry") -> None:
        cfg = self.config.sync
        # claim_for_sending already counted a PUT attempt; a failed read counts as one too, so that a
        # broken order cannot loop forever. Either way the row now stands at ch.attempts + 1.
        attempts = ch.attempts + 1
        at_least = exc.reset_s if isinstance(exc, MallRateLimited) and exc.reset_s else 0.0
        if attempts >= cfg.max_attempts:
            with self.ledger.write() as c:
                self.ledger.update_change(ch.id, conn=c, state="failed", attempts=attempts,
                                          reason=f"gave up after {attempts} attempts: {error}", last_error=error)
                self.ledger.add_event(c, ch.mall_order_id, "failed", f"gave up after {attempts} attempts: {error}")
            result.failed += 1
            self._metric("failed")
            log.warning("order %s: change %s failed after %d attempts: %s", ch.mall_order_id, ch.id, attempts, error)
            return
        at = backoff_at(attempts, cfg.retry_base_s, cfg.retry_max_s, at_least_s=at_least)
        with self.ledger.write() as c:
            self.ledger.update_change(ch.id, conn=c, state="retry", attempts=attempts, next_attempt_at=at,
                                      last_error=error[:2000])
            self.ledger.add_event(c, ch.mall_order_id, "retry", f"will retry at {at:%Y-%m-%d %H:%M:%S} UTC: {error}")
        result.retry += 1
        self._metric(outcome)
        log.info("order %s: change %s will retry: %s", ch.mall_order_id, ch.id, error)

    def _metric(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.push(outcome)
