"""Idle footprint: `mall-connector run` with the default intervals, idle for 60 s after start-up; RSS and CPU
from /proc/<pid>/status and /proc/<pid>/stat. The sandbox (MALL) runs in its own process, so its CPU is not
counted."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

import httpx

from bench.common import ROOT, TOKEN, SandboxProcess, Shop, free_port, shop_rows, tempdir
from bench.procstat import cpu_seconds, memory_kib


def run(idle_s: float = 60.0, settle_s: float = 10.0, feed_rows: int = 200) -> dict:
    with SandboxProcess() as sandbox, tempdir("idle") as folder:
        ids = sandbox.create_orders(feed_rows)
        port = free_port()
        shop = Shop(folder, sandbox.url, receiver=f'[receiver]\nlisten = "127.0.0.1:{port}"\ntokens = ["{TOKEN}"]')
        (folder / "outbox").mkdir(exist_ok=True)  # preflight refuses a missing outbox folder
        shop.write_feed(shop_rows(ids, "packing"))
        exe = shutil.which("mall-connector", path=str(ROOT / ".venv" / "bin")) or shutil.which("mall-connector")
        cmd = [exe] if exe else [sys.executable, "-m", "connector"]
        log = open(folder / "daemon.log", "wb")
        t_start = time.monotonic()
        proc = subprocess.Popen([*cmd, "--config", str(shop.config_path), "run"], stdout=log, stderr=log, cwd=folder)
        try:
            deadline = time.monotonic() + 60
            while True:  # ready = the receiver answers
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"daemon did not start: {(folder / 'daemon.log').read_text()[-2000:]}")
                time.sleep(0.1)
            ready_s = time.monotonic() - t_start
            time.sleep(settle_s)  # the first poll (200 changes pushed), drain and sweep
            start_cpu = cpu_seconds(proc.pid)
            startup_mem = memory_kib(proc.pid)
            t0 = time.monotonic()
            samples = []  # (seconds since the idle start, VmRSS KiB)
            every = max(5.0, idle_s / 20)  # ~20 samples, e.g. every 30 s over 10 minutes
            while time.monotonic() - t0 < idle_s:
                time.sleep(min(every, idle_s - (time.monotonic() - t0)))
                samples.append((time.monotonic() - t0, memory_kib(proc.pid)["VmRSS"]))
            idle_cpu = cpu_seconds(proc.pid) - start_cpu
            wall = time.monotonic() - t0
            mem = memory_kib(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        pushed = sum(1 for o in sandbox.orders().values() if o["status"] == "shipping")
    imports = {}
    for label, extra in (("as installed", []), ("without rich", ["--hide", "rich"])):
        out = subprocess.run([sys.executable, "-m", "bench.imports", *extra], capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
        imports[label] = json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-500:]}
    return {
        "imports": imports,
        "idle_s": wall, "cpu_s": idle_cpu, "cpu_percent": 100 * idle_cpu / wall, "startup_cpu_s": start_cpu,
        "ready_s": ready_s, "rss_mib": mem["VmRSS"] / 1024, "rss_max_sampled_mib": max(k for _, k in samples) / 1024,
        "rss_samples_mib": [(round(t, 1), round(k / 1024, 2)) for t, k in samples],
        "rss_growth_mib": (samples[-1][1] - samples[0][1]) / 1024 if samples else 0.0,
        "peak_rss_mib": mem["VmHWM"] / 1024, "rss_after_startup_mib": startup_mem["VmRSS"] / 1024,
        "threads": mem["Threads"], "pushed_at_startup": pushed, "feed_rows": feed_rows,
        "exit_code": proc.returncode,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--idle", type=float, default=60.0)
    a = p.parse_args()
    print(json.dumps(run(a.idle), indent=2))
