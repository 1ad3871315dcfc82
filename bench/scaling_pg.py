"""Scaling across databases and accounts (issue 18, docs/scaling.md):

* ``db_pass``: one `mall-connector sync-once` pass with N new orders and N shop changes against the sandbox, with the
  ledger on SQLite and on PostgreSQL (a throwaway cluster from tests/support/pg_cluster.py, durable settings): wall time,
  CPU, the process's peak RSS and MALL requests. Run as a subprocess, as the service runs it.
* the accounts: 1, 10 and 100 accounts (``[accounts.<name>] client_id``) sharing one CSV shop against one sandbox
  per account behind one front: bench/accounts.py (also a ``make bench`` part of its own); ``--accounts ""`` skips.

    python -m bench.scaling_pg [--orders 200] [--accounts 1,10,100] [--json]

Wire-in for bench/run.py (owned by the bench/perf work): add "scaling_pg" to PARTS and
``"scaling_pg": lambda: scaling_pg.run()``; bench/report.py can print ``markdown(result)`` as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import SandboxProcess, Shop, http_counts, shop_rows, tempdir


def _run_child(config_path: Path, env: dict) -> dict:
    """One `sync-once` subprocess: wall time, and CPU and peak RSS of that process alone (wait4's rusage)."""
    import tempfile

    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "connector", "--config", str(config_path), "--log-level",
                                 "warning", "sync-once"], cwd=config_path.parent, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")[-400:]
    return {"rc": proc.returncode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024, "stderr": text}


def db_pass(orders: int = 200) -> list[dict]:
    """Each database against its own fresh sandbox (the same MALL state for both)."""
    from tests.support.pg_cluster import PgCluster

    results = []
    cluster = PgCluster.start(durable=True)
    try:
        for backend in ("sqlite", "postgresql"):
            with SandboxProcess() as sandbox, tempdir(f"scaling-{backend}") as folder:
                shop = Shop(folder, sandbox.url)
                env = dict(os.environ)
                if backend == "postgresql":
                    url = cluster.create_database()
                    env["MALL_CONNECTOR_LEDGER_URL"] = url
                warm = _run_child(shop.config_path, env)  # migrations; not reported
                if warm["rc"] != 0:
                    raise RuntimeError(f"{backend}: sync-once failed: {warm['stderr']}")
                ids = sandbox.create_orders(orders)
                first = _run_child(shop.config_path, env)  # inbound: the new orders to the shop
                shop.write_feed(shop_rows(ids, "packing"))
                sandbox.clear_requests()
                push = _run_child(shop.config_path, env)  # outbound: one change per order
                results.append({"backend": backend, "orders": orders, "inbound_s": first["wall_s"],
                                "push_s": push["wall_s"], "push_cpu_s": push["cpu_s"],
                                "peak_rss_mib": max(first["peak_rss_mib"], push["peak_rss_mib"]),
                                "http": http_counts(sandbox.requests())})
    finally:
        cluster.destroy()
    return results


def run(orders: int = 200, accounts=(1, 10, 100)) -> dict:
    """The databases, then (unless ``accounts`` is empty) bench/accounts.py's passes at those account counts."""
    from bench import accounts as accounts_bench

    databases = db_pass(orders)
    return {"databases": databases, "accounts": accounts_bench.run(accounts) if accounts else None}


def markdown(result: dict) -> str:
    lines = ["| ledger | orders | inbound pass (s) | push pass (s) | push CPU (s) | peak RSS (MiB) |",
             "|---|---|---|---|---|---|"]
    for r in result["databases"]:
        lines.append(f"| {r['backend']} | {r['orders']} | {r['inbound_s']:.2f} | {r['push_s']:.2f} | "
                     f"{r['push_cpu_s']:.2f} | {r['peak_rss_mib']:.0f} |")
    if result.get("accounts"):
        from bench import accounts as accounts_bench

        lines += ["", accounts_bench.markdown(result["accounts"])]
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--orders", type=int, default=200)
    p.add_argument("--accounts", default="1,10,100")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    res = run(a.orders, tuple(int(x) for x in a.accounts.split(",") if x.strip()))
    print(json.dumps(res, indent=2, default=str) if a.json else markdown(res))
