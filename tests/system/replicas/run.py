"""The 3-replica kill run: three `mall-connector run` processes on ONE PostgreSQL ledger, one of them SIGKILLed
and restarted every few seconds (every other kill hits the leader), while the chaos run's shop and MALL keep
changing orders and MALL's webhooks go to a different live replica at each tick (a load balancer).

    python -m tests.system.replicas.run --size small|full --seed N      # starts its own throwaway PostgreSQL

Judged by the chaos run's own checks (tests/system/chaos/checks.py ``verify``): 0 duplicate PUTs or hand-offs, 0 lost
changes, 0 early confirms, nothing stuck, the ledger agreeing with both sides; plus: no traceback and no secret
in any replica's log, every replica's receiver wrote the inbox, and the leadership moved when its holder died.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from connector.mapping import mapping_from_text
from connector.sandbox.server import SandboxServer
from tests.system.chaos.checks import LedgerView, Verdict, verify
from tests.system.chaos.run import TICK_S, _wait_quiescent
from adapters.shared.world import DaemonProcess
from tests.system.chaos.world import MAPPING_TOML, SENT, MallDriver, ShopSim, instrument
from tests.conftest import TEST_CLIENT_ID, free_port
from tests.support.worlds import CsvShop

TOKEN = "replica-token-" + "V4nM8qK2xT6pR9wB3zL7cJ5h"
REPLICAS = 3


@dataclass(frozen=True)
class Size:
    orders: int
    shop_changes: int  # the storm lasts until the shop made this many changes ...
    webhooks: int  # ... and MALL delivered this many webhooks
    min_s: float
    max_s: float
    kill_every: tuple[float, float]
    quiet_timeout_s: float = 120.0


SIZES = {
    "small": Size(orders=40, shop_changes=60, webhooks=25, min_s=20.0, max_s=90.0, kill_every=(2.5, 4.5)),
    "full": Size(orders=160, shop_changes=300, webhooks=100, min_s=70.0, max_s=300.0, kill_every=(3.0, 6.0),
                 quiet_timeout_s=180.0),
}


@dataclass
class ReplicaResult:
    verdict: Verdict
    figures: dict = field(default_factory=dict)
    folder: Path | None = None

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    def summary(self) -> str:
        f = collections.defaultdict(int, self.figures)
        return (f"replicas: {REPLICAS} on PostgreSQL, orders={f['orders']} shop_changes={f['shop_changes']} "
                f"webhooks={f['webhooks']} kills={f['kills']} leader_kills={f['leader_kills']} "
                f"{self.verdict.counts_text()} time={f['seconds']:.0f}s {'OK' if self.ok else 'FAILED'}")


class Replicas:
    """Three DaemonProcesses on one folder (shared feed and outbox), each with its own receiver port and logs;
    quacks like one DaemonProcess for the chaos run's ``_wait_quiescent`` (alive: all are; start: the dead ones)."""

    def __init__(self, folder: Path, csv_shop: CsvShop, ports: list[int]):
        self.ports = ports
        self.runners: list[DaemonProcess] = []
        base = csv_shop.config_path.read_text(encoding="utf-8")
        for n, port in enumerate(ports, 1):
            cfg = folder / f"config-{n}.toml"
            cfg.write_text(re.sub(r'listen = "127\.0\.0\.1:\d+"', f'listen = "127.0.0.1:{port}"', base), encoding="utf-8")
            home = folder / f"replica-{n}"
            home.mkdir(exist_ok=True)
            self.runners.append(DaemonProcess(home, cfg))

    def alive(self) -> bool:
        return all(r.alive() for r in self.runners)

    def start(self) -> None:
        for r in self.runners:
            if not r.alive():
                r.start()

    def live_ports(self) -> list[int]:
        """Ports of replicas whose receiver accepts connections now (a load balancer's health check)."""
        import socket

        live = []
        for p, r in zip(self.ports, self.runners):
            if r.alive():
                try:
                    socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
                    live.append(p)
                except OSError:
                    pass
        return live

    @property
    def kills(self) -> int:
        return sum(r.kills for r in self.runners)

    def log_text(self) -> str:
        return "".join(r.log_text() for r in self.runners if (r.folder / "logs").exists())


def _leader_index(url: str, replicas: Replicas) -> int | None:
    """Which runner holds the leader lease now (its pid is in the holder), read straight from the ledger."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as c:
            holder = c.execute(text("SELECT holder FROM leases WHERE name = 'leader' "
                                    "AND expires_at > (now() AT TIME ZONE 'UTC')")).scalar()
    except Exception:  # noqa: BLE001 - the table may not exist before the first start
        return None
    finally:
        engine.dispose()
    if not holder:
        return None
    pid = int(holder.split(":")[1])
    for i, r in enumerate(replicas.runners):
        if r.proc is not None and r.proc.pid == pid:
            return i
    return None


def run_replicas(url: str, size: str = "small", seed: int = 1, *, folder: Path | None = None,
                 log=print) -> ReplicaResult:
    """``url``: an empty PostgreSQL database with its password (it reaches the replicas through the environment)."""
    spec = SIZES[size]
    rng = random.Random(seed)
    started = time.monotonic()
    own_folder = folder is None
    folder = Path(tempfile.mkdtemp(prefix=f"replicas-{size}-{seed}-")) if own_folder else folder
    verdict = Verdict()
    ports = [free_port() for _ in range(REPLICAS)]
    hook = "http://127.0.0.1:{}/webhooks/mall/" + TOKEN
    sandbox = SandboxServer(TEST_CLIENT_ID, seed=seed, webhook_url=hook.format(ports[0]), webhook_interval_s=0.3)
    instrument(sandbox.state)
    sandbox.start()
    sandbox._httpd.handle_error = lambda request, address: None  # a killed replica's broken pipes are expected
    (folder / "mapping.toml").write_text(MAPPING_TOML, encoding="utf-8")
    driver = MallDriver(sandbox.state, random.Random(rng.random()), spec.orders)
    kill_rng = random.Random(rng.random())
    saved_env = os.environ.get("MALL_CONNECTOR_LEDGER_URL")
    os.environ["MALL_CONNECTOR_LEDGER_URL"] = url
    replicas = None
    figures: dict = {}
    try:
        csv_shop = CsvShop(folder, sandbox, mapping="mapping.toml", receiver_listen=f"127.0.0.1:{ports[0]}",
                           tokens=[TOKEN], sync="poll_interval_s = 1\ndrain_interval_s = 1\nsweep_interval_s = 2\n",
                           extra="")
        cfg = csv_shop.config_path.read_text(encoding="utf-8")
        csv_shop.config_path.write_text(cfg.replace('url = "sqlite:///ledger.db"\n',
                                                    'url = "sqlite:///ledger.db"\nlease_s = 3\n'), encoding="utf-8")
        shop = ShopSim(csv_shop, random.Random(rng.random()), lambda oid: driver.mdp.get(oid, False))
        replicas = Replicas(folder, csv_shop, ports)
        driver.tick(spec.orders * 0.1)
        replicas.start()
        t0 = time.monotonic()
        next_kill = t0 + kill_rng.uniform(*spec.kill_every)
        leader_kills = kills = 0
        next_report = t0 + 15
        create_per_tick = spec.orders / (0.9 * spec.min_s / TICK_S)  # MALL keeps changing orders (webhooks)
        log(f"replicas: {size} run, seed {seed}, folder {folder}")
        while True:
            now = time.monotonic()
            delivered = len(sandbox.webhook_log.delivered())
            if now - t0 >= spec.max_s:
                verdict.fail("stuck", f"the storm's targets were not reached in {spec.max_s:.0f} s: "
                                      f"{shop.transitions} shop changes, {delivered} webhooks")
                break
            if (now - t0 >= spec.min_s and shop.transitions >= spec.shop_changes and delivered >= spec.webhooks):
                break
            if now >= next_report:
                log(f"replicas: {now - t0:.0f} s, {shop.transitions} shop changes, {delivered} webhooks, "
                    f"{replicas.kills} kills")
                next_report = now + 15
            if now >= next_kill:
                leader = _leader_index(url, replicas) if kills % 2 == 0 else None
                victim = leader if leader is not None else kill_rng.randrange(REPLICAS)
                leader_kills += leader is not None
                kills += 1
                replicas.runners[victim].kill()
                time.sleep(kill_rng.uniform(0.0, 0.8))
                replicas.runners[victim].start()
                next_kill = time.monotonic() + kill_rng.uniform(*spec.kill_every)
            for r in replicas.runners:
                if not r.alive() and r.proc is not None:
                    verdict.fail("crashes", f"a replica exited by itself with code {r.stop()}")
                    r.start()
            live = replicas.live_ports()
            if live:  # the load balancer: each batch of webhooks to some live replica
                port = kill_rng.choice(live)
                sandbox.webhook_url = hook.format(port)
            driver.tick(create_per_tick if driver.created < spec.orders else 0)
            shop.import_outbox()
            shop.work(0.06)
            shop.write_feed()
            time.sleep(TICK_S)
        for o in shop.orders.values():  # tracking numbers that were still to come, come now (as in the chaos run)
            if o.status == SENT and o.tracking_number is None and not o.mdp:
                shop._tracking(o)
                shop.dirty = True
        replicas.start()
        quiet = _wait_quiescent(sandbox, shop, replicas, folder, driver, spec.quiet_timeout_s, verdict,
                                read_ledger=lambda: LedgerView.read_url(url))
        codes = [r.stop() for r in replicas.runners]
        if any(code != 0 for code in codes):
            verdict.fail("crashes", f"the final SIGTERM ended replicas with codes {codes}, not 0")
        shop.import_outbox()
        ledger = LedgerView.read_url(url)
        checked = verify(sandbox=sandbox, shop=shop, driver=driver, ledger=ledger,
                         mapping=mapping_from_text(MAPPING_TOML))
        verdict.problems += checked.problems
        verdict.counts.update(checked.counts)
        figures.update(checked.figures)
        logs = replicas.log_text()
        password = re.search(r"://[^:/@]+:([^@]+)@", url)
        for secret, name in ((TEST_CLIENT_ID, "client_id"), (TOKEN, "webhook token"),
                             (password.group(1) if password else None, "ledger password")):
            if secret and secret in logs:
                verdict.fail("leaks", f"the {name} appears in a replica's log")
        tracebacks = logs.count("Traceback (most recent call last)")
        if tracebacks:
            first = logs[logs.index("Traceback (most recent call last)") - 300:][:1500]
            verdict.fail("crashes", f"{tracebacks} traceback(s) in the replicas' logs, e.g.:\n{first}")
        # Every replica's receiver wrote the shared inbox: each answered some of MALL's webhooks.
        ok_ports = collections.Counter(int(m.group(1)) for e in sandbox.webhook_log.delivered()
                                       if (m := re.search(r":(\d+)/webhooks", e.url)))
        for port in ports:
            if not ok_ports.get(port):
                verdict.fail("lost", f"the replica on port {port} never accepted a webhook")
        takeovers = logs.count("took the leader lease over from")
        if leader_kills and not takeovers:
            verdict.fail("stuck", f"the leader was SIGKILLed {leader_kills} times, no replica ever took the lease over")
        figures.update(orders=driver.created, shop_changes=shop.transitions, webhooks=len(sandbox.webhook_log.delivered()),
                       webhooks_by_replica=dict(ok_ports), kills=replicas.kills, leader_kills=leader_kills,
                       takeovers=takeovers, quiescent_after_s=quiet, seconds=time.monotonic() - started,
                       requests=len(sandbox.request_log))
    finally:
        if replicas is not None:
            for r in replicas.runners:
                if r.alive():
                    r.kill()
        sandbox.stop()
        if saved_env is None:
            os.environ.pop("MALL_CONNECTOR_LEDGER_URL", None)
        else:
            os.environ["MALL_CONNECTOR_LEDGER_URL"] = saved_env
    result = ReplicaResult(verdict, figures, folder)
    if own_folder and result.ok:
        shutil.rmtree(folder, ignore_errors=True)
        result.folder = None
    return result


def main(argv: list[str] | None = None) -> int:
    from tests.support.pg_cluster import PgCluster

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=list(SIZES), default="small")
    ap.add_argument("--seed", type=int, default=20261201)
    args = ap.parse_args(argv)
    cluster = PgCluster.start()
    try:
        result = run_replicas(cluster.create_database(), args.size, args.seed)
    finally:
        cluster.destroy()
    for p in result.verdict.problems[:50]:
        print("  " + p)
    print(result.summary())
    if result.folder:
        print(f"kept: {result.folder}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
