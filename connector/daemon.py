"""`mall-connector run`: one process with the scheduler (APScheduler 3, BackgroundScheduler) and the
webhook receiver (waitress).

Jobs share one worker thread, so sync passes never overlap (exactly-once reasoning stays simple);
the receiver answers webhooks on its own threads meanwhile. All durable state is in the ledger:
no pickled job store, jobs are (re)added by id at start and on reload.

Signals: SIGTERM/SIGINT stop taking work, let the in-flight item finish (bounded by
STOP_TIMEOUT_S) and exit 0. SIGHUP re-reads config and mapping and swaps them only when both are
valid. systemd: READY=1 after start, WATCHDOG=1 while jobs make progress, STOPPING=1.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import stat
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from connector import notify
from connector.config import Config, ConfigError, load_config
from connector.logs import register_secret
from connector.ledger.types import ChangeState, ItemKind
from connector.mall.errors import MallError, MallForbidden, MallUnauthorized
from connector.mapping import load_mapping
from connector.sync.runner import Services

log = logging.getLogger("mall_connector.daemon")

STOP_TIMEOUT_S = 30.0


class Daemon:
    def __init__(self, config: Config, *, config_path: str | None = None):
        from connector.alerts import Alerter
        from connector.metrics import Metrics

        self.config = config
        self.config_path = config_path or (str(config.source_path) if config.source_path else None)
        self.instance_id = secrets.token_hex(8)
        self.metrics = Metrics()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._last_progress = time.monotonic()
        self._first_429: float | None = None
        self._unauthorized = False
        self._forbidden = False
        self.services = Services(config, metrics=self.metrics, on_response=self._on_mall_response)
        self.ledger = self.services.ledger
        self.alerter = Alerter(config.alerts, self.ledger)
        for engine in (self.services.outbound, self.services.inbound):
            engine.should_stop = self._tick
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=timezone.utc,
        )
        self.receiver = None

    # -- wiring -------------------------------------------------------------------------------
    def _on_mall_response(self, endpoint: str, code: int) -> None:
        """Count MALL calls for metrics and notice persistent 429s and 401s for alerts."""
        self.metrics.mall_call(endpoint, code)
        if code == 429:
            self._first_429 = self._first_429 or time.monotonic()
        elif 200 <= code < 300:
            self._first_429 = None
            self._unauthorized = False
            self._forbidden = False
        elif code == 401:
            self._unauthorized = True

    def _tick(self) -> bool:
        """Called between work items: proves progress to the watchdog; True when stopping."""
        self._last_progress = time.monotonic()
        return self._stop.is_set()

    def readiness(self) -> tuple[bool, dict]:
        jobs = self.ledger.kv.job_ok_times()
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        limit = timedelta(seconds=max(3 * self.config.sync.poll_interval_s, 60))
        started = getattr(self, "_started_at", now)
        recent = {name: (now - at) <= limit for name, at in jobs.items()}
        ready = recent.get("poll", False) or (now - started) <= limit
        return ready and not self._unauthorized, {"recent_jobs": recent, "mall_unauthorized": self._unauthorized}

    # -- jobs ---------------------------------------------------------------------------------
    def _job(self, name: str, fn) -> None:
        if self._stop.is_set():
            return
        self._tick()
        try:
            fn()
        except MallUnauthorized:
            self._unauthorized = True
            log.error("MALL rejected the client_id (401): check [mall] client_id; job %s will try again", name)
        except MallForbidden as e:
            self._forbidden = True
            log.error("MALL refuses this account (403) in job %s: %s", name, e)
        except MallError as e:
            log.warning("job %s: MALL call failed: %s", name, e)
        except Exception:  # noqa: BLE001 - a job must never kill the scheduler
            log.exception("job %s failed", name)
        else:
            with self.ledger.write() as c:
                self.ledger.kv.mark_job_ok(c, name)
            self.metrics.job_ok(name)
        finally:
            self._tick()
            self._evaluate_alerts()

    def job_poll(self) -> None:
        self.services.outbound.poll_shop()
        self.services.outbound.push_due()

    def job_drain(self) -> None:
        self.services.inbound.run()

    def job_sweep(self) -> None:
        self.services.inbound.sweep()
        self.services.inbound.run()

    def job_housekeeping(self) -> None:
        from connector.sync.deadlines import check_deadlines

        check_deadlines(self.ledger, warn_after_h=self.config.sync.confirm_deadline_warn_h,
                        include_test=self.config.mall.include_test_orders)

    def _schedule(self) -> None:
        s = self.config.sync
        jobs = [
            ("poll", self.job_poll, s.poll_interval_s),
            ("drain", self.job_drain, s.drain_interval_s),
            ("sweep", self.job_sweep, s.sweep_interval_s),
            ("housekeeping", self.job_housekeeping, 60),
        ]
        for name, fn, every in jobs:
            self.scheduler.add_job(
                self._job, "interval", args=(name, fn), seconds=every, id=name, replace_existing=True,
                next_run_time=datetime.now(timezone.utc) + timedelta(seconds=0.2),
                misfire_grace_time=max(5, every),  # the default of 1 s would drop runs after a busy spell
            )

    # -- alerts -------------------------------------------------------------------------------
    def _evaluate_alerts(self) -> None:
        try:
            self._alerts()
        except Exception:  # noqa: BLE001 - alerting problems must not stop syncing
            log.exception("could not evaluate alerts")

    def _alerts(self) -> None:
        limited_for = time.monotonic() - self._first_429 if self._first_429 is not None else None
        evaluate_alerts(self.alerter, self.ledger, self.config, unauthorized=self._unauthorized,
                        rate_limited_for_s=limited_for, forbidden=getattr(self, "_forbidden", False))

    # -- reload -------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read config and mapping; swap only when both are valid. True when swapped."""
        notify.reloading()
        try:
            new = load_config(self.config_path)
            mapping = load_mapping(new.mapping_path)
        except ConfigError as e:
            log.error("reload refused, the old config and mapping stay in force: %s", e)
            notify.ready()
            return False
        for secret in [new.mall.client_id.get_secret_value() if new.mall.client_id else None, *new.token_values]:
            register_secret(secret)
        for key in ("ledger", "receiver", "mall", "shop"):
            old_part = getattr(self.config, key).model_dump(exclude={"tokens", "carrier_urls"})
            new_part = getattr(new, key).model_dump(exclude={"tokens", "carrier_urls"})
            if key == "shop":
                old_part.pop("mapping", None)
                new_part.pop("mapping", None)
            if old_part != new_part:
                log.warning("[%s] changed: restart the service to apply it (reload applies mapping, tokens, "
                            "intervals, alerts and carrier URLs)", key)
        self.services.mapping.replace(mapping)
        self.config = new
        for engine in (self.services.outbound, self.services.inbound):
            engine.config = new
        from connector.alerts import Alerter

        self.alerter = Alerter(new.alerts, self.ledger)
        self._schedule()
        log.info("reloaded config %s and mapping %s", self.config_path, mapping.path)
        notify.ready()
        return True

    # -- lifecycle ----------------------------------------------------------------------------
    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())

    def _shop_webhook_adapters(self) -> dict:
        """The configured shop adapter, for /webhooks/shop/<adapter>/<token> (adapters/shared/shop_webhooks.py)."""
        from adapters import make_adapter

        return {self.config.shop.adapter: make_adapter(self.config)}

    def start(self) -> None:
        from receiver.app import create_app
        from receiver.server import ReceiverServer

        warn_if_secrets_readable(self.config)
        rc = self.config.receiver
        if not self.config.token_values:
            log.warning("no webhook token in [receiver] tokens: MALL's webhooks cannot be accepted; the unconfirmed "
                        "sweep (every %s s) still finds new orders", self.config.sync.sweep_interval_s)
        app = create_app(
            ledger=self.ledger, tokens=lambda: self.config.token_values, metrics=self.metrics,
            readiness=self.readiness, max_body_bytes=rc.max_body_bytes,
            wrong_token_limit_per_minute=rc.wrong_token_limit_per_minute, instance_id=self.instance_id,
            shop_adapters=self._shop_webhook_adapters,
        )
        self.receiver = ReceiverServer(app, rc.host, rc.port, threads=rc.threads, max_body_bytes=rc.max_body_bytes)
        self.receiver.start()
        self._started_at = datetime.now(timezone.utc).replace(tzinfo=None)
        self._schedule()
        self.scheduler.start()
        log.info("mall-connector running: receiver on %s:%s, shop poll every %ss, sweep every %ss",
                 rc.host, self.receiver.port, self.config.sync.poll_interval_s, self.config.sync.sweep_interval_s)
        notify.ready()
        notify.status("running")

    def run_forever(self) -> int:
        self._install_signals()
        self.start()
        watchdog_s = notify.watchdog_interval_s()
        ping_every = watchdog_s / 2 if watchdog_s else None
        # One work item may take a MALL call with its retries (up to ~2 min) without a tick in between.
        stale_after = 180.0 + 4 * self.config.sync.drain_interval_s
        last_ping = 0.0
        try:
            while not self._stop.is_set():
                self._stop.wait(1.0)
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
                now = time.monotonic()
                if ping_every and now - last_ping >= ping_every:
                    # The inbox job runs every drain_interval_s, so a working scheduler ticks often.
                    if now - self._last_progress <= stale_after:
                        notify.watchdog()
                        last_ping = now
                    else:
                        log.error("no job progress for %.0f s: withholding the watchdog ping", now - self._last_progress)
        finally:
            self.stop()
        return 0

    def stop(self) -> None:
        log.info("stopping: finishing the work in flight (at most %.0f s)", STOP_TIMEOUT_S)
        notify.stopping()
        self._stop.set()
        done = threading.Event()

        def _shutdown():
            try:
                self.scheduler.shutdown(wait=True)
            except Exception:  # noqa: BLE001 - already stopped
                pass
            done.set()

        threading.Thread(target=_shutdown, daemon=True).start()
        if not done.wait(STOP_TIMEOUT_S):
            log.warning("in-flight work did not finish within %.0f s; the ledger keeps it for the next start",
                        STOP_TIMEOUT_S)
        if self.receiver is not None:
            self.receiver.stop()
        self.services.close()
        log.info("stopped")


def warn_if_secrets_readable(config: Config) -> None:
    """A config file that holds a secret must not be readable by other users."""
    path = config.source_path
    if path is None:
        return
    try:
        text = Path(path).read_text(encoding="utf-8")
        mode = os.stat(path).st_mode
    except OSError:
        return
    holds_secret = any(k in text for k in ("client_id =", "client_id=", "tokens", "password"))
    if holds_secret and mode & (stat.S_IROTH | stat.S_IWOTH):
        log.warning("%s holds a secret and is readable by other users: run chmod 0640 %s (or move the client_id "
                    "into a systemd credential)", path, path)


def evaluate_alerts(a, ledger, config: Config, *, unauthorized: bool, rate_limited_for_s: float | None,
                    forbidden: bool = False) -> None:
    """Open or resolve every alert problem from the current state (called after each job)."""
    if unauthorized:
        a.problem("mall_unauthorized", "MALL rejects the client_id",
                  "MALL answers 401 to the connector: the client_id in [mall] client_id is wrong or the account is "
                  "disabled. Nothing can be synced until it is fixed.")
    else:
        a.resolved("mall_unauthorized", "MALL accepts the client_id again.")
    if rate_limited_for_s is not None and rate_limited_for_s >= config.alerts.rate_limit_alert_after_s:
        a.problem("rate_limited", "MALL rate limit persists",
                  f"MALL has answered 429 (rate limited) for {int(rate_limited_for_s)} s. Check the API usage in "
                  "the MALL Partner portal; the connector slows down and keeps trying.")
    elif rate_limited_for_s is None:
        a.resolved("rate_limited", "MALL no longer rate-limits the connector.")
    failures = int(ledger.kv.get("shop_feed_failures") or 0)
    if failures >= config.shop.unreadable_polls_alert:
        a.problem("feed_unreadable", "shop feed unreadable",
                  f"The shop feed could not be read for {failures} polls in a row. Check the feed file or URL in "
                  "[shop]; the connector's log says why.")
    elif failures == 0:
        a.resolved("feed_unreadable", "The shop feed is readable again.")
    failed = {c.id: c for c in ledger.changes.list(states=(ChangeState.FAILED,))}
    for cid, ch in failed.items():
        a.problem(f"change_failed:{cid}", f"order {ch.mall_order_id}: change failed",
                  f"Change {cid} (order {ch.mall_order_id}, shop status {ch.shop_status!r} → MALL "
                  f"{ch.target_status}) failed: {ch.reason}. Fix it, then: mall-connector ledger retry {cid} "
                  f"(or ledger skip {cid} --reason ...).")
    for p in a.open_problems():
        key = p["key"]
        if key.startswith("change_failed:") and int(key.split(":")[1]) not in failed:
            a.resolved(key, f"Change {key.split(':')[1]} is no longer failed.")
    open_ids = set()
    for item in ledger.actions.open():
        open_ids.add(item["id"])
        a.problem(f"action:{item['id']}", f"order {item['mall_order_id']} needs a human",
                  f"{item['message']}\nWhen done: mall-connector ledger done {item['id']}")
    for p in a.open_problems():
        key = p["key"]
        if key.startswith("action:") and int(key.split(":")[1]) not in open_ids:
            a.resolved(key, f"Needs-action item {key.split(':')[1]} was cleared.")
    # Quarantined inbox ids, hand-offs and confirmations (failed changes are alerted above): one alert each.
    quarantined = {item.ref: item for item in ledger.failed_items() if item.kind != ItemKind.CHANGE}
    for ref, item in quarantined.items():
        orders = ", ".join(str(o) for o in item.mall_order_ids) or "-"
        a.problem(f"quarantined:{ref}", f"order {orders}: {item.what} quarantined",
                  f"{item.what} (order {orders}) failed {item.attempts} time(s) and was set aside so the rest of the "
                  f"queue goes on: {item.reason}. Fix the cause, then: mall-connector ledger retry {ref}.")
    for p in a.open_problems():
        key = p["key"]
        if key.startswith("quarantined:") and key.split(":", 1)[1] not in quarantined:
            a.resolved(key, f"{key.split(':', 1)[1]} is no longer quarantined.")
    if forbidden:
        a.problem("mall_forbidden", "MALL refuses the account (403)",
                  "MALL answers 403 to the connector: this account may not use an endpoint the connector needs "
                  "(see the log for which). Ask MALL partner support to enable it.")
    else:
        a.resolved("mall_forbidden", "MALL no longer refuses the account.")
    stuck = [h for h in ledger.handoffs.open()]
    if stuck:
        a.problem("handoff_failing", "cannot hand MALL orders to the shop",
                  f"{len(stuck)} batch(es) could not be written to the shop outbox (e.g. {stuck[0][1]}). Check the "
                  "outbox folder exists and is writable; the connector retries.")
    else:
        a.resolved("handoff_failing", "The shop outbox is writable again.")
