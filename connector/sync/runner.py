"""Wiring: build the ledger, MALL client, shop adapter and mapping from a Config, and run passes.

Used by `sync-once`, the daemon's jobs and the demo, so all three do exactly the same work.
"""

from __future__ import annotations

import dataclasses
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
EXIT_FEED_UNUSABLE = 65  # EX_DATAERR: the feed was read but is unusable (issue 14)
EXIT_FEED_UNREADABLE = 66  # EX_NOINPUT: the feed is missing or cannot be read (issue 14)


class MappingHolder:
    """The mapping in force; swapped atomically on reload, and only for a valid new file.

    Calling it gives ``[shop] mapping``; ``for_account(name)`` gives an account's own mapping (issue 18,
    ``[accounts.<name>] mapping``), else the shared one."""

    def __init__(self, mapping: Mapping, accounts: dict[str, Mapping] | None = None):
        self._mapping = mapping
        self._accounts = dict(accounts or {})
        self._lock = threading.Lock()

    def __call__(self) -> Mapping:
        return self._mapping

    def for_account(self, account: str | None) -> Mapping:
        return self._accounts.get(account, self._mapping) if account else self._mapping

    @property
    def accounts(self) -> dict[str, Mapping]:
        """The accounts with a mapping of their own (issue 18)."""
        return dict(self._accounts)

    def replace(self, mapping: Mapping, accounts: dict[str, Mapping] | None = None) -> None:
        with self._lock:
            self._mapping = mapping
            if accounts is not None:
                self._accounts = dict(accounts)


def load_account_mappings(config: Config) -> dict[str, Mapping]:
    """issue 18: each ``[accounts.<name>] mapping``, validated like ``[shop] mapping`` (MappingError names the
    file, line and key)."""
    return {name: load_mapping(path) for name, path in config.account_mapping_paths().items()}


def make_client(config: Config, on_response=None, *, client_id: str | None = None):
    """The MALL client for a config; ``on_response(endpoint, status_code)`` sees every call (metrics, alerts).
    ``client_id``: one account's (issue 18, connector/accounts.py); else the config's single one.

    Its transport paces the calls by MALL's X-RateLimit-Remaining/Reset headers (see sync/ratelimit.py)."""
    from connector.mall.client import MallClient
    from connector.sync.ratelimit import paced_transport

    return MallClient(config.mall.base_url, client_id or config.client_id, timeout_s=config.mall.timeout_s,
                      on_response=on_response, transport=paced_transport(config.mall.base_url),
                      max_response_bytes=config.mall.max_response_bytes, deadline_s=config.mall.deadline_s,
                      max_pages=config.mall.max_pages, calls_tz=config.shop.timezone)


class Services:
    """Everything one process needs to sync; build once, close at the end."""

    def __init__(self, config: Config, *, metrics=None, client=None, adapter=None, ledger: Ledger | None = None,
                 on_response=None, on_account_response=None, account: str | None = None):
        from adapters import make_adapter

        self.config = config
        self.metrics = metrics
        #: issue 18 (`sync-once --account`): only this account's sweep, push and inbound passes.
        self.only_account = account if config.accounts else None
        self.mapping = MappingHolder(load_mapping(config.mapping_path), load_account_mappings(config))
        self.ledger = ledger or open_ledger(config.ledger.url)
        if on_response is None and metrics is not None:
            on_response = metrics.mall_call
        if client is None and config.accounts:  # issue 18: one MallClient per account, routed by order
            client = make_router(config, self.ledger, on_response, on_account_response)
            client.sweep_only = self.only_account
        self.client = client or make_client(config, on_response)
        self.adapter = adapter or make_adapter(config)
        common = dict(ledger=self.ledger, client=self.client, adapter=self.adapter, mapping=self.mapping,
                      config=config, metrics=metrics)
        self.outbound = OutboundSync(**common)
        self.inbound = InboundSync(**common)
        from connector.sync.delivery import DeliveryJob  # issue 15: delivered from shop dates and carriers

        self.delivery = DeliveryJob(ledger=self.ledger, client=self.client, config=config, mapping=self.mapping,
                                    metrics=metrics)
        if metrics is not None and hasattr(metrics, "bind_ledger"):
            metrics.bind_ledger(self.ledger)
        if metrics is not None and hasattr(metrics, "bind_client"):  # issue 17: MALL's rate-limit windows
            metrics.bind_client(self.client, config.mall.reserve_share)

    def flush_calls(self) -> int:
        """issue 17: the MALL calls counted since the last flush go to the ledger (`mall-connector stats`)."""
        from connector.sync.ratelimit import flush_calls

        clients = getattr(self.client, "clients", None)  # issue 18: one client per account, counted as its own
        if isinstance(clients, dict):
            return sum(flush_calls(self.ledger, client, account=name) for name, client in clients.items())
        return flush_calls(self.ledger, self.client)

    def push_due(self, *, include_not_due: bool = False) -> PushResult:
        """The push pass; with several accounts one pass per account (and one for orders whose account is not
        known yet), so an account MALL rejects (401/403) never holds up the others' pushes."""
        if not self.config.accounts:
            return self.outbound.push_due(include_not_due=include_not_due)
        total = PushResult()
        for part in self._per_account(self.outbound, lambda: self.outbound.push_due(include_not_due=include_not_due)):
            for f in dataclasses.fields(PushResult):
                setattr(total, f.name, getattr(total, f.name) + getattr(part, f.name))
        return total

    def run_inbound(self, result: InboundResult | None = None, *, retry_now: bool = False) -> InboundResult:
        """The inbound pass (inbox, hand-off, confirm); with several accounts one pass per account, like
        ``push_due``, so an account MALL rejects never holds up the others."""
        result = result or InboundResult()
        if not self.config.accounts:
            return self.inbound.run(result, retry_now=retry_now)
        self._per_account(self.inbound, lambda: self.inbound.run(result, retry_now=retry_now))
        return result

    def _per_account(self, engine, work) -> list:
        from connector.config import DEFAULT_ACCOUNT
        from connector.mall.errors import MallForbidden, MallUnauthorized

        # The rows of orders whose account is not known yet go last: that pass also takes the rows the accounts'
        # passes just made (they are stamped with their account after the last pass).
        names = [self.only_account] if self.only_account else [*self.config.accounts, DEFAULT_ACCOUNT]
        done, rejected = [], []
        self.stamp_accounts()
        try:
            for name in names:
                engine.account = name
                try:
                    done.append(work())
                except (MallUnauthorized, MallForbidden) as e:
                    log.error("MALL rejects account %r (%s): its work waits; the other accounts go on", name,
                              e.status_code)
                    rejected.append(e)
        finally:
            engine.account = None
            self.stamp_accounts()
        if rejected and len(rejected) == len(names):
            raise rejected[0]
        return done

    def stamp_accounts(self) -> None:
        """issue 18: fill in the account of rows made in this pass for orders whose account is known now."""
        if self.config.accounts:
            with self.ledger.write() as c:
                self.ledger.accounts.stamp(c)

    def close(self) -> None:
        try:
            self.flush_calls()
            self.delivery.close()
            self.client.close()
        finally:
            self.ledger.close()


def make_router(config: Config, ledger: Ledger, on_response=None, on_account_response=None):
    """issue 18: an AccountRouter over one MallClient per ``[accounts.<name>]`` (each its own pacing and quota).
    ``on_account_response(account, endpoint, status_code)`` sees every call with its account."""
    from connector.accounts import AccountRouter, accounts

    def hook(name: str):
        if on_account_response is not None:
            return lambda endpoint, code: on_account_response(name, endpoint, code)
        return on_response

    clients = {a.name: make_client(config, hook(a.name), client_id=a.client_id) for a in accounts(config)}
    return AccountRouter(ledger, clients, include_test={a.name: a.include_test_orders for a in accounts(config)})


@dataclass
class SyncSummary:
    poll: PollResult = field(default_factory=PollResult)
    push: PushResult = field(default_factory=PushResult)
    inbound: InboundResult = field(default_factory=InboundResult)
    delivery: object = None  # connector.sync.delivery.DeliveryResult (issue 15)
    failed_total: int = 0
    waiting_retry: int = 0

    @property
    def exit_code(self) -> int:
        # A broken feed comes first: a cron job must notice it even when nothing else is wrong.
        if self.poll.feed_status == "unreadable":
            return EXIT_FEED_UNREADABLE
        if self.poll.feed_status == "unusable":
            return EXIT_FEED_UNUSABLE
        if self.failed_total:
            return EXIT_FAILED
        if self.waiting_retry:
            return EXIT_RETRY_WAITING
        return EXIT_OK

    def lines(self) -> list[str]:
        p, u, i = self.poll, self.push, self.inbound
        out = []
        if p.unavailable:
            out.append(f"shop feed: {'UNUSABLE' if p.feed_status == 'unusable' else 'UNREADABLE'}: {p.unavailable}")
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
        if getattr(u, "labels_calls", 0) or getattr(u, "labels_made", 0) or getattr(u, "serials_sent", 0):
            out.append(f"MALL Delivery: labels for {u.labels_made} order(s) in {u.labels_calls} request(s); "
                       f"serial numbers of {u.serials_sent} item(s) sent")
        out.append(f"from MALL: {i.swept} queued by the sweep, {i.fetched} read, {i.new_orders} new order(s), "
                   f"{i.mall_changes} MALL-side change(s), {i.handed} handed to the shop, {i.confirmed} confirmed, "
                   f"{i.dropped} unknown id(s) dropped")
        if i.sweep_failed:
            out.append(f"sweep: {i.sweep_failed}")
        if self.delivery is not None:  # issue 15
            d = self.delivery
            out.append(f"deliveries: {d.watched} watched, {d.delivered} delivered change(s), {d.returned} returned, "
                       f"{d.polled} parcel(s) asked ({d.calls} carrier call(s), {d.failed_calls} failed), "
                       f"{d.refused} time(s) refused, {d.stuck} newly stuck")
        out.append(f"ledger: {self.failed_total} failed change(s), {self.waiting_retry} waiting for a retry")
        return out


def sync_once(services: Services, *, retry_now: bool = False, wait_for_settle: bool = True,
              sweep: bool = True) -> SyncSummary:
    """One poll and push pass, then the inbound pipeline (sweep, inbox, hand-off, confirm)."""
    summary = SyncSummary()
    replay_remapped(services)
    summary.poll = services.outbound.poll_shop(wait_for_settle=wait_for_settle)
    _feed_state_when_unchanged(services, summary.poll)
    summary.push = services.push_due(include_not_due=retry_now)
    summary.delivery = services.delivery.run()  # issue 15: then push the delivered changes it made
    if summary.delivery.delivered or summary.delivery.returned:
        more = services.push_due(include_not_due=retry_now)
        for name in ("pushed", "skipped", "failed", "retry", "done_by_reread", "reads", "list_reads"):
            setattr(summary.push, name, getattr(summary.push, name) + getattr(more, name))
    if sweep:
        services.inbound.sweep(summary.inbound)
    services.run_inbound(summary.inbound, retry_now=retry_now)
    _close_needs_action_by_evidence(services)
    services.stamp_accounts()  # issue 18
    S = ChangeState
    counts = services.ledger.changes.count(states=(S.FAILED, S.RETRY, S.SENDING))  # not a count of the whole table
    summary.failed_total = counts.get(S.FAILED, 0) + services.ledger.quarantined_count()
    summary.waiting_retry = counts.get(S.RETRY, 0) + counts.get(S.SENDING, 0)
    services.flush_calls()  # issue 17: one transaction per pass for the call counts
    return summary


def _feed_state_when_unchanged(services: Services, poll: PollResult) -> None:
    """issue 14: an unchanged feed keeps the verdict of its last read (an empty feed stays exit 65)."""
    if not poll.unchanged or poll.unavailable:
        return
    from connector.ledger import alerting

    state = alerting.read_feed_state(services.ledger)
    if state.state == alerting.FEED_UNUSABLE:
        poll.feed_status, poll.unavailable = state.state, state.message


def _close_needs_action_by_evidence(services: Services) -> None:
    """issue 14: needs-action items whose evidence appeared in this pass close themselves."""
    from connector.ledger.needs_action import close_by_evidence

    for item_id, note in close_by_evidence(services.ledger, services.mapping()):
        log.info("needs-action item %s %s", item_id, note)


def replay_remapped(services: Services) -> None:
    """issue 14: orders held by a status the mapping now maps are looked at again by the next poll."""
    from connector.ledger.alerting import replay_remapped as replay

    ids = replay(services.ledger, services.mapping())
    if ids:
        log.info("%d order(s) had a shop status the mapping now maps: their feed rows are read again", len(ids))
