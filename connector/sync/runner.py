"""Wiring: build the ledger, MALL client, shop adapter and mapping from a Config, and run passes.

Used by `sync-once`, the daemon's jobs and the demo, so all three do exactly the same work.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from connector.config import Config
from connector.ledger import Ledger, open_ledger
from connector.ledger.types import ChangeState
from connector.mapping import Mapping, load_mapping
from connector.sync.inbound import InboundResult, InboundSync
from connector.sync.outbound import OutboundSync, PollResult, PushResult

log = logging.getLogger("mall_connector.sync")

EXIT_OK = 0
EXIT_FAILED = 2
EXIT_RETRY_WAITING = 75  # EX_TEMPFAIL: try again later


class MappingHolder:
    """The mapping in force; swapped atomically on reload, and only for a valid new file."""

    def __init__(self, mapping: Mapping):
        self._mapping = mapping
        self._lock = threading.Lock()

    def __call__(self) -> Mapping:
        return self._mapping

    def replace(self, mapping: Mapping) -> None:
        with self._lock:
            self._mapping = mapping


def make_client(config: Config, on_response=None):
    """The MALL client for a config; ``on_response(endpoint, status_code)`` sees every call (metrics, alerts).

    Its transport paces the calls by MALL's X-RateLimit-Remaining/Reset headers (see sync/ratelimit.py)."""
    from connector.mall.client import MallClient
    from connector.sync.ratelimit import paced_transport

    return MallClient(config.mall.base_url, config.client_id, timeout_s=config.mall.timeout_s,
                      on_response=on_response, transport=paced_transport(config.mall.base_url))


class Services:
    """Everything one process needs to sync; build once, close at the end."""

    def __init__(self, config: Config, *, metrics=None, client=None, adapter=None, ledger: Ledger | None = None,
                 on_response=None):
        from adapters import make_adapter

        self.config = config
        self.metrics = metrics
        self.mapping = MappingHolder(load_mapping(config.mapping_path))
        self.ledger = ledger or open_ledger(config.ledger.url)
        if on_response is None and metrics is not None:
            on_response = metrics.mall_call
        self.client = client or make_client(config, on_response)
        self.adapter = adapter or make_adapter(config)
        common = dict(ledger=self.ledger, client=self.client, adapter=self.adapter, mapping=self.mapping,
                      config=config, metrics=metrics)
        self.outbound = OutboundSync(**common)
        self.inbound = InboundSync(**common)
        if metrics is not None and hasattr(metrics, "bind_ledger"):
            metrics.bind_ledger(self.ledger)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.ledger.close()


@dataclass
class SyncSummary:
    poll: PollResult = field(default_factory=PollResult)
    push: PushResult = field(default_factory=PushResult)
    inbound: InboundResult = field(default_factory=InboundResult)
    failed_total: int = 0
    waiting_retry: int = 0

    @property
    def exit_code(self) -> int:
        if self.failed_total:
            return EXIT_FAILED
        if self.waiting_retry:
            return EXIT_RETRY_WAITING
        return EXIT_OK

    def lines(self) -> list[str]:
        p, u, i = self.poll, self.push, self.inbound
        out = []
        if p.unavailable:
            out.append(f"shop feed: UNREADABLE: {p.unavailable}")
        elif p.not_ready:
            out.append("shop feed: not settled yet (left for the next poll)")
        elif p.unchanged:
            out.append("shop feed: unchanged since the last poll")
        else:
            out.append(f"shop feed: {p.rows} order(s), {p.changed_rows} changed, {p.new_changes} new change(s), "
                       f"{p.unmapped} unmapped, {len(p.problems)} bad row(s)")
        for prob in p.problems:
            out.append(f"  bad row: {prob}")
        out.append(f"to MALL: {u.pushed} pushed, {u.skipped} skipped, {u.done_by_reread} found already done, "
                   f"{u.failed} failed, {u.retry} to retry")
        out.append(f"from MALL: {i.swept} queued by the sweep, {i.fetched} read, {i.new_orders} new order(s), "
                   f"{i.mall_changes} MALL-side change(s), {i.handed} handed to the shop, {i.confirmed} confirmed, "
                   f"{i.dropped} unknown id(s) dropped")
        if i.sweep_failed:
            out.append(f"sweep: {i.sweep_failed}")
        out.append(f"ledger: {self.failed_total} failed change(s), {self.waiting_retry} waiting for a retry")
        return out


def sync_once(services: Services, *, retry_now: bool = False, wait_for_settle: bool = True,
              sweep: bool = True) -> SyncSummary:
    """One poll and push pass, then the inbound pipeline (sweep, inbox, hand-off, confirm)."""
    summary = SyncSummary()
    summary.poll = services.outbound.poll_shop(wait_for_settle=wait_for_settle)
    summary.push = services.outbound.push_due(include_not_due=retry_now)
    if sweep:
        services.inbound.sweep(summary.inbound)
    services.inbound.run(summary.inbound, retry_now=retry_now)
    S = ChangeState
    counts = services.ledger.changes.count(states=(S.FAILED, S.RETRY, S.SENDING))  # not a count of the whole table
    summary.failed_total = counts.get(S.FAILED, 0) + services.ledger.quarantined_count()
    summary.waiting_retry = counts.get(S.RETRY, 0) + counts.get(S.SENDING, 0)
    return summary
