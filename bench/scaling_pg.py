"""Scaling across databases and accounts (issue 18, docs/scaling.md):

* ``db_pass``: one `mall-connector sync-once` pass with N new orders and N shop changes against the sandbox, with the
  ledger on SQLite and on PostgreSQL (a throwaway cluster from tests/pg/cluster.py, durable settings): wall time,
  CPU, the process's peak RSS and MALL requests. Run as a subprocess, as the service runs it.
* ``accounts_pass``: the same pass with 1, 10 and 100 accounts (``[accounts.<name>] client_id``, issue 18 item 1)
  sharing one CSV shop: wall time and peak RSS. It needs the accounts support of the "accounts" branch; on a build
  without it the config is refused and the figure is reported as not available (with the config error).

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

from bench.common import CLIENT_ID, SandboxProcess, Shop, http_counts, shop_rows, tempdir


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
    from tests.pg.cluster import PgCluster

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


def _accounts_config(shop: Shop, n: int) -> None:
    """The single [mall] client_id replaced by ``n`` accounts (names a1..aN) of the issue's config shape."""
    text = shop.config_path.read_text(encoding="utf-8").replace(f'client_id = "{CLIENT_ID}"\n', "")
    accounts = "".join(f'\n[accounts.a{i}]\nclient_id = "{CLIENT_ID}-{i:03d}"\n' for i in range(1, n + 1))
    shop.config_path.write_text(text + accounts, encoding="utf-8")


def accounts_pass(sandbox: SandboxProcess, counts=(1, 10, 100), orders: int = 100) -> list[dict]:
    out = []
    for n in counts:
        with tempdir(f"accounts-{n}") as folder:
            shop = Shop(folder, sandbox.url)
            _accounts_config(shop, n)
            r = _run_child(shop.config_path, dict(os.environ))
            if r["rc"] != 0:
                out.append({"accounts": n, "available": False, "error": r["stderr"].strip().splitlines()[-1:]})
                continue
            ids = sandbox.create_orders(orders)
            shop.write_feed(shop_rows(ids, "packing"))
            r = _run_child(shop.config_path, dict(os.environ))
            out.append({"accounts": n, "available": r["rc"] == 0, "pass_s": r["wall_s"],
                        "peak_rss_mib": r["peak_rss_mib"], "error": None if r["rc"] == 0 else r["stderr"][-300:]})
    return out


def run(orders: int = 200, accounts=(1, 10, 100)) -> dict:
    databases = db_pass(orders)
    with SandboxProcess() as sandbox:
        return {"databases": databases, "accounts": accounts_pass(sandbox, accounts)}


def markdown(result: dict) -> str:
    lines = ["| ledger | orders | inbound pass (s) | push pass (s) | push CPU (s) | peak RSS (MiB) |",
             "|---|---|---|---|---|---|"]
    for r in result["databases"]:
        lines.append(f"| {r['backend']} | {r['orders']} | {r['inbound_s']:.2f} | {r['push_s']:.2f} | "
                     f"{r['push_cpu_s']:.2f} | {r['peak_rss_mib']:.0f} |")
    lines += ["", "| accounts | sync pass (s) | peak RSS (MiB) |", "|---|---|---|"]
    for r in result["accounts"]:
        if r["available"]:
            lines.append(f"| {r['accounts']} | {r['pass_s']:.2f} | {r['peak_rss_mib']:.0f} |")
        else:
            lines.append(f"| {r['accounts']} | not available in this build | {' '.join(r['error'] or [])[:120]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--orders", type=int, default=200)
    p.add_argument("--accounts", default="1,10,100")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    res = run(a.orders, tuple(int(x) for x in a.accounts.split(",")))
    print(json.dumps(res, indent=2, default=str) if a.json else markdown(res))
