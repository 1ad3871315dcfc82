"""Delivered reaches MALL: from the shop's delivery date, else from the carrier's tracking (issue 15).

MALL buys the goods only once an order is ``delivered``, and most shops never learn the delivery time:
the carrier knows it. This job watches every order MALL has ``shipped`` that is not MALL Delivery (MALL
sets those itself) and:

* takes the shop feed's ``delivered_at`` / ``first_delivery_attempt`` (recorded by the poll, see
  ``ledger.parcels.record_shop_rows``; off with the mapping's ``[options] delivered_from_date``);
* otherwise asks the parcel's carrier (a tracker from the ``mall_connector.carriers`` registry), per
  parcel every ``[carriers] poll_interval_s`` (4 h), every ``slow_poll_interval_s`` (24 h) after
  ``slow_after_days`` (3), at most ``max_calls_per_parcel`` times and for ``max_age_days`` (30);
* refuses a delivery time in the future or before MALL's ``shipped`` datetime (the reason stays in the
  ledger), and takes the earliest plausible time when the shop and the carrier disagree;
* creates the ``delivered`` change through the ordinary change mechanism, with the same key as a
  shop-status change (``shop:<order>:delivered``), so it is pushed once by the outbound engine, and only
  after shipped has landed (the job acts only on orders the ledger has as shipped on MALL);
* opens a needs-action item (alerted once) for a parcel returned to the sender (and pushes ``returned``
  only with ``push_returned``) and for an order shipped more than ``stuck_after_days`` ago and not delivered.

The decisions are pure functions (``choose_carrier``, ``choose_delivery``, ``next_poll_at``); ``DeliveryJob``
only carries them out. MALL errors go through the one error policy (``Op.DELIVERY_READ``); anything a parcel
raises is contained to that parcel; carrier errors back off per parcel. No ledger transaction is held across
a carrier or MALL call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Mapping as TMapping

from connector.ledger.parcels import ParcelRow
from connector.ledger.types import (
    ActionKind,
    ChangeKind,
    ChangeState,
    EventKind,
    Origin,
    ParcelState,
    action_key,
    shop_change_key,
)
from connector.logs import redact, register_secret
from connector.mall.statuses import Status
from connector.sync.common import PRAGUE, Engine, mall_time
from connector.sync.policy import Kind, Op
from connector.sync.snapshot import store_snapshot

log = logging.getLogger("mall_connector.delivery")

FUTURE_SKEW = timedelta(minutes=5)  # clocks differ a little; more than this ahead is "in the future"
STUCK_KIND = ActionKind.NOT_DELIVERED
RETURNED_KIND = ActionKind.PARCEL_RETURNED
FMT = "%Y-%m-%d %H:%M:%S"


# -- pure decisions -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """A reported delivery: from the shop feed (``source="shop"``) or a carrier (``"carrier packeta"``)."""

    source: str
    delivered_at: datetime  # aware
    first_attempt: datetime | None = None
    date_only: bool = False  # the source gave a date without a time of day


@dataclass(frozen=True)
class DeliveryChoice:
    delivered_at: datetime | None = None  # None: nothing plausible to push
    first_attempt: datetime | None = None
    source: str | None = None
    refused: tuple[str, ...] = ()  # why each implausible candidate was not used


def _p(dt: datetime) -> str:
    return dt.astimezone(PRAGUE).strftime(FMT)


def _place(at: datetime, date_only: bool, shipped_at: datetime | None) -> datetime:
    """A date-only report means "some time that day": its earliest plausible moment is the later of the day's
    start and MALL's shipped time."""
    if date_only and shipped_at is not None and at.astimezone(PRAGUE).date() == shipped_at.astimezone(PRAGUE).date():
        return max(at, shipped_at)
    return at


def choose_delivery(candidates: Iterable[Candidate], *, shipped_at: datetime | None, now: datetime) -> DeliveryChoice:
    """The delivery to push: the earliest plausible one. A time after ``now`` (+ a small clock skew) or before
    MALL's ``shipped_at`` is refused with its reason. The first delivery attempt is the earliest reported one
    that lies between shipped and the chosen delivery; none when no source reports one."""
    plausible: list[tuple[datetime, Candidate]] = []
    refused: list[str] = []
    for cand in candidates:
        at = _place(cand.delivered_at, cand.date_only, shipped_at)
        if at > now + FUTURE_SKEW:
            refused.append(f"{cand.source} delivery time {_p(at)} is in the future (now {_p(now)} Prague time)")
        elif shipped_at is not None and at < shipped_at:
            refused.append(f"{cand.source} delivery time {_p(at)} is before MALL shipped the order "
                           f"({_p(shipped_at)} Prague time)")
        else:
            plausible.append((at, cand))
    if not plausible:
        return DeliveryChoice(refused=tuple(refused))
    at, chosen = min(plausible, key=lambda pc: pc[0])
    attempts = []
    for _, cand in plausible:
        if cand.first_attempt is None:
            continue
        fa = _place(cand.first_attempt, cand.date_only, shipped_at)
        if (shipped_at is None or fa >= shipped_at) and fa <= at:
            attempts.append(fa)
    return DeliveryChoice(at, min(attempts) if attempts else None, chosen.source, tuple(refused))


def choose_carrier(*, feed_carrier: str | None, delivery_method: str | None, tracking_number: str | None,
                   delivery_methods: TMapping[str, str], known: TMapping[str, type]) -> tuple[str | None, str]:
    """Which tracker follows a parcel, and how that was decided, in the issue's order: the feed's carrier
    column, MALL's delivery method through ``[carriers] delivery_methods``, the tracking number's shape.
    A feed naming a carrier no tracker serves is not second-guessed by the number's shape."""
    from carriers import guess_by_name, guess_by_number

    if feed_carrier and feed_carrier.strip():
        name = guess_by_name(feed_carrier, dict(known))
        return (name, "feed") if name else (None, f"the feed's carrier {feed_carrier.strip()!r} has no tracker")
    if delivery_method and delivery_method in delivery_methods:
        return delivery_methods[delivery_method], "delivery_method"
    name = guess_by_number(tracking_number, dict(known))
    if name:
        return name, "number"
    return None, "no carrier: the feed names none, [carriers] delivery_methods has no entry for delivery method " \
                 f"{delivery_method!r} and the tracking number's shape fits no single carrier"


def poll_interval(shipped_at: datetime | None, now: datetime, cfg) -> timedelta:
    """4 h while the parcel is young, 24 h once it has been on its way longer than ``slow_after_days``."""
    if shipped_at is not None and now - shipped_at > timedelta(days=cfg.slow_after_days):
        return timedelta(seconds=cfg.slow_poll_interval_s)
    return timedelta(seconds=cfg.poll_interval_s)


def next_poll_at(shipped_at: datetime | None, now: datetime, cfg, *, failures: int = 0,
                 retry_after_s: float | None = None) -> datetime:
    """After a good answer: the poll interval. After ``failures`` failed calls in a row: ``retry_base_s``
    doubling per failure, never more than the poll interval, never before the carrier's Retry-After."""
    interval = poll_interval(shipped_at, now, cfg)
    if failures <= 0:
        return now + interval
    delay = min(interval, timedelta(seconds=cfg.retry_base_s * 2 ** (failures - 1)))
    if retry_after_s:
        delay = max(delay, timedelta(seconds=retry_after_s))
    return now + delay


# -- the job -------------------------------------------------------------------------------------------
@dataclass
class DeliveryResult:
    watched: int = 0
    delivered: int = 0  # delivered changes created (or an existing one re-opened)
    returned: int = 0
    polled: int = 0  # parcels asked about
    calls: int = 0  # carrier HTTP requests
    failed_calls: int = 0
    refused: int = 0
    stuck: int = 0
    mall_reads: int = 0
    notes: list[str] = field(default_factory=list)


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text[:19], FMT).replace(tzinfo=PRAGUE)
    except ValueError:
        return None


class DeliveryJob(Engine):
    """Carries out the delivery decisions for a batch of watched parcels per pass (an engine without a shop
    adapter: the shop's dates reach it through the ledger)."""

    def __init__(self, *, ledger, client, config, mapping=None, metrics=None, trackers: dict | None = None,
                 clock: Callable[[], datetime] | None = None):
        super().__init__(ledger=ledger, client=client, adapter=None, mapping=mapping, config=config, metrics=metrics)
        self._trackers = trackers
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._batch: list | None = None  # the running pass's closes and stuck actions, written at its end (``_later``)

    @property
    def delivered_from_date(self) -> bool:
        m = self.mapping
        return getattr(m, "delivered_from_date", True) if m is not None else True

    @property
    def trackers(self) -> dict:
        """The active carriers' trackers, built once (their secrets registered with the log redactor)."""
        if self._trackers is None:
            from carriers import registry

            known = registry()
            self._trackers = {}
            for name, settings in self.config.carriers.active().items():
                for secret in settings.secrets():
                    register_secret(secret)
                self._trackers[name] = known[name](settings)
        return self._trackers

    def close(self) -> None:
        for t in (self._trackers or {}).values():
            t.close()

    def run(self) -> DeliveryResult:
        cfg = self.config.carriers
        result = DeliveryResult()
        now = self.clock()
        parcels_repo = self.ledger.parcels
        with self.ledger.read() as c:
            adopt = parcels_repo.shipped_without_parcel(c, cfg.batch_size)
        if adopt:  # no write transaction in a pass with nothing to add
            with self.ledger.write() as c:
                parcels_repo.adopt(c, [r for r in adopt if parcels_repo.get(c, r["mall_order_id"]) is None])
        with self.ledger.read() as c:
            parcels = parcels_repo.due(c, cfg.batch_size, now.replace(tzinfo=None))
        result.watched = len(parcels)
        to_poll: dict[str, list[tuple[ParcelRow, datetime | None]]] = {}
        self._batch = []
        try:
            for p in parcels:
                if self.should_stop():
                    return result
                want = self._contained(p, self._consider, p, now, result, may_poll=True)
                if want is not None:
                    to_poll.setdefault(want[0], []).append((p, want[1]))
        finally:
            self._write_batch()
        for name, items in to_poll.items():
            self._poll(name, items, now, result)
        return result

    def _contained(self, p: ParcelRow, fn, *args, **kw):
        """Run one parcel's step; whatever it raises stays with that parcel (the policy decides: 401/403 end the
        job, a 404 stops watching the order, anything else is logged and the parcel is looked at next pass)."""
        try:
            return fn(*args, **kw)
        except Exception as e:
            outcome = self.outcome(Op.DELIVERY_READ, e)  # re-raises a STOP
            oid = p.mall_order_id
            if outcome.kind == Kind.DROP:
                self._close(oid, ParcelState.MALL, outcome.reason)
            else:
                log.warning("order %s: delivery: %s; next pass", oid, outcome.reason, extra={"order_id": oid})
            return None

    # -- one parcel ------------------------------------------------------------------------------
    def _consider(self, p: ParcelRow, now: datetime, result: DeliveryResult, *,
                  may_poll: bool) -> tuple[str, datetime | None] | None:
        """Decide one parcel; returns (carrier, shipped_at) when the carrier should be asked now."""
        cfg = self.config.carriers
        oid = p.mall_order_id
        if p.mdp:
            self._close(oid, ParcelState.MALL, "MALL Delivery: MALL sets delivered itself from its carrier")
            return None
        if p.mall_status in (Status.DELIVERED, Status.RETURNED, Status.CANCELLED, Status.LOST):
            self._close(oid, ParcelState.MALL, f"MALL has the order {p.mall_status}")
            return None
        if p.mall_status != Status.SHIPPED:
            return None  # shipped has not landed on MALL yet: delivered must not go before it
        shipped_at = _parse(p.shipped_at) or _parse(p.snapshot_shipped)
        if shipped_at is None and p.shipped_at is None:  # "" = MALL was read and gives no shipped time
            shipped_at, p = self._read_shipped(p, result)
            if p is None:
                return None
        candidates = []
        if self.delivered_from_date and p.shop_delivered_at:
            candidates.append(Candidate("shop", _parse(p.shop_delivered_at), _parse(p.shop_first_attempt)))
        if p.carrier_outcome == "delivered" and p.carrier_delivered_at:
            candidates.append(Candidate(f"carrier {p.carrier}", _parse(p.carrier_delivered_at),
                                        _parse(p.carrier_first_attempt), p.carrier_date_only))
        candidates = [cd for cd in candidates if cd.delivered_at is not None]
        choice = choose_delivery(candidates, shipped_at=shipped_at, now=now)
        refused = "; ".join(choice.refused) or None
        if refused != p.refused:
            with self.ledger.write() as c:
                self.ledger.parcels.update(c, oid, refused=refused)
                if refused:
                    self.ledger.orders.add_event(c, oid, EventKind.DELIVERY_REFUSED, f"delivery time refused: {refused}")
            if refused:
                result.refused += 1
                log.warning("order %s: delivery time refused: %s", oid, refused, extra={"order_id": oid})
        if choice.delivered_at is not None:
            self._deliver(p, choice, result)
            return None
        if p.carrier_outcome == "returned":
            self._returned(p, result)
            return None
        age = now - shipped_at if shipped_at else timedelta(0)
        if age > timedelta(days=cfg.stuck_after_days):
            self._stuck(p, shipped_at, age, result)
        if age > timedelta(days=cfg.max_age_days):
            self._close(oid, ParcelState.EXPIRED, f"not delivered {cfg.max_age_days} days after shipping: no longer tracked")
            return None
        if not may_poll or not p.tracking_number or not cfg.active():
            return None
        carrier = p.carrier
        if carrier is None and p.carrier_by == "none":
            return None  # no tracker fits (recorded in last_error); chosen again when the feed's number or carrier changes
        if carrier is None:
            from carriers import registry

            carrier, how = choose_carrier(feed_carrier=p.feed_carrier, delivery_method=p.delivery_method,
                                          tracking_number=p.tracking_number, delivery_methods=cfg.delivery_methods,
                                          known=registry())
            with self.ledger.write() as c:
                self.ledger.parcels.update(c, oid, carrier=carrier, carrier_by=how if carrier else "none",
                                 last_error=None if carrier else how)
            if carrier is None:
                return None
        if carrier not in self.trackers:
            return None  # a known carrier without [carriers.<name>]: nothing to ask
        if p.polls >= cfg.max_calls_per_parcel:
            return None
        if p.next_poll_at is not None and p.next_poll_at > now.replace(tzinfo=None):
            return None
        return carrier, shipped_at

    def _read_shipped(self, p: ParcelRow, result: DeliveryResult):
        """MALL's `shipped` datetime is the lower bound of a plausible delivery: read the order once for it.
        A MALL error propagates to ``_contained`` (the policy: a 404 stops watching the order)."""
        order = self.client.get_order(p.mall_order_id)
        result.mall_reads += 1
        with self.ledger.write() as c:
            store_snapshot(self.ledger, c, order)
            shipped = mall_time(order.shipped) if order.shipped else ""
            self.ledger.parcels.update(c, p.mall_order_id, shipped_at=shipped)
            fresh = self.ledger.parcels.get(c, p.mall_order_id)
        if order.status != Status.SHIPPED or order.mdp:
            self._consider(fresh, self.clock(), result, may_poll=False)
            return None, None
        return _parse(shipped), fresh

    def _deliver(self, p: ParcelRow, choice: DeliveryChoice, result: DeliveryResult) -> None:
        oid = p.mall_order_id
        key = shop_change_key(oid, Status.DELIVERED.value)  # the same change a shop status 'delivered' makes
        payload = {"delivered_at": _p(choice.delivered_at), "source": choice.source}
        if choice.first_attempt is not None:
            payload["first_delivery_attempt"] = _p(choice.first_attempt)
        changes = self.ledger.changes
        with self.ledger.write() as c:
            existing = changes.by_key(c, key)
            if existing is None:
                cid = changes.insert(c, key=key, order_id=oid, origin=Origin.SHOP, kind=ChangeKind.STATUS,
                                     target_status=Status.DELIVERED.value, payload=payload)
                what = f"delivered at {payload['delivered_at']} (from the {choice.source}) → MALL delivered (change {cid})"
                result.delivered += 1
            else:
                cid = existing.id
                old = existing.payload.get("delivered_at")
                if existing.state in (ChangeState.SKIPPED, ChangeState.FAILED):
                    # Decided before shipped had landed (or refused): the order is shipped now, so try again.
                    changes.move(c, cid, existing.state, ChangeState.PENDING, attempts=0, payload=payload)
                    what = f"delivered at {payload['delivered_at']} (from the {choice.source}): change {cid} pending again"
                    result.delivered += 1
                elif existing.state == ChangeState.PENDING and existing.attempts == 0 and (
                        not old or payload["delivered_at"] < old):
                    changes.set_payload(c, existing, {**existing.payload, **payload})
                    what = f"earlier delivery time {payload['delivered_at']} (from the {choice.source}) for change {cid}"
                else:
                    what = f"delivered already on its way to MALL (change {cid}); {choice.source} agrees"
            self.ledger.parcels.update(c, oid, state=ParcelState.DELIVERED, change_id=cid)
            self.ledger.orders.add_event(c, oid, EventKind.DELIVERY, what)
            self.ledger.actions.close(c, oid, STUCK_KIND, "delivered")
        log.info("order %s: %s", oid, what, extra={"order_id": oid})

    def _returned(self, p: ParcelRow, result: DeliveryResult) -> None:
        oid = p.mall_order_id
        push = self.config.carriers.push_returned
        message = (f"Order {oid}: the carrier ({p.carrier}) reports parcel {p.tracking_number} returned to the "
                   f"sender ({p.carrier_detail}). MALL does not pay for undelivered goods. Check the goods when they "
                   "are back and contact the customer if needed; "
                   + ("the connector sets the order returned on MALL." if push else
                      "then set the order returned on MALL (or set [carriers] push_returned = true)."))
        with self.ledger.write() as c:
            self.ledger.actions.add(c, key=action_key(RETURNED_KIND, oid), order_id=oid, kind=RETURNED_KIND,
                                    message=message)
            if push:
                self.ledger.changes.insert(c, key=shop_change_key(oid, Status.RETURNED.value), order_id=oid,
                                           origin=Origin.SHOP, kind=ChangeKind.STATUS,
                                           target_status=Status.RETURNED.value, payload={"source": f"carrier {p.carrier}"})
            self.ledger.parcels.update(c, oid, state=ParcelState.RETURNED)
            self.ledger.orders.add_event(c, oid, EventKind.DELIVERY, f"carrier {p.carrier}: parcel returned to the sender")
        result.returned += 1
        log.warning("order %s: parcel returned to the sender (%s)", oid, p.carrier, extra={"order_id": oid})

    def _stuck(self, p: ParcelRow, shipped_at: datetime, age: timedelta, result: DeliveryResult) -> None:
        oid = p.mall_order_id
        parcel = f"parcel {p.tracking_number}" + (f" ({p.carrier})" if p.carrier else "") if p.tracking_number \
            else "the parcel (no tracking number known)"
        message = (f"MALL pays only after delivered: check the parcel of order {oid}. {parcel[0].upper() + parcel[1:]} "
                   f"was shipped {_p(shipped_at)} ({age.days} days ago) and is not delivered yet"
                   + (f"; last carrier status: {p.carrier_detail}" if p.carrier_detail else "")
                   + (f"; {p.refused}" if p.refused else "")
                   + ". If it was delivered, put delivered_at in the shop feed; if it is lost, claim it with the carrier.")
        key = action_key(STUCK_KIND, oid)
        with self.ledger.read() as c:  # raised once (open or done): no write transaction on every pass
            if self.ledger.actions.exists(c, key):
                return
        def add(c) -> None:
            if self.ledger.actions.add(c, key=key, order_id=oid, kind=STUCK_KIND, message=message):
                result.stuck += 1

        self._later(add)

    def _close(self, oid: int, state: ParcelState, note: str) -> None:
        """Stop watching the parcel."""
        self._later(lambda c: self._write_close(c, oid, state, note))

    def _later(self, write) -> None:
        """``write(c)`` now in its own transaction, or, within ``run``, with the pass's other closes and stuck
        actions in one transaction at its end: a ledger catching up on a year of old shipped orders writes a
        transaction per pass, not one per order. A write lost to a crash before then is decided again next pass."""
        if self._batch is not None:
            self._batch.append(write)
            return
        with self.ledger.write() as c:
            write(c)

    def _write_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch:
            with self.ledger.write() as c:
                for write in batch:
                    write(c)

    def _write_close(self, c, oid: int, state: ParcelState, note: str) -> None:
        self.ledger.parcels.update(c, oid, state=state, last_error=None)
        self.ledger.orders.add_event(c, oid, EventKind.DELIVERY, f"delivery no longer watched: {note}")
        if state == ParcelState.MALL:
            self.ledger.actions.close(c, oid, STUCK_KIND, note)

    # -- asking a carrier ------------------------------------------------------------------------
    def _poll(self, name: str, items: list, now: datetime, result: DeliveryResult) -> None:
        from carriers import CarrierError

        tracker = self.trackers[name]
        size = max(1, tracker.batch_size)
        for i in range(0, len(items), size):
            if self.should_stop():
                return
            chunk = items[i:i + size]
            numbers = [p.tracking_number for p, _ in chunk]
            before = tracker.calls
            try:
                answers = tracker.track(numbers)
            except CarrierError as e:
                answers = {n: e for n in numbers}
            except Exception as e:  # noqa: BLE001 - a tracker bug is contained to its parcels
                log.exception("carrier %s: tracker failed", name)
                answers = {n: CarrierError(name, "garbage", f"tracker failed ({type(e).__name__})") for n in numbers}
            result.calls += tracker.calls - before
            for p, shipped_at in chunk:
                self._contained(p, self._record_answer, name, p, shipped_at, answers.get(p.tracking_number), now,
                                result)

    def _record_answer(self, name: str, p: ParcelRow, shipped_at, answer, now: datetime,
                       result: DeliveryResult) -> None:
        from carriers import CarrierError, TrackResult

        cfg = self.config.carriers
        oid = p.mall_order_id
        naive_now = now.astimezone(timezone.utc).replace(tzinfo=None)
        result.polled += 1
        if answer is None:
            answer = CarrierError(name, "garbage", "the answer did not mention this parcel")
        if isinstance(answer, TrackResult):
            outcome = answer.outcome
            nxt = next_poll_at(shipped_at, now, cfg)
            values = dict(polls=p.polls + 1, failures=0, carrier_outcome=outcome, last_polled_at=naive_now,
                          next_poll_at=nxt.astimezone(timezone.utc).replace(tzinfo=None),
                          carrier_detail=answer.detail[:200] or None,
                          carrier_delivered_at=mall_time(answer.delivered_at),
                          carrier_first_attempt=mall_time(answer.first_attempt),
                          carrier_date_only=answer.date_only,
                          last_error="not found at the carrier (yet)" if outcome == "not_found" else None)
        else:
            outcome = f"error_{answer.kind}"
            result.failed_calls += 1
            nxt = next_poll_at(shipped_at, now, cfg, failures=p.failures + 1, retry_after_s=answer.retry_after_s)
            values = dict(polls=p.polls + 1, failures=p.failures + 1, last_polled_at=naive_now,
                          next_poll_at=nxt.astimezone(timezone.utc).replace(tzinfo=None),
                          last_error=redact(str(answer))[:1000])
            log.warning("order %s: carrier %s: %s; next try %s UTC", oid, name, redact(str(answer)),
                        values["next_poll_at"].strftime(FMT), extra={"order_id": oid})
        if self.metrics is not None and hasattr(self.metrics, "carrier_call"):
            self.metrics.carrier_call(name, outcome)
        with self.ledger.write() as c:
            self.ledger.parcels.update(c, oid, **values)
            if outcome in ("delivered", "returned"):
                self.ledger.orders.add_event(c, oid, EventKind.CARRIER,
                                             f"carrier {name}: {outcome} ({values.get('carrier_detail')})")
            fresh = self.ledger.parcels.get(c, oid)
        if fresh is not None and outcome in ("delivered", "returned"):
            self._consider(fresh, now, result, may_poll=False)
