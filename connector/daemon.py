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
        self._rejected_code: int | None = None  # 401 or 403 while MALL rejects the account (alerts)
        migrate_in_child(config.ledger.url)  # issue 17: alembic never loads in the long-lived process
        #: issue 18: per account (several [accounts.*]): when its 429s began, and 401/403 while MALL rejects it.
        self._account_first_429: dict[str, float] = {}
        self._account_rejected: dict[str, int] = {}
        self.services = Services(config, metrics=self.metrics, on_response=self._on_mall_response,
                                 on_account_response=self._on_account_response)
        self.ledger = self.services.ledger
        self.alerter = Alerter(config.alerts, self.ledger, tz=config.shop.timezone)
        for engine in (self.services.outbound, self.services.inbound):
            engine.should_stop = self._tick
        self.services.delivery.should_stop = self._tick  # issue 15
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=timezone.utc,
        )
        self.receiver = None
        self.console = None  # the admin console's server, when [console] enabled
        from connector.replicas import Leadership  # replicas on one PostgreSQL ledger (issue 18)

        self.leadership = Leadership(self.ledger, self.instance_id, config.ledger.lease_s)
        self.feed_watcher = None  # issue 17: inotify on a file feed (adapters/shared/watch.py)
        self._feed_lock = threading.Lock()
        self._feed_runs = 0  # passes asked for by the watcher, waiting or running (at most 2: see _feed_changed)
        self._feed_seq = 0

    # -- wiring -------------------------------------------------------------------------------
    def _on_mall_response(self, endpoint: str, code: int) -> None:
        """Count MALL calls for metrics and notice persistent 429s and 401s for alerts."""
        self.metrics.mall_call(endpoint, code)
        if code == 429:
            self._first_429 = self._first_429 or time.monotonic()
        elif 200 <= code < 300:
            self._first_429 = None
            self._unauthorized = False
            self._rejected_code = None
        elif code == 401:
            self._unauthorized = True
            self._rejected_code = 401
        elif code == 403:
            self._rejected_code = 403

    def _on_account_response(self, account: str, endpoint: str, code: int) -> None:
        """issue 18: like ``_on_mall_response``, kept per account (alerts name the account)."""
        self.metrics.mall_call(endpoint, code)
        if code == 429:
            self._account_first_429.setdefault(account, time.monotonic())
        elif 200 <= code < 300:
            self._account_first_429.pop(account, None)
            self._account_rejected.pop(account, None)
            self._rejected_code = None  # a job's 403 (below): MALL answers again, the per-account alerts say who
        elif code in (401, 403):
            self._account_rejected[account] = code
        # Not ready only while MALL rejects every account.
        self._unauthorized = bool(self.config.accounts) and len(self._account_rejected) == len(self.config.accounts) \
            and all(c == 401 for c in self._account_rejected.values())

    def request_reload(self) -> None:
        """Reload config and mapping as SIGHUP does (the console's mapping save calls this)."""
        self._reload.set()

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
        """Run a job unless another replica runs a pass now, or it is a singleton job and we do not lead
        (connector/replicas.py; on SQLite both always allow it)."""
        from connector.ledger.db import LedgerError
        from connector.replicas import ENGINES_TURN, SINGLETON_JOBS

        if self._stop.is_set():
            return
        self._tick()  # a follower that skips its runs is alive all the same (the watchdog)
        if name in SINGLETON_JOBS and not self.leadership.is_leader():
            return
        try:
            with self.ledger.leases.turn(ENGINES_TURN) as mine:
                if mine:
                    self._run_job(name, fn)
        except LedgerError as e:  # the ledger's server is away: this run is skipped, the next one retries
            log.warning("job %s skipped: %s", name, e)

    def _run_job(self, name: str, fn) -> None:
        from connector.ledger.db import LedgerError

        self._tick()
        try:
            fn()
        except MallUnauthorized:
            self._unauthorized = True
            log.error("MALL rejected the client_id (401): check [mall] client_id; job %s will try again", name)
        except MallForbidden as e:
            self._rejected_code = 403  # the alert rule mall_unauthorized (401 or 403)
            log.error("MALL refuses this account (403) in job %s: %s", name, e)
        except MallError as e:
            log.warning("job %s: MALL call failed: %s", name, e)
        except LedgerError as e:  # e.g. the PostgreSQL server went away mid-pass: the next run retries
            log.warning("job %s: the ledger failed, nothing of the failed transaction was kept: %s", name, e)
        except Exception:  # noqa: BLE001 - a job must never kill the scheduler
            log.exception("job %s failed", name)
        else:
            with self.ledger.write() as c:
                self.ledger.kv.mark_job_ok(c, name)
            self.metrics.job_ok(name)
        finally:
            self._tick()
            self.services.flush_calls()  # issue 17: the job's MALL calls, one transaction (mall-connector stats)
            try:
                self.services.stamp_accounts()  # issue 18: the account of rows made by this job
            except Exception:  # noqa: BLE001 - the next job stamps them
                log.exception("could not record the accounts of new ledger rows")
            self._evaluate_alerts(seen=name == "poll")

    def job_poll(self) -> None:
        from connector.sync.runner import replay_remapped

        replay_remapped(self.services)  # issue 14: a status mapped since the last poll moves its orders
        self.services.outbound.poll_shop()
        self.services.push_due()  # issue 18: one pass per account when there are several
        delivery = self.services.delivery.run()  # issue 15: delivered from shop dates and carriers
        if delivery.delivered or delivery.returned:
            self.services.push_due()

    def job_drain(self) -> None:
        self.services.run_inbound()  # issue 18: one pass per account when there are several

    def job_sweep(self) -> None:
        self.services.inbound.sweep()
        self.services.run_inbound()

    def job_housekeeping(self) -> None:
        from connector.sync.deadlines import check_deadlines

        from connector.accounts import include_test_by_account

        check_deadlines(self.ledger, warn_after_h=self.config.sync.confirm_deadline_warn_h,
                        include_test=self.config.mall.include_test_orders, tz=self.config.shop.timezone,
                        include_test_accounts=include_test_by_account(self.config))  # issue 18

    # -- the feed watcher (issue 17: react in seconds) ------------------------------------------
    def _start_feed_watch(self) -> None:
        """Watch a file feed with inotify; an HTTP feed (or a shop without a feed) keeps the poll alone."""
        from adapters.shared.watch import FeedWatcher, feed_watch_path

        path = feed_watch_path(self.services.adapter)
        if path is None:
            return
        settle_s = getattr(self.services.adapter.source, "settle_s", 2.0)
        self.feed_watcher = FeedWatcher(path, settle_s, self._feed_changed,
                                        poll_interval_s=self.config.sync.poll_interval_s)
        self.feed_watcher.start()

    def _feed_changed(self) -> None:
        """The feed changed and settled: a sync pass now, on the scheduler's one worker (so never two passes at
        once). Coalesced: while one watcher pass waits to start, it will read the newest file, so at most one
        runs and one waits."""
        if self._stop.is_set():
            return
        with self._feed_lock:
            if self._feed_runs >= 2:
                return
            self._feed_runs += 1
            self._feed_seq += 1
            job_id = f"feed-change-{self._feed_seq}"
        self.scheduler.add_job(self._job, args=("poll", self._job_feed_pass), id=job_id, misfire_grace_time=3600)

    def _job_feed_pass(self) -> None:
        try:
            self.job_poll()
        finally:
            with self._feed_lock:
                self._feed_runs -= 1

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
    def _evaluate_alerts(self, seen: bool = True) -> None:
        if not self.leadership.is_leader():  # one replica notifies (connector/replicas.py)
            return
        from connector.ledger.db import unavailable_errors

        try:
            self._alerts(seen)
        except unavailable_errors() as e:  # the ledger's server is away: the next job evaluates them
            log.warning("could not evaluate alerts: the ledger is unavailable (%s)", type(e).__name__)
        except Exception:  # noqa: BLE001 - alerting problems must not stop syncing
            log.exception("could not evaluate alerts")

    def _alerts(self, seen: bool = True) -> None:
        limited_for = time.monotonic() - self._first_429 if self._first_429 is not None else None
        rejected = self._rejected_code or (401 if self._unauthorized else None)
        now = time.monotonic()
        from connector.sync.ratelimit import quota_of

        evaluate_alerts(self.alerter, self.ledger, self.config, unauthorized=rejected is not None,
                        rate_limited_for_s=limited_for, mapping=self.services.mapping(), rejected_code=rejected,
                        account_mappings=self.services.mapping.accounts,
                        seen=seen, account_rejected=dict(self._account_rejected),
                        account_rate_limited_for_s={a: now - t for a, t in self._account_first_429.items()},
                        quota=quota_of(self.services.client))

    # -- reload -------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read config and mapping; swap only when both are valid. True when swapped."""
        notify.reloading()
        try:
            new = load_config(self.config_path)
            mapping = load_mapping(new.mapping_path)
            from connector.sync.runner import load_account_mappings

            account_mappings = load_account_mappings(new)  # issue 18: [accounts.<name>] mapping, re-read too
        except ConfigError as e:
            log.error("reload refused, the old config and mapping stay in force: %s", e)
            notify.ready()
            return False
        for secret in [new.mall.client_id.get_secret_value() if new.mall.client_id else None, *new.token_values,
                       *(a.client_id.get_secret_value() for a in new.accounts.values() if a.client_id)]:
            register_secret(secret)
        for key in ("ledger", "receiver", "mall", "shop", "console"):
            old_part = getattr(self.config, key).model_dump(exclude={"tokens", "carrier_urls"})
            new_part = getattr(new, key).model_dump(exclude={"tokens", "carrier_urls"})
            if key == "shop":
                old_part.pop("mapping", None)
                new_part.pop("mapping", None)
            if old_part != new_part:
                log.warning("[%s] changed: restart the service to apply it (reload applies mapping, tokens, "
                            "intervals, alerts and carrier URLs)", key)
        old_ids = {n: a.client_id for n, a in self.config.accounts.items()}
        if old_ids != {n: a.client_id for n, a in new.accounts.items()}:  # issue 18: one client per account
            log.warning("[accounts.*] client_ids changed: restart the service to apply them (reload applies the "
                        "accounts' webhook tokens)")
        previous_mapping = self.services.mapping()
        previous_accounts = self.services.mapping.accounts
        self.services.mapping.replace(mapping, account_mappings)
        self._queue_remap(previous_mapping, mapping)
        for name in sorted(set(previous_accounts) | set(account_mappings)):  # issue 18: each account's own mapping
            self._queue_remap(previous_accounts.get(name, previous_mapping), account_mappings.get(name, mapping),
                              job_id=f"remap_{name}")
        self.config = new
        for engine in (self.services.outbound, self.services.inbound):
            engine.config = new
        self.services.delivery.config = new  # issue 15: [carriers] intervals; carrier credentials need a restart
        from connector.alerts import Alerter

        self.alerter = Alerter(new.alerts, self.ledger, tz=new.shop.timezone)
        self._schedule()
        log.info("reloaded config %s and mapping %s%s", self.config_path, mapping.path,
                 "".join(f", account {n}: mapping {m.path}" for n, m in account_mappings.items()))
        notify.ready()
        return True

    def _queue_remap(self, old, new, *, job_id: str = "remap") -> None:
        """After the scheduler's job in flight (one worker: never during a poll), let the next poll re-evaluate
        the feed rows whose shop status the new mapping reads differently (see connector/ledger/remap.py)."""
        from connector.ledger.remap import forget_rows_whose_meaning_changed
        from connector.sync.outbound import FEED_KV

        def remap() -> None:
            n = forget_rows_whose_meaning_changed(self.ledger, old, new, feed_kv=FEED_KV)
            if n:
                log.info("the new mapping reads the shop status of %d open order(s) differently: the next poll "
                         "decides them again", n)

        self.scheduler.add_job(self._job, args=("remap", remap), id=job_id, replace_existing=True)

    # -- lifecycle ----------------------------------------------------------------------------
    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())

    def _shop_webhook_adapters(self) -> dict:
        """The configured shop adapter, for /webhooks/shop/<adapter>/<token> (adapters/shared/shop_webhooks.py)."""
        from adapters import make_adapter

        return {self.config.shop.adapter: make_adapter(self.config)}

    def _token_account(self, token: str) -> str | None:
        """issue 18: the account of a webhook token (of the config in force: a reload swaps the tokens)."""
        from connector.accounts import token_account

        config = self.config
        if getattr(self, "_token_table_for", None) is not config:
            self._token_table, self._token_table_for = token_account(config), config
        return self._token_table(token)

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
            trusted_proxies=rc.trusted_proxies,
            shop_adapters=self._shop_webhook_adapters,
            token_account=self._token_account if self.config.accounts else None,
        )
        try:
            self.receiver = ReceiverServer(app, rc.host, rc.port, threads=rc.threads, max_body_bytes=rc.max_body_bytes,
                                           connection_limit=rc.connection_limit,
                                           max_connections_per_address=rc.max_connections_per_address,
                                           request_timeout_s=rc.request_timeout_s, trusted_proxies=rc.trusted_proxies,
                                           metrics=self.metrics)
        except OSError as e:
            from connector.preflight import receiver_in_use

            raise (receiver_in_use(e, self.config) or e) from None
        self.receiver.start()
        if self.config.console.enabled:
            from connector.console import start_console

            self.console = start_console(self)
        self._started_at = datetime.now(timezone.utc).replace(tzinfo=None)
        self.leadership.start()
        self._schedule()
        self.scheduler.start()
        self._start_feed_watch()
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

        if self.feed_watcher is not None:
            self.feed_watcher.stop()
        threading.Thread(target=_shutdown, daemon=True).start()
        if not done.wait(STOP_TIMEOUT_S):
            log.warning("in-flight work did not finish within %.0f s; the ledger keeps it for the next start",
                        STOP_TIMEOUT_S)
        if self.receiver is not None:
            self.receiver.stop()
        if self.console is not None:
            self.console.stop()
        self.leadership.stop()
        self.services.close()
        log.info("stopped")


_MIGRATE_CHILD = """
import sys
from connector.ledger.db import LedgerError
from connector.ledger.repo import open_ledger
try:
    open_ledger(sys.stdin.read()).close()
except LedgerError as e:
    print(e, file=sys.stderr)
    sys.exit(2)
"""


def migrate_in_child(url: str) -> None:
    """Bring the ledger's schema up to date in a short-lived child process when it is behind.

    alembic + mako cost about 11 MiB of resident memory for the daemon's whole life, for a step done once
    per upgrade (issue 17, idle RSS). A current ledger is recognised by one SELECT, without alembic. The
    URL travels on stdin, never in argv (it may hold a password). An in-memory ledger is migrated in
    process later (a child could not reach it). Raises LedgerError with the child's message."""
    from connector.ledger.db import HEAD_REVISION, LedgerError, current_revision, make_engine
    from connector.ledger.location import sqlite_path

    if url.startswith("sqlite") and sqlite_path(url) is None:
        return
    engine = make_engine(url)
    try:
        if current_revision(engine) == HEAD_REVISION:
            return
    finally:
        engine.dispose()
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _MIGRATE_CHILD], input=url, text=True, capture_output=True,
                          timeout=3600)
    if proc.returncode != 0:
        lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
        raise LedgerError(lines[-1] if lines else f"the ledger migration exited with {proc.returncode}")
    log.info("ledger schema migrated to the newest version")


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
    from connector.safety import secret_file_warnings

    for w in secret_file_warnings(config):  # client_id_file and credential files (issue 16 item 3)
        if not w.startswith("config file"):
            log.warning("%s", w)


def evaluate_alerts(a, ledger, config: Config, *, unauthorized: bool, rate_limited_for_s: float | None,
                    mapping=None, rejected_code: int | None = None, seen: bool = True, forbidden: bool = False,
                    account_rejected: dict[str, int] | None = None,
                    account_rate_limited_for_s: dict[str, float] | None = None,
                    quota=None, account_mappings: dict | None = None) -> None:
    """Open or resolve every alert problem from the current state (called after each job).

    The rules are one table in connector/alert_rules.py; ``seen`` counts this as one more poll that saw
    each open problem ("seen on N polls"). Without ``mapping`` the config's mapping file is read.
    ``forbidden`` (the core's name) is ``rejected_code=403``."""
    from connector.alert_rules import Facts, evaluate

    if mapping is None:
        from connector.mapping import load_mapping

        mapping = load_mapping(config.mapping_path)
        if account_mappings is None:  # issue 18: and each [accounts.<name>] mapping
            from connector.sync.runner import load_account_mappings

            account_mappings = load_account_mappings(config)
    if rejected_code is None and forbidden:
        rejected_code = 403
    rejected = rejected_code if rejected_code is not None else (401 if unauthorized else None)
    evaluate(a, Facts(ledger=ledger, config=config, mapping=mapping, account_mappings=dict(account_mappings or {}),
                      mall_rejected=rejected,
                      rate_limited_for_s=rate_limited_for_s, account_rejected=dict(account_rejected or {}),
                      account_rate_limited_for_s=dict(account_rate_limited_for_s or {}), quota=quota), seen=seen)
