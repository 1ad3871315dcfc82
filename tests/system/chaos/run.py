"""Chaos run: the real daemon against a misbehaving MALL, killed at random, while both sides keep changing.

    python -m tests.system.chaos.run --size small|full --seed N [--report FILE] [--keep DIR] [-v]

* MALL (the sandbox, in this process) answers 5xx before and after applying, 429 with reset headers,
  slowly, or drops the connection, at rates that change every few seconds; its webhooks are dropped,
  duplicated and delayed, and old batches are re-sent late and out of order.
* ``mall-connector --config … run`` runs as a subprocess with 1-2 s intervals and is SIGKILLed at random
  moments, then restarted.
* The shop keeps working its orders (new → packing → shipped with tracking → delivered; some cancelled,
  some in an unmapped status, some shipped before the tracking number is known) and imports the outbox.
* MALL keeps changing orders (new ones, payments of blocked ones, unpaid and customer cancels,
  pickup-branch changes, MALL Delivery shipping and delivery).

Then the faults stop, the daemon runs cleanly until nothing is left to do, and ``checks.verify`` proves
from the outside (sandbox request log and history, outbox files, ledger, feed) that nothing was sent or
handed twice, nothing was lost, nothing was confirmed before the shop had it, nothing is stuck, and the
ledger agrees with both sides. Exit 0 when all of that holds, 1 otherwise; one summary line either way.
"""

from __future__ import annotations

import argparse
import collections
import logging
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from adapters.shared.world import DaemonProcess
from connector.mapping import mapping_from_text
from connector.sandbox.faults import Faults
from connector.sandbox.server import SandboxServer
from tests.system.chaos.checks import LedgerView, Verdict, verify
from carriers.packeta.simulator import PacketaSimulator
from tests.system.chaos.world import (MAPPING_TOML, SENT, CarrierDriver, MallDriver, Replayer, ShopSim,
                               instrument)
from tests.conftest import TEST_CLIENT_ID, free_port
from tests.support.worlds import CsvShop

TOKEN = "chaos-token-" + "Q7mB4xN9pL2vR8kT5wZ3cH6j"  # >= 128 bits, not repetitive (issue 16 item 7)
TICK_S = 0.25
PACKETA_SECRET = "chaos-packeta-" + "K3" * 8


@dataclass(frozen=True)
class Size:
    orders: int
    chaos_s: float  # how long faults, kills and changes go on
    kill_every: tuple[float, float]  # seconds between kills (uniform)
    quiet_timeout_s: float  # the clean run must be quiescent within this
    phase_s: float = 6.0  # fault knobs change this often


SIZES = {
    "small": Size(orders=36, chaos_s=30.0, kill_every=(4.0, 8.0), quiet_timeout_s=60.0),
    "full": Size(orders=300, chaos_s=200.0, kill_every=(9.0, 16.0), quiet_timeout_s=240.0),
}


@dataclass
class ChaosResult:
    seed: int
    size: str
    verdict: Verdict
    figures: dict = field(default_factory=dict)
    folder: Path | None = None

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    def summary(self) -> str:
        f = collections.defaultdict(int, self.figures)
        return (f"chaos: seed={self.seed} size={self.size} orders={f['orders']} changes={f['changes']} "
                f"(shop {f['shop_changes']}, mall {f['mall_changes']}) faults={f['faults']} kills={f['kills']} "
                f"carrier_delivered={f['carrier_delivered']} {self.verdict.counts_text()} "
                f"time={f['seconds']:.0f}s {'OK' if self.ok else 'FAILED'}")


def _fault_phase(rng: random.Random, seed: int, phase: int) -> Faults:
    return Faults(
        seed=seed * 1000 + phase,
        latency_ms=rng.choice([0, 5, 20, 40]),
        drop_rate=rng.choice([0.01, 0.03, 0.05]),
        rate_limit_rate=rng.choice([0.01, 0.03, 0.05]),
        rate_limit_reset_s=1,
        error_rate=rng.choice([0.03, 0.06, 0.1]),
        error_after_apply_rate=rng.choice([0.03, 0.08, 0.15]),
        webhook_drop_rate=rng.choice([0.1, 0.3, 0.5]),
        webhook_duplicate_rate=rng.choice([0.1, 0.3]),
        webhook_delay_s=rng.choice([0.0, 0.0, 0.4, 1.5]),
    )


def run_chaos(size: str = "small", seed: int = 1, *, folder: Path | None = None, log=print) -> ChaosResult:
    spec = SIZES[size]
    rng = random.Random(seed)
    started = time.monotonic()
    own_folder = folder is None
    folder = Path(tempfile.mkdtemp(prefix=f"chaos-{size}-{seed}-")) if own_folder else folder
    folder.mkdir(parents=True, exist_ok=True)
    verdict = Verdict()
    port = free_port()
    hook_url = f"http://127.0.0.1:{port}/webhooks/mall/{TOKEN}"
    sandbox = SandboxServer(TEST_CLIENT_ID, seed=seed, webhook_url=hook_url, webhook_interval_s=0.5)
    instrument(sandbox.state)
    sandbox.start()
    sandbox._httpd.handle_error = lambda request, address: None  # a killed daemon's broken pipes are expected
    (folder / "mapping.toml").write_text(MAPPING_TOML, encoding="utf-8")
    driver = MallDriver(sandbox.state, random.Random(rng.random()), spec.orders)
    daemon = DaemonProcess(folder, folder / "config.toml")
    replayer = Replayer(sandbox, hook_url, random.Random(rng.random()))
    fault_rng, kill_rng = random.Random(rng.random()), random.Random(rng.random())
    figures: dict = {}
    packeta = PacketaSimulator(api_password=PACKETA_SECRET).start()
    carriers = (f"[carriers]\npoll_interval_s = 1\nretry_base_s = 0.5\n[carriers.packeta]\nbase_url = \"{packeta.url}\"\n"
                f"api_password = \"{PACKETA_SECRET}\"\nmin_interval_s = 0\ntimeout_s = 2\n")
    try:
        csv_shop = CsvShop(folder, sandbox, mapping="mapping.toml", receiver_listen=f"127.0.0.1:{port}",
                           tokens=[TOKEN], sync="poll_interval_s = 1\ndrain_interval_s = 1\nsweep_interval_s = 2\n"
                           "verify_window_s = 2\n",
                           extra=carriers)
        shop = ShopSim(csv_shop, random.Random(rng.random()), lambda oid: driver.mdp.get(oid, False))
        carrier = CarrierDriver(packeta, sandbox.state, shop, random.Random(rng.random()))
        driver.tick(spec.orders * 0.1)  # a backlog before the first start
        daemon.start()
        t0 = time.monotonic()
        next_kill = t0 + kill_rng.uniform(*spec.kill_every)
        phase, next_phase = 0, t0
        create_per_tick = spec.orders / (0.6 * spec.chaos_s / TICK_S)
        log(f"chaos: {size} run, seed {seed}, folder {folder}")
        # -- the storm -------------------------------------------------------------------------
        while (now := time.monotonic()) - t0 < spec.chaos_s:
            if now >= next_phase:
                sandbox.faults = _fault_phase(fault_rng, seed, phase)
                carrier.faults()
                phase += 1
                next_phase = now + spec.phase_s
            if now >= next_kill:
                daemon.kill()
                time.sleep(kill_rng.uniform(0.0, 0.8))
                daemon.start()
                # Sometimes very soon after a start (migrations, recovery of half-done work), mostly later.
                early = kill_rng.random() < 0.2
                next_kill = time.monotonic() + (kill_rng.uniform(0.3, 1.5) if early else kill_rng.uniform(*spec.kill_every))
            elif not daemon.alive():
                verdict.fail("crashes", f"the daemon exited by itself with code {daemon.stop()}")
                daemon.start()
            driver.tick(create_per_tick)
            carrier.tick(0.15)
            shop.import_outbox()
            shop.work(0.06)
            shop.write_feed()
            replayer.maybe_replay(0.08)
            time.sleep(TICK_S)
        # -- the clean run: faults off, no kills, no new work; the shop still imports and reacts --
        sandbox.faults = Faults()
        for o in shop.orders.values():  # tracking numbers that were still to come, come now
            if o.status == SENT and o.tracking_number is None and not o.mdp:
                shop._tracking(o)
                shop.dirty = True
        if not daemon.alive():
            daemon.start()
        quiet = _wait_quiescent(sandbox, shop, daemon, folder, driver, spec.quiet_timeout_s, verdict, carrier)
        figures["quiescent_after_s"] = quiet
        code = daemon.stop()
        if code != 0:
            verdict.fail("crashes", f"the final SIGTERM ended the daemon with code {code}, not 0")
        shop.import_outbox()
        listed = subprocess.run([sys.executable, "-m", "connector", "--config", str(csv_shop.config_path), "ledger",
                                 "list", "--state", "pending"], capture_output=True, text=True, cwd=folder, timeout=60)
        if listed.stdout.strip() != "no changes":
            verdict.fail("stuck", f"`ledger list --state pending` shows: {listed.stdout.strip()[:500]}")
        for state in ("retry",):
            more = subprocess.run([sys.executable, "-m", "connector", "--config", str(csv_shop.config_path), "ledger",
                                   "list", "--state", state], capture_output=True, text=True, cwd=folder, timeout=60)
            if more.stdout.strip() != "no changes":
                verdict.fail("stuck", f"`ledger list --state {state}` shows: {more.stdout.strip()[:500]}")
        # -- the verdict ------------------------------------------------------------------------
        ledger = LedgerView.read(folder / "ledger.db")
        checked = verify(sandbox=sandbox, shop=shop, driver=driver, ledger=ledger,
                         mapping=mapping_from_text(MAPPING_TOML), carrier=carrier)
        verdict.problems += checked.problems
        verdict.counts.update(checked.counts)
        figures.update(checked.figures)
        logs = daemon.log_text()
        for secret, name in ((TEST_CLIENT_ID, "client_id"), (TOKEN, "webhook token"),
                             (PACKETA_SECRET, "Packeta API password")):
            if secret in logs:
                verdict.fail("leaks", f"the {name} appears in the daemon's log")
        tracebacks = logs.count("Traceback (most recent call last)")
        if tracebacks:
            first = logs[logs.index("Traceback (most recent call last)") - 300:][:1500]
            verdict.fail("crashes", f"{tracebacks} traceback(s) in the daemon's log, e.g.:\n{first}")
        request_faults = [e.fault for e in sandbox.request_log.entries() if e.fault]
        hooks = sandbox.webhook_log.entries()
        fault_kinds = {k: request_faults.count(k) for k in ("5xx", "5xx_after_apply", "429", "drop")}
        fault_kinds.update(webhook_dropped=sum(e.outcome == "dropped" for e in hooks),
                           webhook_duplicated=sum(e.duplicate for e in hooks),
                           webhook_failed=sum(e.outcome == "failed" for e in hooks),
                           webhook_replayed=replayer.sent)
        mall_changes = sum(e.ok for e in driver.events)
        figures.update(
            orders=driver.created, kills=daemon.kills, restarts=daemon.incarnation - 1, fault_kinds=fault_kinds,
            faults=sum(fault_kinds.values()), shop_changes=shop.transitions, shop_reactions=shop.reactions,
            mall_changes=mall_changes, changes=shop.transitions + mall_changes + driver.created,
            feed_writes=shop.writes, shipped_without_tracking_first=shop.no_tracking_first,
            mall_events_refused=sum(not e.ok for e in driver.events),
            requests=len(sandbox.request_log), seconds=time.monotonic() - started,
            carrier_calls=packeta.request_count("/api/rest"), carrier_delivered=len(carrier.delivered),
        )
    finally:
        if daemon.alive():
            daemon.kill()
        replayer.close()
        sandbox.stop()
        packeta.stop()
    result = ChaosResult(seed, size, verdict, figures, folder)
    if own_folder and result.ok:
        shutil.rmtree(folder, ignore_errors=True)
        result.folder = None
    return result


def _wait_quiescent(sandbox, shop, daemon, folder: Path, driver, timeout_s: float, verdict: Verdict,
                    carrier=None, *, read_ledger=None) -> float | None:
    """Until nothing is left to do on either side, twice in a row a sweep apart; seconds it took."""
    t0 = time.monotonic()
    calm_since = None
    while time.monotonic() - t0 < timeout_s:
        if not daemon.alive():
            verdict.fail("crashes", f"the daemon exited by itself with code {daemon.stop()} in the clean run")
            daemon.start()
        shop.import_outbox()
        shop.write_feed()
        if carrier is not None:
            carrier.deliver_the_rest()  # parcels still on their way are delivered now (issue 15)
        if _idle(sandbox, shop, folder, driver, read_ledger=read_ledger) and not _carrier_pending(sandbox, carrier):
            calm_since = calm_since or time.monotonic()
            if time.monotonic() - calm_since >= 3.5:  # a full sweep and a poll found nothing either
                return time.monotonic() - t0
        else:
            calm_since = None
        time.sleep(0.3)
    verdict.fail("stuck", f"not quiescent {timeout_s:.0f} s after the faults stopped")
    return None


def _carrier_pending(sandbox, carrier) -> bool:
    """A parcel the carrier delivered whose order MALL still has shipped: the connector has work left."""
    return carrier is not None and any(sandbox.state.get(oid)["status"] == "shipped" for oid in carrier.delivered)


def _idle(sandbox, shop, folder: Path, driver, *, read_ledger=None) -> bool:
    """``read_ledger``: how to read the ledger (default: the SQLite file in ``folder``)."""
    try:
        led = read_ledger() if read_ledger is not None else LedgerView.read(folder / "ledger.db")
    except Exception:  # noqa: BLE001 - e.g. the first start has not created it yet
        return False
    if led.inbox or led.open_handoffs or led.verifications:
        return False
    if any(c["state"] in ("pending", "sending", "retry") for c in led.changes.values()):
        return False
    if any(o["needs_confirm"] for o in led.orders.values()):
        return False
    if sandbox.state.pending_changed():
        return False
    for oid, status in shop.feed_statuses().items():
        row = led.orders.get(oid)
        if row is None or row["shop_status"] != status:
            return False
    for o in sandbox.state.rows():
        if o["id"] in driver.kinds and o["status"] != "blocked" and not o["confirmed"]:
            return False
    outbox = shop.csv_shop.outbox
    return not (outbox.exists() and any(p.suffix == ".csv" for p in outbox.iterdir()))


def _report(result: ChaosResult, path: Path, command: str) -> None:
    """Write the figures into ``path``: between markers when the file has them (docs/reliability.md),
    else as the whole file."""
    f, c = result.figures, result.verdict.counts
    lines = [
        f"Last `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{f['seconds']:.0f} s, {'passed' if result.ok else 'FAILED'}):",
        "",
        "| figure | value |",
        "|---|---|",
        f"| orders | {f['orders']} |",
        f"| changes (shop {f['shop_changes']} + MALL {f['mall_changes']} + new orders {f['orders']}) | {f['changes']} |",
        f"| faults injected | {f['faults']} ({', '.join(f'{k} {v}' for k, v in f['fault_kinds'].items())}) |",
        f"| SIGKILLs of the daemon | {f['kills']} |",
        f"| status PUTs sent / applied / refused (400) | {f['status_puts']} / {f['status_applied']} / {f['refused_400']} |",
        f"| outbox files / orders handed / change rows | {f['outbox_files']} / {f['handed_orders']} / {f['change_rows']} |",
        f"| confirmations checked against the outbox | {f['confirmations_checked']} |",
        f"| MALL API requests | {f['requests']} |",
        f"| carrier deliveries (Packeta simulator) / its tracking calls | {f['carrier_delivered']} / {f['carrier_calls']} |",
        f"| quiescent after the faults stopped | {f['quiescent_after_s'] or 0:.1f} s |",
        f"| **duplicates / lost / early confirms / stuck / mismatches / crashes / leaks** | "
        f"**{c['duplicates']} / {c['lost']} / {c['early_confirms']} / {c['stuck']} / {c['mismatches']} / "
        f"{c['crashes']} / {c['leaks']}** |",
        "",
        f"`{result.summary()}`",
    ]
    block = "\n".join(lines)
    begin, end = f"<!-- chaos:{result.size}:begin -->", f"<!-- chaos:{result.size}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + begin + "\n" + block + "\n" + end + rest.split(end, 1)[1]
    else:
        text = f"# Chaos run figures\n\n{begin}\n{block}\n{end}\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.system.chaos.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument("--seed", type=int, default=20261126)
    p.add_argument("--report", type=Path, default=None,
                   help="write the figures here (between <!-- chaos:SIZE:begin/end --> markers if the file has them)")
    p.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temp "
                                                            "folder, kept only when the run fails)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every problem, not just the first 20")
    args = p.parse_args(argv)
    # The sandbox's own complaints about connections a SIGKILLed daemon left behind are expected noise.
    logging.getLogger("mall_connector.sandbox").setLevel(logging.CRITICAL)
    result = run_chaos(args.size, args.seed, folder=args.keep)
    if args.verbose:
        for k, val in sorted(result.figures.items()):
            print(f"  {k}: {val}")
    shown = result.verdict.problems if args.verbose else result.verdict.problems[:20]
    for line in shown:
        print("  " + line.replace("\n", "\n    "))
    if result.folder is not None:
        print(f"  work folder kept: {result.folder}")
    print(result.summary())
    if args.report:
        _report(result, args.report, f"python -m tests.system.chaos.run --size {args.size} --seed {args.seed}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
