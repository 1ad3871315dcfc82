"""Accounts (issue 18, docs/scaling.md): one sync pass with 1, 10 and 100 MALL accounts sharing one CSV shop.

Three kinds of process, so that what is measured does not share memory or a GIL with what measures it:

* the **MALL side**: ``python -m bench.accounts --serve N`` runs N sandboxes behind one ``MallFront``
  (connector/sandbox/front.py, one SandboxServer per client_id) and prints their addresses;
* the **connector**: ``python -m bench.accounts --pass CONFIG`` is one `sync-once` (``Services`` + ``sync_once``,
  the sweep included, as the command runs it) that reports its own start-up and pass time, CPU, SQL statements
  and peak RSS (VmHWM, bench/procstat.py);
* this **driver**: creates the orders through each sandbox's operator endpoints, writes the shop feed and counts
  the MALL requests from the sandboxes' request logs.

Per account count: a warm pass (migrations; not reported), a pass taking ``orders`` new orders per account into
the shop (``inbound``), then the steady pass that is reported (``steady``): ``orders`` new orders per account AND a
shop change for each order of the previous pass (``orders`` PUTs per account).

    python -m bench.accounts [--accounts 1,10,100] [--orders 20] [--json]

Wire-in for bench/run.py: ``from bench import accounts`` and ``"accounts": lambda: accounts.run()`` in ``steps``
(plus "accounts" in PARTS); bench/report.py can print ``accounts.markdown(result)`` as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.common import CLIENT_ID, ROOT, Shop, http_counts, shop_rows, tempdir


def client_ids(n: int) -> list[str]:
    return [f"{CLIENT_ID}-{i:03d}" for i in range(1, n + 1)]


# -- the MALL side, in a process of its own --------------------------------------------------------------

def serve(n: int) -> None:
    """N sandboxes behind one front on loopback; prints one JSON line of addresses, stops when stdin closes."""
    from connector.sandbox.front import AccountsSandbox

    with AccountsSandbox(client_ids(n)) as world:
        print(json.dumps({"front": world.url, "boxes": {cid: box.url for cid, box in world.sandboxes.items()}}),
              flush=True)
        sys.stdin.read()


class MallSide:
    def __init__(self, n: int):
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.accounts", "--serve", str(n)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the MALL side of {n} accounts exited with {self.proc.wait()}")
        addresses = json.loads(line)
        self.url = addresses["front"]
        self.boxes = addresses["boxes"]
        self.op = httpx.Client(timeout=120)

    def create_orders(self, per_account: int) -> list[int]:
        ids = []
        for url in self.boxes.values():
            r = self.op.post(f"{url}/_sandbox/orders", json={"count": per_account, "kind": "normal", "status": "open"})
            r.raise_for_status()
            ids += [o["id"] for o in r.json()["orders"]]
        return ids

    def clear_requests(self) -> None:
        for url in self.boxes.values():
            self.op.delete(f"{url}/_sandbox/requests").raise_for_status()

    def requests(self) -> list[dict]:
        out = []
        for url in self.boxes.values():
            r = self.op.get(f"{url}/_sandbox/requests")
            r.raise_for_status()
            out += r.json()["requests"]
        return out

    def close(self) -> None:
        self.op.close()
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the connector, one measured process per pass --------------------------------------------------------

def measure_pass(config_path: str) -> dict:
    """One `sync-once` in this process: start-up (config, Services: one MallClient per account) and the pass."""
    from bench.common import StatementCounter
    from bench.procstat import memory_kib
    from connector.config import load_config
    from connector.sync.runner import Services, sync_once

    t0, c0 = time.perf_counter(), time.process_time()
    services = Services(load_config(Path(config_path)))
    counter = StatementCounter(services.ledger.engine)
    t1, c1 = time.perf_counter(), time.process_time()
    summary = sync_once(services, wait_for_settle=False, sweep=True)
    t2, c2 = time.perf_counter(), time.process_time()
    statements, commits = counter.count, counter.commits
    counter.close()
    services.close()
    mem = memory_kib(os.getpid())
    return {"startup_s": t1 - t0, "startup_cpu_s": c1 - c0, "pass_s": t2 - t1, "pass_cpu_s": c2 - c1,
            "statements": statements, "commits": commits, "pushed": summary.push.pushed,
            "handed": summary.inbound.handed, "confirmed": summary.inbound.confirmed,
            "peak_rss_mib": mem["VmHWM"] / 1024, "threads": mem.get("Threads")}


def _child_env() -> dict:
    """The environment without any MALL_* secret, ledger override or systemd credential of this machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALL_", "CREDENTIALS_DIRECTORY"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _run_pass(config_path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.accounts", "--pass", str(config_path)], cwd=config_path.parent,
                          env=_child_env(), capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"the measured pass failed ({proc.returncode}): {proc.stderr[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _accounts_config(shop: Shop, n: int) -> None:
    """The single [mall] client_id replaced by ``n`` accounts a001..aN of the issue's config shape."""
    text = shop.config_path.read_text(encoding="utf-8").replace(f'client_id = "{CLIENT_ID}"\n', "")
    text += "".join(f'\n[accounts.a{i:03d}]\nclient_id = "{cid}"\n' for i, cid in enumerate(client_ids(n), 1))
    shop.config_path.write_text(text, encoding="utf-8")


def accounts_pass(n: int, orders: int = 20) -> dict:
    mall = MallSide(n)
    try:
        with tempdir(f"accounts-{n}") as folder:
            shop = Shop(folder, mall.url)
            _accounts_config(shop, n)
            shop.write_feed([])
            warm = _run_pass(shop.config_path)
            first = mall.create_orders(orders)
            mall.clear_requests()
            inbound = _run_pass(shop.config_path)
            inbound["http"] = http_counts(mall.requests())
            mall.create_orders(orders)
            shop.write_feed(shop_rows(first, "packing"))
            mall.clear_requests()
            steady = _run_pass(shop.config_path)
            steady["http"] = http_counts(mall.requests())
            if steady["pushed"] != n * orders:
                raise RuntimeError(f"{n} accounts: pushed {steady['pushed']} of {n * orders}")
            return {"accounts": n, "orders_per_account": orders, "warm": warm, "inbound": inbound, "steady": steady}
    finally:
        mall.close()


def run(counts=(1, 10, 100), orders: int = 20) -> dict:
    return {"passes": [accounts_pass(n, orders) for n in counts]}


def markdown(result: dict) -> str:
    lines = ["| accounts | orders in + changes out | start-up (s, imports excluded) | pass wall (s) | pass CPU (s) | per account CPU (ms) "
             "| statements | MALL requests (GET one / list / PUT) | peak RSS (MiB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["passes"]:
        s, n = r["steady"], r["accounts"]
        h = s["http"]
        lines.append(f"| {n} | {s['handed']} + {s['pushed']} | {s['startup_s']:.2f} | "
                     f"{s['pass_s']:.2f} | {s['pass_cpu_s']:.2f} | {s['pass_cpu_s'] / n * 1000:.0f} | "
                     f"{s['statements']} | {h['total']} ({h['get_order']} / {h['list']} / {h['put']}) | "
                     f"{s['peak_rss_mib']:.0f} |")
    lines += ["", "The first pass (orders in only), same columns:", "",
              "| accounts | orders in | pass wall (s) | pass CPU (s) | statements | MALL requests | peak RSS (MiB) |",
              "|---|---|---|---|---|---|---|"]
    for r in result["passes"]:
        s = r["inbound"]
        lines.append(f"| {r['accounts']} | {s['handed']} | {s['pass_s']:.2f} | {s['pass_cpu_s']:.2f} | "
                     f"{s['statements']} | {s['http']['total']} | {s['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accounts", default="1,10,100", help="comma-separated account counts")
    p.add_argument("--orders", type=int, default=20, help="new orders and shop changes per account and pass")
    p.add_argument("--json", action="store_true", help="the raw figures instead of the Markdown table")
    p.add_argument("--serve", type=int, metavar="N", help=argparse.SUPPRESS)
    p.add_argument("--pass", dest="pass_config", metavar="CONFIG", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        serve(a.serve)
    elif a.pass_config:
        print(json.dumps(measure_pass(a.pass_config)))
    else:
        res = run(tuple(int(x) for x in a.accounts.split(",")), a.orders)
        print(json.dumps(res, indent=2) if a.json else markdown(res))
