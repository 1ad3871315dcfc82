"""Shop → MALL: read the shop feed, record changes, push each one to MALL exactly once.

A change has a deterministic key (order, target status), so re-reading the feed never makes a
second one. Before a PUT the change is marked ``sending`` and committed; after a crash or an
ambiguous failure the order is re-read from MALL before anything is sent again. Transient
failures are scheduled in the ledger (they survive restarts) up to ``[sync] max_attempts``.

Work is done in batches so that the cost per change is one PUT and a share of a few statements:

* a poll writes the rows that changed with one statement per kind of row and chunk (orders, changes,
  events), and opens no write transaction for a chunk where nothing changed;
* the MALL state of never-attempted changes whose ledger copy is stale is refreshed with one list call
  per 100 orders (``GET /v1/orders?filter=basic&id=in:...``); an interrupted change is still re-read with
  its own ``GET /v1/orders/{id}``, and if MALL ignores the id filter the engine reads one by one;
* the changes to push are claimed (``sending``) in one committed transaction before the first of their
  PUTs, and the PUTs' outcomes are recorded in groups. A crash in between leaves them ``sending``, which
  means "re-read before resending", exactly as for a single change.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from adapters.base import FeedProblem, FeedUnavailable, FeedUnusable, ShopOrderState
from connector.ledger.rows import ChangeRow, OrderRow, utcnow
from connector.ledger.types import (
    ChangeKind,
    ChangeState,
    EventKind,
    ItemKind,
    Origin,
    action_key,
    shop_change_key,
    unmapped_change_key,
)
from connector.mall.models import StatusUpdate
from connector.mall.statuses import ALL_STATUSES, Status, parse_status
from connector.mapping import Mapping
from connector.sync.common import Engine, fingerprint, mall_time
from connector.sync.decide import behind_older, decide_outbound, inbound_first, push_rounds
from connector.sync.policy import Kind, Op, Outcome
from connector.sync.snapshot import store_snapshot
from connector.tracking import tracking_url_for

log = logging.getLogger("mall_connector.outbound")

FEED_KV = "shop_feed_fingerprint"
FEED_FAILURES_KV = "shop_feed_failures"
ROWS_PER_TXN = 500
PUSH_LOG_SHOWN = 10  # orders named in the INFO line of a recorded batch of pushes (issue 17)
LIST_REFRESH_MAX = 100  # order ids per batched state refresh (one GET /v1/orders?id=in:...)
LIST_REFRESH_MIN = 2  # below this a GET of the order is as cheap, and brings the whole order
FLUSH_EVERY = 50  # pushed changes recorded per ledger transaction
FINISHED_AS = {"skip": ChangeState.SKIPPED, "done": ChangeState.DONE, "fail": ChangeState.FAILED}  # without a PUT


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
    #: issue 14: "ok", "unreadable" (missing, cannot be read: exit 66) or "unusable" (read, not usable: exit 65).
    feed_status: str = "ok"


@dataclass
class PushResult:
    pushed: int = 0
    skipped: int = 0
    failed: int = 0
    retry: int = 0
    done_by_reread: int = 0
    reads: int = 0  # GET /v1/orders/{id}
    list_reads: int = 0  # batched state refreshes (GET /v1/orders?id=in:...)
    labels_made: int = 0  # MALL Delivery orders whose labels were made (connector/sync/labels.py)
    labels_calls: int = 0  # POST /v1/orders/labels
    serials_sent: int = 0  # items whose serial numbers MALL accepted (connector/sync/serials.py)


def _first_try(ch: ChangeRow) -> bool:
    """Never attempted: it may be decided on the ledger's copy of the order (when fresh)."""
    return ch.attempts == 0 and ch.state == ChangeState.PENDING and ch.outcome is None


def _may_have_landed(ch: ChangeRow) -> bool:
    """An earlier attempt of this change may have reached MALL: it is being sent, or an attempt failed in a way
    other than MALL refusing the PUT outright (then finding the target on MALL means someone else set it)."""
    return ch.state == ChangeState.SENDING or ((ch.attempts > 0 or ch.outcome == Kind.REREAD) and not ch.refused)


def _note_feed_failure(ledger, e: Exception, text: str) -> str:
    """issue 14: remember why the feed failed (alerts, exit codes); "unusable" or "unreadable"."""
    from connector.ledger import alerting

    status = alerting.FEED_UNUSABLE if isinstance(e, FeedUnusable) else alerting.FEED_UNREADABLE
    alerting.record_feed_failure(ledger, status, text)
    return status


def _note_feed_read(ledger, adapter, feed, result: "PollResult") -> str | None:
    """issue 14: judge the read (rows rejected by kind; empty after a full one is unusable). Returns the
    state to store with the feed's fingerprint, or None when it is the same as before."""
    from connector.ledger import alerting

    label = getattr(getattr(adapter, "source", None), "label", None) or "the shop feed"
    rows = len({r.mall_order_id for r in feed.rows})
    state, text = alerting.judge_feed_read(ledger, rows=rows, problems=feed.problems, label=label)
    if state.state != alerting.FEED_OK:
        log.warning("shop feed unusable: %s", state.message)
        result.feed_status, result.unavailable = state.state, state.message
    return text


def _shown(at, config) -> str:
    """issue 14: a time in a message a person reads, in [shop] timezone with the zone named."""
    from connector.timefmt import local, zone_name

    return f"{local(at, config.shop.timezone)} {zone_name(config.shop.timezone)}"


def _store_feed_state(ledger, text: str, conn) -> None:
    from connector.ledger import alerting

    alerting.store_feed_state(ledger, text, conn)


class OutboundSync(Engine):
    """Shop → MALL: feed polling and the push pass."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        #: False once MALL was seen ignoring the id filter of the order list: then orders are read one by one.
        self.list_refresh = True

    # -- reading the shop ---------------------------------------------------------------------
    def poll_shop(self, *, wait_for_settle: bool = False) -> PollResult:
        """Read the feed and turn every row that differs from what was last seen into a change."""
        result = PollResult()
        kv = self.ledger.kv
        previous = kv.get(FEED_KV)
        try:
            feed = self.adapter.read_feed(previous_fingerprint=previous, wait_for_settle=wait_for_settle)
        except FeedUnusable as e:  # issue 14: read, but unusable (a required column missing): exit 65, own alert
            if kv.get(FEED_FAILURES_KV) not in (None, "0"):
                with self.ledger.write() as c:
                    kv.set(c, FEED_FAILURES_KV, "0")
            log.warning("shop feed unusable: %s", e)
            result.unavailable = str(e)
            result.feed_status = _note_feed_failure(self.ledger, e, str(e))
            return result
        except Exception as e:  # contained: see policy.py; the push pass and the inbound still run
            outcome = self.outcome(Op.FEED_READ, e)
            failures = int(kv.get(FEED_FAILURES_KV) or 0) + 1
            with self.ledger.write() as c:
                kv.set(c, FEED_FAILURES_KV, str(failures))
            text = str(e) if isinstance(e, FeedUnavailable) else outcome.reason
            log.warning("shop feed unreadable (%d poll(s) in a row): %s", failures, text)
            result.unavailable = text
            result.feed_status = _note_feed_failure(self.ledger, e, text)  # issue 14
            return result
        if kv.get(FEED_FAILURES_KV) not in (None, "0"):
            with self.ledger.write() as c:
                kv.set(c, FEED_FAILURES_KV, "0")
        result.not_ready, result.unchanged, result.problems = feed.not_ready, feed.unchanged, list(feed.problems)
        for p in feed.problems:
            log.warning("shop feed: %s (row skipped)", p)
        if feed.not_ready or feed.unchanged:
            return result
        feed_state = _note_feed_read(self.ledger, self.adapter, feed, result)
        rows: dict[int, ShopOrderState] = {}
        for row in feed.rows:
            rows[row.mall_order_id] = row  # the last row of an order wins
        result.rows = len(rows)
        # -- MALL Delivery labels (connector/sync/labels.py): the feed's parcel counts --------------------
        from connector.sync import labels as mdp_labels

        mdp_labels.note_feed(self, rows)
        # ------------------------------------------------------------------------------------------------
        ids = list(rows)
        mapping = self.mapping
        all_recorded = True
        for i in range(0, len(ids), ROWS_PER_TXN):
            chunk = ids[i : i + ROWS_PER_TXN]
            seen_before = self.ledger.orders.fingerprints(chunk)
            changed = []
            for oid in chunk:
                fp = fingerprint(self._row_seen(rows[oid]))
                if seen_before.get(oid) != fp:  # else: same as last seen, no change
                    changed.append((rows[oid], fp))
            if changed:
                per_order, held = self._account_mappings_of(changed, mapping)  # issue 18
                if held:
                    changed = [item for item in changed if item[0].mall_order_id not in held]
                    all_recorded = False
                result.changed_rows += len(changed)
                if changed:
                    all_recorded &= self._record_contained(changed, mapping, result, per_order)
        # A row that could not be recorded keeps the feed "changed", so the next poll tries it again.
        store_fingerprint = feed.fingerprint is not None and all_recorded
        if store_fingerprint or feed_state is not None:
            with self.ledger.write() as c:  # one commit: the feed's fingerprint and its health (issue 14)
                if store_fingerprint:
                    kv.set(c, FEED_KV, feed.fingerprint)
                if feed_state is not None:
                    _store_feed_state(self.ledger, feed_state, c)
        return result

    def _account_mappings_of(self, changed: list[tuple[ShopOrderState, str]], mapping: Mapping):
        """issue 18: ``(order id -> its account's own mapping, ids held back)`` for the changed rows.

        Only with ``[accounts.<name>] mapping``. An order of a known account takes that account's mapping (else
        ``[shop] mapping``). An order whose account is not known yet is looked up first (each account asked once,
        the answer kept, as the push would) when its shop status means different things in the mappings;
        in none of the accounts, it takes ``[shop] mapping`` (its change then fails: MALL does not know it). When
        the lookup cannot be answered now (MALL unreachable, an account rejected), the row is held back: it is
        not recorded, the feed stays "changed", and the next poll decides it."""
        holder = self._mapping
        own: dict[str, Mapping] = holder.accounts if hasattr(holder, "accounts") else {}
        if not own:
            return {}, set()
        owners = self.ledger.accounts.owners([row.mall_order_id for row, _ in changed])
        every = [mapping, *own.values()]
        per_order: dict[int, Mapping] = {}
        held: set[int] = set()
        for row, _ in changed:
            oid = row.mall_order_id
            name = owners.get(oid)
            if name is None:
                meanings = {(m.lookup(row.status).kind, m.lookup(row.status).target) for m in every}
                if len(meanings) == 1 or not hasattr(self.client, "find_account"):
                    continue  # every mapping reads this status alike: no need to know the account yet
                try:
                    name = self.client.find_account(oid)  # None: in no account, [shop] mapping decides
                except Exception as e:  # contained: the row waits for the next poll, nothing is recorded
                    log.warning("order %s: its MALL account cannot be looked up now (%s); its feed row is decided "
                                "by the next poll, with that account's mapping", oid, e, extra={"order_id": oid})
                    held.add(oid)
                    continue
            if name in own:
                per_order[oid] = own[name]
        return per_order, held

    def _record_contained(self, changed: list[tuple[ShopOrderState, str]], mapping: Mapping, result: PollResult,
                          per_order: dict[int, Mapping] | None = None) -> bool:
        """Record a chunk of changed rows in one transaction; when that fails, row by row, so that one row the
        ledger cannot take (e.g. an order id out of range) is reported as a bad row and the others count.
        ``per_order``: the orders whose account has its own mapping (issue 18)."""
        part = PollResult()
        try:
            with self.ledger.write() as c:
                self._record_rows(c, changed, mapping, part, per_order)
        except Exception as e:  # contained: see policy.py
            if len(changed) == 1:
                outcome = self.outcome(Op.RECORD, e)
                row = changed[0][0]
                problem = FeedProblem("shop feed", row.line, f"order {row.mall_order_id}: not recorded: {outcome.reason}")
                result.problems.append(problem)
                log.warning("shop feed: %s (row skipped)", problem)
                return False
            ok = True
            for item in changed:
                ok &= self._record_contained([item], mapping, result, per_order)
            return ok
        result.new_changes += part.new_changes
        result.unmapped += part.unmapped
        return True

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

    @staticmethod
    def _row_seen(row: ShopOrderState) -> dict:
        return {
            "status": row.status, "shop_order_id": row.shop_order_id, "tracking_number": row.tracking_number,
            "tracking_url": row.tracking_url, "carrier": row.carrier, "delivered_at": row.delivered_at,
            "first_delivery_attempt": row.first_delivery_attempt, "location": row.location,
        }

    def _record_rows(self, c, changed: list[tuple[ShopOrderState, str]], mapping: Mapping, result: PollResult,
                     per_order: dict[int, Mapping] | None = None) -> None:
        """Record rows that differ from what was last seen, in the caller's transaction, a few statements in all.
        ``per_order``: order id -> its account's own mapping (issue 18); the others take ``mapping``."""
        shared = mapping
        orders, changes = self.ledger.orders, self.ledger.changes
        now = utcnow()
        present = orders.existing_ids(c, [row.mall_order_id for row, _ in changed])
        new_orders, order_updates = [], []
        wanted = []  # (row, key, target or None when unmapped, payload or reason)
        for row, fp in changed:
            oid = row.mall_order_id
            values = {
                "shop_order_id": row.shop_order_id, "shop_status": row.status, "shop_fingerprint": fp,
                "shop_seen_at": now, "shop_tracking_number": row.tracking_number,
                "shop_tracking_url": row.tracking_url, "shop_carrier": row.carrier, "shop_location": row.location,
            }
            if oid in present:
                order_updates.append((oid, values))
            else:
                new_orders.append({"mall_order_id": oid, **values})
            mapping = per_order.get(oid, shared) if per_order else shared
            lookup = mapping.lookup(row.status)
            if lookup.kind == "ignored":
                wanted.append((row, None, None, None))
            elif lookup.kind == "unmapped":
                result.unmapped += 1
                reason = f"unmapped shop status {row.status!r}: add it to [to_mall] or [ignore] in {mapping.path}"
                wanted.append((row, unmapped_change_key(oid, row.status), None, reason))
            else:
                target: Status = lookup.target
                wanted.append((row, shop_change_key(oid, target.value), target, self._row_payload(row)))
        orders.insert_many(c, new_orders)
        orders.update_many(c, order_updates)

        existing = changes.by_keys(c, [key for _, key, _, _ in wanted if key is not None])
        inserts = []
        for row, key, target, extra in wanted:
            if key is None or key in existing:
                continue
            if target is None:
                inserts.append({"key": key, "order_id": row.mall_order_id, "origin": Origin.SHOP,
                                "kind": ChangeKind.STATUS, "state": ChangeState.SKIPPED, "shop_status": row.status,
                                "reason": extra})
            else:
                inserts.append({"key": key, "order_id": row.mall_order_id, "origin": Origin.SHOP,
                                "kind": ChangeKind.STATUS, "shop_status": row.status, "target_status": target.value,
                                "payload": extra})
        new_ids = changes.insert_many(c, inserts)

        events = []
        for row, key, target, extra in wanted:
            oid = row.mall_order_id
            if key is None:
                events.append((oid, EventKind.SHOP, f"shop status {row.status!r} (ignored by the mapping)"))
                continue
            if target is None:  # unmapped
                if key in new_ids:
                    events.append((oid, EventKind.SKIPPED, extra))
                    log.warning("order %s: %s", oid, extra, extra={"order_id": oid, "reason": extra})
                continue
            ex = existing.get(key)
            if ex is None:
                result.new_changes += 1
                events.append((oid, EventKind.CHANGE,
                               f"shop status {row.status!r} → MALL {target} (change {new_ids[key]})"))
            elif ex.payload == extra:
                continue
            elif ex.state in (ChangeState.PENDING, ChangeState.RETRY):
                changes.set_payload(c, ex, extra)
            elif ex.state == ChangeState.FAILED:
                # New data (e.g. the tracking number arrived): give the change another go.
                changes.move(c, ex.id, ex.state, ChangeState.PENDING, payload=extra, attempts=0)
                events.append((oid, EventKind.CHANGE, f"shop row changed; change {ex.id} is pending again"))
                result.new_changes += 1
        # New data for an order gives its other failed changes another go too: shipped failed for want of a
        # tracking number, and the next row brings the number along with delivered. Older, they are pushed first
        # (see decide.behind_older), so the order moves on MALL as it did in the shop instead of delivered being
        # skipped as "not allowed" from open.
        mapped = {row.mall_order_id: (key, extra, row.status) for row, key, target, extra in wanted if target is not None}
        if mapped:
            for ch in changes.failed_with_target(c, Origin.SHOP, list(mapped)):
                row_key, extra, row_status = mapped[ch.mall_order_id]
                # A new shop status is new data too (e.g. shipped failed for want of a tracking number, then the
                # order was cancelled): decided again, the older change closes instead of waiting for a human.
                if ch.key == row_key or (ch.payload == extra and ch.shop_status == row_status):
                    continue
                changes.move(c, ch.id, ch.state, ChangeState.PENDING, payload=extra, attempts=0)
                events.append((ch.mall_order_id, EventKind.CHANGE, f"shop row changed; change {ch.id} is pending again"))
                result.new_changes += 1
        orders.add_events(c, events)
        # -- issue 15 (carriers): keep the feed's tracking number, carrier and delivery dates for the delivery job
        self.ledger.parcels.record_shop_rows(
            c, [{"mall_order_id": row.mall_order_id, **self._row_payload(row)} for row, _ in changed])
        # -- end issue 15

    # -- pushing to MALL ----------------------------------------------------------------------
    def push_due(self, *, include_not_due: bool = False) -> PushResult:
        """Work through open changes (pending, interrupted, due retries), oldest first, a batch at a time."""
        result = self._push_changes(include_not_due=include_not_due)
        # -- MALL Delivery (connector/sync/labels.py, serials.py): labels and serial numbers -------------
        from connector.sync import labels as mdp_labels, serials as mdp_serials

        mdp_labels.after_push(self, result)
        mdp_serials.after_push(self, result)
        # ------------------------------------------------------------------------------------------------
        return result

    def _push_changes(self, *, include_not_due: bool) -> PushResult:
        result = PushResult()
        last_id = 0
        batch = self.config.sync.batch_size
        while True:
            todo = self.ledger.changes.due(Origin.SHOP, batch, include_not_due=include_not_due, after_id=last_id,
                                           **({"account": self.account} if self.account else {}))  # issue 18
            if not todo:
                break
            last_id = todo[-1].id
            for changes in push_rounds(todo):
                if not self._push_round(changes, result):
                    return result
        return result

    # The state of an order as the ledger knows it is trusted for a never-attempted change while it is fresh.
    def _is_fresh(self, known: OrderRow | None) -> bool:
        return (known is not None and known.mall_status is not None and known.mall_read_at is not None
                and utcnow() - known.mall_read_at <= timedelta(seconds=self.config.sync.refresh_age_s))

    def _push_round(self, changes: list[ChangeRow], result: PushResult) -> bool:
        """Decide and push changes of distinct orders. False when the pass must end (stopping, rate limited)."""
        cfg = self.config.sync
        behind = behind_older(changes, self.ledger.changes.oldest_open(Origin.SHOP, [ch.mall_order_id for ch in changes]))
        changes = [ch for ch in changes if ch.id not in behind]
        states = self._states_for(changes, result)
        finished: list[tuple[ChangeRow, str, str, object]] = []  # decided without a PUT: (change, state, reason, action)
        to_push: list[tuple[ChangeRow, OrderRow, object]] = []
        try:
            for ch in changes:
                if self.should_stop():
                    return False
                try:
                    state = states.get(ch.mall_order_id) if _first_try(ch) else None
                    if state is None:
                        state = self._read_one(ch, result)
                        if state is None:
                            continue  # recorded as failed or to retry
                    decision = self._decide(ch, state)
                except Exception as e:  # contained: see policy.py
                    self._retry(ch, self.outcome(Op.DECIDE, e), result)
                    continue
                if decision.action != "push":
                    finished.append((ch, FINISHED_AS[decision.action], decision.reason, decision.needs_action))
                elif self._inbound_first(ch, state, decision):
                    continue  # stays open; pushed without `confirmed` once the inbound confirmed the order
                elif ch.attempts >= cfg.max_attempts:
                    finished.append((ch, ChangeState.FAILED,
                                     f"gave up after {ch.attempts} attempts: {ch.last_error}", None))
                else:
                    to_push.append((ch, state, decision))
        finally:
            self._finish_many(finished, result)
        with self.ledger.write() as c:
            claimed = self.ledger.changes.claim(c, [ch for ch, _, _ in to_push])
        unsent = [item for item in to_push if item[0].id in claimed]  # someone else took the others meanwhile
        pushed: list[tuple[ChangeRow, dict, str]] = []
        try:
            while unsent:
                if self.should_stop():
                    return False
                ch, state, decision = unsent.pop(0)
                if not self._is_fresh(state):
                    # A long (rate-limited) batch outlived the state it was decided on: read and decide again.
                    try:
                        state = self._read_one(ch, result, claimed=True)
                        if state is None:
                            continue
                        decision = self._decide(ch, state)
                    except Exception as e:  # contained: see policy.py (a STOP re-raises from _read_one)
                        self._retry(ch, self.outcome(Op.DECIDE, e), result, claimed=True)
                        continue
                    if decision.action != "push":
                        self._finish(ch, FINISHED_AS[decision.action], decision.reason, result,
                                     needs_action=decision.needs_action, claimed=True)
                        continue
                    if self._inbound_first(ch, state, decision):
                        self._release([ch])
                        continue
                outcome = self._put(ch, decision, result)
                if outcome == "done":
                    pushed.append((ch, decision.body, decision.reason))
                    if len(pushed) >= FLUSH_EVERY:
                        self._record_pushed(pushed, result)
                        pushed = []
                elif outcome == "stop":
                    return False
            return True
        finally:
            self._record_pushed(pushed, result)
            self._release([ch for ch, _, _ in unsent])

    def _release(self, changes: list[ChangeRow]) -> None:
        if changes:
            with self.ledger.write() as c:
                self.ledger.changes.release(c, changes)

    def _states_for(self, changes: list[ChangeRow], result: PushResult) -> dict[int, OrderRow]:
        """MALL states for the never-attempted changes: the ledger's when fresh, else refreshed in one list call
        per LIST_REFRESH_MAX orders. Orders missing from the answer are read one by one later."""
        first_tries = [ch for ch in changes if _first_try(ch)]
        if not first_tries:
            return {}
        known = self.ledger.orders.get_many(sorted({ch.mall_order_id for ch in first_tries}))
        out = {oid: row for oid, row in known.items() if self._is_fresh(row)}
        stale = [oid for oid in known if oid not in out]
        if self.list_refresh and len(stale) >= LIST_REFRESH_MIN:
            for i in range(0, len(stale), LIST_REFRESH_MAX):
                got = self._refresh_listed(stale[i:i + LIST_REFRESH_MAX], known, result)
                if got is None:
                    break
                out.update(got)
        return out

    def _refresh_listed(self, ids: list[int], known: dict[int, OrderRow], result: PushResult) -> dict[int, OrderRow] | None:
        """One ``GET /v1/orders?filter=basic&id=in:...``; stores status, confirmed, mdp and test of each order
        listed. None when the list cannot be used (then the orders are read one by one)."""
        wanted = set(ids)
        listed = {}
        try:
            # Every status, so that MALL lists blocked orders too; test orders too: the feed may name one.
            for basic in self.client.iter_orders(status=list(ALL_STATUSES), include_test=True, basic=True,
                                                 page_size=len(ids), id=ids):
                if basic.id not in wanted or len(listed) >= len(ids):
                    # MALL did not honour the id filter: never page through the whole order list.
                    self.list_refresh = False
                    log.warning("MALL's order list ignored the id filter; order states are read one by one")
                    return None
                if {"status", "confirmed", "mdp"} <= basic.model_fields_set:
                    listed[basic.id] = basic
            if not listed:
                return {}
            now = utcnow()
            updates = {oid: {"mall_status": b.status.value, "mall_confirmed": b.confirmed, "mdp": b.mdp,
                             "test": b.test, "mall_read_at": now} for oid, b in listed.items()}
            with self.ledger.write() as c:
                self.ledger.orders.update_many(c, list(updates.items()))
        except Exception as e:  # contained: see policy.py (REREAD: the orders are read one by one)
            outcome = self.outcome(Op.LIST_REFRESH, e)
            log.info("batched read of %d orders failed: %s", len(ids), outcome.reason)
            return None
        finally:
            result.list_reads += 1
        return {oid: dataclasses.replace(known[oid], **values) for oid, values in updates.items()}

    def _read_one(self, ch: ChangeRow, result: PushResult, *, claimed: bool = False) -> OrderRow | None:
        """GET the order, store the snapshot and return its state; None when the change was finished or
        scheduled for a retry instead. ``claimed``: the change is ``sending`` by this pass."""
        oid = ch.mall_order_id
        try:
            order = self.client.get_order(oid)
            result.reads += 1
            with self.ledger.write() as c:
                store_snapshot(self.ledger, c, order)
        except Exception as e:  # contained: see policy.py
            try:
                outcome = self.outcome(Op.PUSH_READ, e)
            except Exception:
                if claimed:  # STOP (401/403): hand the claim back, the change was never sent
                    self._release([ch])
                raise
            if outcome.kind == Kind.FAIL:
                self._finish(ch, ChangeState.FAILED, outcome.reason, result, claimed=claimed, outcome=outcome)
            else:
                self._retry(ch, outcome, result, claimed=claimed)
            return None
        return self.ledger.orders.get(oid)

    @staticmethod
    def _decide(ch: ChangeRow, state: OrderRow, *, interrupted: bool | None = None):
        return decide_outbound(
            order_id=ch.mall_order_id, target=parse_status(ch.target_status), current=parse_status(state.mall_status),
            confirmed=bool(state.mall_confirmed), mdp=bool(state.mdp), payload=ch.payload,
            interrupted=_may_have_landed(ch) if interrupted is None else interrupted,
        )

    def _inbound_first(self, ch: ChangeRow, state: OrderRow, decision) -> bool:
        """The ordering rule "inbound before outbound" (decide.inbound_first): such an order goes through the
        inbound first (read, hand over, confirm: queued here) and the change is pushed in a later pass, without
        ``confirmed``."""
        if not inbound_first(push_confirms=bool(decision.body.get("confirmed")), handed_status=state.handed_status):
            return False
        self.ledger.inbox.enqueue([ch.mall_order_id], source="outbound")
        log.info("order %s: change %s waits until MALL's side of the order is handed to the shop and confirmed",
                 ch.mall_order_id, ch.id, extra={"order_id": ch.mall_order_id, "change_id": ch.id})
        return True

    def _put(self, ch: ChangeRow, decision, result: PushResult) -> str:
        """Send one claimed change. Returns "done", "other" (failed or scheduled for a retry) or "stop"
        (MALL keeps rate-limiting: end the pass, the rest waits for the next one)."""
        oid = ch.mall_order_id
        # -- issue 17 (push speed): the line per PUT is DEBUG; _record_pushed logs one INFO line per batch ----
        log.debug("order %s: %s", oid, decision.reason, extra={"order_id": oid, "change_id": ch.id})
        try:
            self.client.update_order(oid, StatusUpdate(**decision.body))
        except Exception as e:  # contained: see policy.py
            try:
                outcome = self.outcome(Op.PUSH, e, first_try=_first_try(ch))
            except Exception:
                self._release([ch])  # STOP (401/403): MALL did not apply it; nothing is counted against the change
                raise
            if outcome.kind == Kind.FAIL:
                self._finish(ch, ChangeState.FAILED, outcome.reason, result, claimed=True, outcome=outcome)
            else:
                self._retry(ch, outcome, result, claimed=True)
            return "stop" if outcome.end_pass else "other"
        return "done"

    def _record_pushed(self, pushed: list[tuple[ChangeRow, dict, str]], result: PushResult) -> None:
        """Record accepted PUTs: the change done, the order's new MALL state, an event; one transaction."""
        if not pushed:
            return
        now = utcnow()
        moves, orders, events = [], [], []
        for ch, body, reason in pushed:
            moves.append((ch.id, ChangeState.SENDING, ChangeState.DONE,
                          {"reason": reason, "last_error": None, "error_class": None, "outcome": None}))
            values = {"mall_status": ch.target_status, "mall_read_at": now}
            if ch.target_status == Status.DELIVERED and body.get("delivered_at"):
                values["mall_delivered_at"] = body["delivered_at"]
            if body.get("confirmed"):
                values["mall_confirmed"] = True
            orders.append((ch.mall_order_id, values))
            events.append((ch.mall_order_id, EventKind.PUSHED, f"MALL accepted {json.dumps(body, ensure_ascii=False)}"))
        with self.ledger.write() as c:
            self.ledger.changes.move_many(c, moves)
            self.ledger.orders.update_many(c, orders)
            self.ledger.orders.add_events(c, events)
        result.pushed += len(pushed)
        # -- issue 17 (push speed): one INFO line per recorded batch instead of one per PUT -----------------
        shown = ", ".join(f"{ch.mall_order_id} → {ch.target_status}" for ch, _, _ in pushed[:PUSH_LOG_SHOWN])
        more = f" and {len(pushed) - PUSH_LOG_SHOWN} more" if len(pushed) > PUSH_LOG_SHOWN else ""
        log.info("MALL accepted %d change(s): %s%s", len(pushed), shown, more)
        for ch, body, _ in pushed:
            self._metric("done")
            self.hooks.call("after_push", ch, body)

    def _add_action(self, c, oid: int, needs_action) -> None:
        self.ledger.actions.add(c, key=action_key(needs_action.kind, oid), order_id=oid, kind=needs_action.kind,
                                message=needs_action.message)

    def _finish_many(self, finished: list, result: PushResult) -> None:
        """``_finish`` for the changes decided without a PUT, in one transaction."""
        if not finished:
            return
        with self.ledger.write() as c:
            self.ledger.changes.move_many(c, [(ch.id, ch.state, state, {"reason": reason, "next_attempt_at": None})
                                              for ch, state, reason, _ in finished])
            self.ledger.orders.add_events(c, [(ch.mall_order_id, state, reason) for ch, state, reason, _ in finished])
            for ch, _, _, needs_action in finished:
                if needs_action is not None:
                    self._add_action(c, ch.mall_order_id, needs_action)
        for ch, state, reason, _ in finished:
            self._count_finish(ch, state, reason, result)

    def _finish(self, ch: ChangeRow, state: str, reason: str, result: PushResult, *, needs_action=None,
                claimed: bool = False, outcome: Outcome | None = None) -> None:
        oid = ch.mall_order_id
        values = {"reason": reason, "next_attempt_at": None}
        if outcome is not None:
            values.update(error_class=outcome.error_class, outcome=outcome.kind.value, refused=outcome.refused,
                          last_error=outcome.message)
        with self.ledger.write() as c:
            self.ledger.changes.move(c, ch.id, ChangeState.SENDING if claimed else ch.state, state, **values)
            self.ledger.orders.add_event(c, oid, state, reason)
            if needs_action is not None:
                self._add_action(c, oid, needs_action)
        self._count_finish(ch, state, reason, result)
        if state == ChangeState.FAILED:
            self.quarantined(ItemKind.CHANGE, ch.id)

    def _count_finish(self, ch: ChangeRow, state: str, reason: str, result: PushResult) -> None:
        oid = ch.mall_order_id
        level = logging.WARNING if state == ChangeState.FAILED else logging.INFO
        log.log(level, "order %s: change %s %s: %s", oid, ch.id, state, reason,
                extra={"order_id": oid, "change_id": ch.id, "reason": reason})
        if state == ChangeState.FAILED:
            result.failed += 1
        elif state == ChangeState.SKIPPED:
            result.skipped += 1
        else:
            result.done_by_reread += 1
        self._metric(str(state))

    def _retry(self, ch: ChangeRow, outcome: Outcome, result: PushResult, *, claimed: bool = False) -> None:
        """Carry out a RETRY or REREAD outcome: count the attempt, keep the error, schedule the next try or, at
        ``[sync] max_attempts``, quarantine the change (failed, the reason kept)."""
        # A claim already counted a PUT attempt; a failed read counts as one too, so that a broken order cannot
        # loop forever. Either way the row now stands at ch.attempts + 1.
        disp = self.disposition(outcome, ch.attempts + 1)
        frm = ChangeState.SENDING if claimed else ch.state
        typed = {"error_class": outcome.error_class, "outcome": outcome.kind.value, "refused": outcome.refused,
                 "last_error": outcome.message}
        if disp.quarantine:
            with self.ledger.write() as c:
                self.ledger.changes.move(c, ch.id, frm, ChangeState.FAILED, attempts=disp.attempts,
                                         reason=disp.reason, **typed)
                self.ledger.orders.add_event(c, ch.mall_order_id, EventKind.FAILED, disp.reason)
            result.failed += 1
            self._metric("failed")
            log.warning("order %s: change %s failed after %d attempts: %s", ch.mall_order_id, ch.id, disp.attempts,
                        outcome.reason)
            self.quarantined(ItemKind.CHANGE, ch.id)
            return
        at = disp.next_attempt_at
        with self.ledger.write() as c:
            self.ledger.changes.move(c, ch.id, frm, ChangeState.RETRY, attempts=disp.attempts, next_attempt_at=at,
                                     **typed)
            self.ledger.orders.add_event(c, ch.mall_order_id, EventKind.RETRY,
                                         f"will retry at {_shown(at, self.config)}: {outcome.reason}")
        result.retry += 1
        self._metric("unknown" if outcome.kind == Kind.REREAD and not outcome.refused else "retry")
        log.info("order %s: change %s will retry: %s", ch.mall_order_id, ch.id, outcome.reason)

    def _metric(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.push(outcome)
