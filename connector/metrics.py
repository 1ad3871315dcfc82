"""Prometheus metrics of one connector process.

Each ``Metrics`` owns its own ``CollectorRegistry`` (not the global one), so tests and several app
instances in one process never collide. Ledger-backed gauges are read at scrape time, so they are
right even when another process (a CLI command) changed the ledger.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# The `*_created` series double the output and mean nothing for a daemon's counters.
disable_created_metrics()

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
REJECT_REASONS = ("not_found", "throttled", "too_large", "bad_body", "method", "ledger_error")
PUSH_OUTCOMES = ("done", "skipped", "failed", "retry", "unknown")
_ID_SEGMENT = re.compile(r"/\d+(?=/|$)")


def endpoint_label(endpoint: str) -> str:
    """``/v1/orders/123456`` -> ``/v1/orders/{id}``: one series per endpoint, not per order."""
    return _ID_SEGMENT.sub("/{id}", endpoint.split("?", 1)[0]) or "/"


class _LedgerGauges:
    """Custom collector: inbox depth, failed changes and open actions from one ``ledger.health()``."""

    def __init__(self) -> None:
        self.ledger: Any = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.ledger is None:
            return
        try:
            h = self.ledger.health()
        except Exception as e:  # a scrape must never fail because the ledger is busy or gone
            log.warning("metrics: cannot read the ledger: %s", e)
            return
        for name, key, doc in (
            ("mall_connector_inbox_depth", "inbox_depth", "Order ids waiting in the inbox."),
            ("mall_connector_failed_changes", "failed_changes", "Changes that failed for good."),
            ("mall_connector_open_actions", "open_actions", "Needs-action items not yet done."),
        ):
            yield GaugeMetricFamily(name, doc, value=float(h.get(key, 0)))


class _QuotaGauges:
    """issue 17: MALL's rate-limit windows and remaining budget, from the bound MallClient's last reading."""

    def __init__(self) -> None:
        self.client: Any = None
        self.reserve_share = 0.0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        reading = getattr(self.client, "quota_reading", None)
        if not callable(reading):
            return
        try:
            q = reading()
        except Exception as e:  # a scrape must never fail
            log.warning("metrics: cannot read MALL's quota: %s", e)
            return
        limit = GaugeMetricFamily("mall_connector_mall_ratelimit_limit",
                                  "MALL's call limit per window (X-RateLimit-Limit), as last told.", labels=["window"])
        for w in q.windows:
            limit.add_metric([w.name], float(w.limit))
        yield limit
        remaining = GaugeMetricFamily(
            "mall_connector_mall_ratelimit_remaining",
            "Calls left (X-RateLimit-Remaining: the smallest of all windows), labelled with that window.",
            labels=["window"])
        if q.remaining is not None:
            remaining.add_metric([q.window or "unknown"], float(q.remaining))
        yield remaining
        if q.reset_s is not None:
            yield GaugeMetricFamily("mall_connector_mall_ratelimit_reset_seconds",
                                    "Seconds until that window resets (X-RateLimit-Reset).", value=q.reset_s)
        if q.day_remaining is not None:
            yield GaugeMetricFamily("mall_connector_mall_ratelimit_day_remaining",
                                    "Calls left in the day window.", value=float(q.day_remaining))
        reserve = bool(q.day_limit and q.day_remaining is not None and self.reserve_share > 0
                       and q.day_remaining < self.reserve_share * q.day_limit)
        yield GaugeMetricFamily("mall_connector_mall_quota_reserve",
                                "1 while the daily budget is below [mall] reserve_share: optional calls wait.",
                                value=1.0 if reserve else 0.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.webhooks_received = Counter(
            "mall_connector_webhooks_received_total", "Requests to the webhook path (any outcome).", registry=r)
        self.webhooks_rejected = Counter(
            "mall_connector_webhooks_rejected_total", "Webhook requests not accepted, by reason.", ["reason"],
            registry=r)
        self.webhook_ids = Counter("mall_connector_webhook_ids_total", "Order ids in accepted webhooks.", registry=r)
        self.pushes = Counter("mall_connector_pushes_total", "Status pushes to MALL, by outcome.", ["outcome"],
                              registry=r)
        self.mall_calls = Counter("mall_connector_mall_calls_total", "MALL API responses.", ["endpoint", "code"],
                                  registry=r)
        self.handoffs = Counter("mall_connector_handoffs_total", "Batches handed to the shop.", ["kind"], registry=r)
        self.last_success = Gauge("mall_connector_last_success_timestamp_seconds",
                                  "Unix time of the last successful run of a job.", ["job"], registry=r)
        self.carrier_calls = Counter(  # issue 15: one per parcel asked, by carrier and outcome
            "mall_connector_carrier_calls_total", "Carrier tracking answers per parcel, by carrier and outcome.",
            ["carrier", "outcome"], registry=r)
        # Known label values start at 0, so rate() and alerts work before the first event.
        for reason in REJECT_REASONS:
            self.webhooks_rejected.labels(reason)
        for outcome in PUSH_OUTCOMES:
            self.pushes.labels(outcome)
        self._ledger_gauges = _LedgerGauges()
        r.register(self._ledger_gauges)
        # Connections the receiver closed to protect itself (issue 16): over max_connections_per_address,
        # or a request not complete within request_timeout_s.
        self.receiver_closed = Counter(
            "mall_connector_receiver_connections_closed_total",
            "Receiver connections closed by its limits, by reason.", ["reason"], registry=r)
        for reason in ("per_address", "request_timeout"):
            self.receiver_closed.labels(reason)
        from connector.carrier_checks import ParcelGauges  # issue 15

        r.register(ParcelGauges(self))
        self._quota_gauges = _QuotaGauges()  # issue 17
        r.register(self._quota_gauges)

    def bind_client(self, client: Any, reserve_share: float = 0.0) -> None:
        """issue 17: export the MALL client's rate-limit reading at each scrape."""
        self._quota_gauges.client = client
        self._quota_gauges.reserve_share = reserve_share

    @property
    def ledger(self) -> Any:
        return self._ledger_gauges.ledger

    def bind_ledger(self, ledger: Any) -> None:
        """Read inbox depth, failed changes and open actions from ``ledger.health()`` at each scrape."""
        self._ledger_gauges.ledger = ledger

    # -- hooks ------------------------------------------------------------------------------
    def webhook_received(self) -> None:
        self.webhooks_received.inc()

    def webhook_rejected(self, reason: str) -> None:
        self.webhooks_rejected.labels(reason).inc()

    def webhook_accepted(self, n_ids: int) -> None:
        self.webhook_ids.inc(n_ids)

    def mall_call(self, endpoint: str, code: int) -> None:
        """MallClient's ``on_response`` hook. Order ids in the path are folded into ``{id}``."""
        self.mall_calls.labels(endpoint_label(endpoint), str(code)).inc()

    def carrier_call(self, carrier: str, outcome: str) -> None:
        """The delivery job asked ``carrier`` about one parcel: delivered, returned, in_transit, not_found, error_*."""
        self.carrier_calls.labels(carrier, outcome).inc()

    def push(self, outcome: str) -> None:
        self.pushes.labels(outcome).inc()

    def handoff(self, kind: str) -> None:
        self.handoffs.labels(kind).inc()

    def job_ok(self, job: str, at: float | None = None) -> None:
        self.last_success.labels(job).set(time.time() if at is None else at)

    def receiver_connection_closed(self, reason: str) -> None:
        self.receiver_closed.labels(reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
