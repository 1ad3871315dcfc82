"""What the sync engines share: time formats, fingerprints, and the Engine base that carries out
the error policy's outcomes (connector/sync/policy.py) and calls the hooks."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable
from zoneinfo import ZoneInfo

PRAGUE = ZoneInfo("Europe/Prague")  # MALL's datetimes carry no offset and are Prague local time

log = logging.getLogger("mall_connector.sync")


def mall_time(dt: datetime | None) -> str | None:
    """An aware datetime in MALL's wire format: ``YYYY-MM-DD HH:MM:SS`` Prague local time."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=PRAGUE)
    return dt.astimezone(PRAGUE).strftime("%Y-%m-%d %H:%M:%S")


def fingerprint(values: dict) -> str:
    """A stable digest of a shop row, to tell 'same as last seen' without keeping the row."""
    raw = json.dumps(values, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


@dataclass
class Hooks:
    """Where other parts hook into the engines. Each callback runs after the step is committed, outside any
    ledger transaction; an exception in one is logged and never affects the sync.

    * ``after_push(change, body)``: MALL accepted a status PUT (e.g. ask for labels after ``shipping``);
    * ``after_handoff(change, record)``: a MALL order or change reached the shop's outbox;
    * ``after_quarantine(item)``: an item (a ``FailedItem``) was quarantined after ``[sync] max_attempts``.

    New outbound work (e.g. a carrier's ``delivered``) needs no hook: insert a shop-origin change with
    ``ledger.changes.insert(c, key=shop_change_key(order, "delivered"), ...)`` and the next push pass takes it.
    """

    after_push: list[Callable] = field(default_factory=list)
    after_handoff: list[Callable] = field(default_factory=list)
    after_quarantine: list[Callable] = field(default_factory=list)

    def call(self, name: str, *args) -> None:
        for fn in getattr(self, name):
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - a hook must never break the sync
                log.exception("hook %s %r failed", name, fn)


class Engine:
    """What the outbound and inbound engines share: their collaborators, the mapping in force, the policy."""

    def __init__(self, *, ledger, client, adapter, mapping, config, metrics=None, hooks: Hooks | None = None):
        self.ledger = ledger
        self.client = client
        self.adapter = adapter
        self._mapping = mapping  # a Mapping, or a callable returning the one in force (reload swaps it)
        self.config = config
        self.metrics = metrics
        self.hooks = hooks or Hooks()
        #: issue 18: when set, a pass takes only this MALL account's items (Services runs one pass per account).
        self.account: str | None = None
        #: Called between items: returns True when the process is stopping (and proves progress to the watchdog).
        self.should_stop: Callable[[], bool] = lambda: False

    @property
    def mapping(self):
        """The mapping in force; in a pass of one account (issue 18) that account's own ([accounts.<name>] mapping)."""
        holder = self._mapping
        if self.account and hasattr(holder, "for_account"):
            return holder.for_account(self.account)
        return holder() if callable(holder) else holder

    # -- carrying out the error policy ------------------------------------------------------------
    def outcome(self, op, error: BaseException, *, first_try: bool = False):
        """The policy's outcome for ``error`` in ``op``; a STOP outcome re-raises ``error`` (401/403: the job
        ends and the daemon alerts), everything else is returned for the engine to record on the item."""
        from connector.sync.policy import Kind, outcome_for

        outcome = outcome_for(op, error, first_try=first_try)
        if outcome.kind == Kind.STOP:
            raise error
        module = type(error).__module__.split(".")[0]
        if module not in ("connector", "adapters", "pydantic", "pydantic_core"):
            # Not one of ours: keep the traceback in the log for whoever fixes it (the item keeps the message).
            # Not for a model's validation error: its text holds the input values (customer data).
            log.warning("%s: unexpected %s", op, type(error).__name__, exc_info=error)
        return outcome

    def disposition(self, outcome, attempts: int):
        from connector.sync.policy import after_failure

        cfg = self.config.sync
        return after_failure(outcome, attempts, max_attempts=cfg.max_attempts, retry_base_s=cfg.retry_base_s,
                             retry_max_s=cfg.retry_max_s)

    def quarantined(self, kind, item_id: int) -> None:
        """Tell the hooks an item was quarantined (the alert itself comes from the daemon's evaluate_alerts)."""
        if self.hooks.after_quarantine:
            for item in self.ledger.failed_items():
                if item.kind == kind and item.id == item_id:
                    self.hooks.call("after_quarantine", item)
