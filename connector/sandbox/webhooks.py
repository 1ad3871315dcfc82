"""MALL's order webhook, imitated: batches of changed order ids POSTed to the partner's URL.

MALL sends a JSON array of order ids at most once a minute (mall-api.md §6); here the interval is a
parameter so tests can use 0.1 s. Only MALL-side changes are queued (those that reset ``confirmed``).

MALL's behaviour when the receiver fails is undocumented, so a failed batch (non-2xx, connection
error, timeout) is logged in the WebhookLog and NOT retried: the connector's periodic
``/v1/orders/unconfirmed`` sweep is the safety net, and the sandbox must not hide its absence.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from typing import Any, Callable

import httpx

from connector.logs import redact
from connector.sandbox.faults import Faults
from connector.sandbox.requestlog import SeqLog
from connector.sandbox.state import OrderStore

log = logging.getLogger("mall_connector.sandbox.webhooks")


@dataclass(frozen=True)
class WebhookDelivery:
    seq: int
    ts: float
    url: str  # redacted (tokens in the URL path are masked)
    ids: list[int]
    outcome: str  # "delivered" | "failed" | "dropped" (the drop fault: never sent)
    status_code: int | None
    error: str | None
    duplicate: bool  # the second copy sent by the duplicate fault

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class WebhookLog(SeqLog[WebhookDelivery]):
    """Thread-safe list of webhook deliveries, like the portal's delivery log (kept longer than 60)."""

    def __init__(self, maxlen: int = 10_000):
        super().__init__(WebhookDelivery, maxlen)

    def delivered(self) -> list[WebhookDelivery]:
        return [e for e in self.entries() if e.outcome == "delivered"]

    def failed(self) -> list[WebhookDelivery]:
        return [e for e in self.entries() if e.outcome == "failed"]



class WebhookSender:
    """Background thread: every ``interval_s``, POST the ids changed meanwhile (if any) to ``url``.

    With no URL set, changes are drained and dropped, as MALL sends nothing without a configured webhook.
    """

    def __init__(self, store: OrderStore, faults: Callable[[], Faults], webhook_log: WebhookLog,
                 url: str | None = None, interval_s: float = 60.0, timeout_s: float = 5.0):
        if interval_s <= 0:
            raise ValueError("webhook interval must be positive")
        self.store = store
        self.url = url
        self.interval_s = interval_s
        self._faults = faults
        self._log = webhook_log
        self._timeout_s = timeout_s
        self._stop = threading.Event()
        self._send_lock = threading.Lock()  # one batch at a time, loop or flush
        self._thread: threading.Thread | None = None
        self._http: httpx.Client | None = None  # one pooled client: building one costs ~50 ms

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._send_lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the sender must outlive one bad batch
                log.exception("webhook batch failed")

    def flush(self) -> list[int]:
        """Send the pending batch now (also used by the timer); the ids sent, [] when nothing was pending."""
        with self._send_lock:
            ids = self.store.drain_changed()
            url = self.url
            if not ids or not url:
                return []
            faults = self._faults()
            if faults.webhook_delay_s and self._stop.wait(faults.webhook_delay_s):
                return []
            if faults.roll(faults.webhook_drop_rate):
                self._log.record(url=redact(url), ids=ids, outcome="dropped", status_code=None, error=None,
                                 duplicate=False)
                return ids
            copies = 2 if faults.roll(faults.webhook_duplicate_rate) else 1
            for n in range(copies):
                self._post(url, ids, duplicate=n > 0)
            return ids

    def _post(self, url: str, ids: list[int], *, duplicate: bool) -> None:
        status_code, error = None, None
        try:
            if self._http is None:
                self._http = httpx.Client(timeout=self._timeout_s, follow_redirects=False)
            response = self._http.post(url, content=json.dumps(ids), headers={"Content-Type": "application/json"})
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except httpx.HTTPError as e:
            error = redact(f"{type(e).__name__}: {e}")
        outcome = "delivered" if error is None else "failed"
        self._log.record(url=redact(url), ids=ids, outcome=outcome, status_code=status_code, error=error,
                         duplicate=duplicate)
        if error:
            log.warning("webhook to %s failed (%s); not retried", redact(url), error)
