"""React in seconds: the latency from a shop feed's rename to the PUT arriving at the sandbox, with `mall-connector
run` watching the feed (inotify) and the poll interval at an hour, so only the watcher can explain the PUT.

Each sample: one more order's row turns `shipped`; the feed is written to a temp file and renamed over the feed
(its mtime is *now*, so the daemon waits ``settle_s`` as it would for a real shop); the latency is the sandbox's
timestamp of that order's PUT minus the time of the rename (one clock, one machine)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import httpx

from bench.common import FEED_COLUMNS, ROOT, TOKEN, SandboxProcess, Shop, free_port, percentile, tempdir


def _ready(port: int) -> bool:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
        return bool(r.json().get("checks", {}).get("recent_jobs", {}).get("poll"))
    except (httpx.HTTPError, ValueError):
        return False


def _write_renamed(path, rows: list[dict]) -> float:
    import csv

    tmp = path.with_name(f".{path.name}.part")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FEED_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
    return time.time()


def run(samples: int = 20, settle_s: float = 2.0, timeout_s: float = 60.0) -> dict:
    with SandboxProcess() as sandbox, tempdir("react") as folder:
        ids = sandbox.create_orders(samples)
        port = free_port()
        shop = Shop(folder, sandbox.url, sync="poll_interval_s = 3600\ndrain_interval_s = 5\nsweep_interval_s = 3600",
                    receiver=f'[receiver]\nlisten = "127.0.0.1:{port}"\ntokens = ["{TOKEN}"]')
        shop.config_path.write_text(shop.config_path.read_text(encoding="utf-8").replace(
            "settle_s = 0", f"settle_s = {settle_s}"), encoding="utf-8")
        (folder / "outbox").mkdir(exist_ok=True)
        exe = shutil.which("mall-connector", path=str(ROOT / ".venv" / "bin")) or shutil.which("mall-connector")
        cmd = [exe] if exe else [sys.executable, "-m", "connector"]
        log = open(folder / "daemon.log", "wb")
        proc = subprocess.Popen([*cmd, "--config", str(shop.config_path), "run"], stdout=log, stderr=log, cwd=folder)
        latencies: list[float] = []
        try:
            deadline = time.monotonic() + 60
            while not _ready(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"daemon did not start: {(folder / 'daemon.log').read_text()[-2000:]}")
                time.sleep(0.1)
            rows = [{"mall_order_id": oid, "status": "packing", "shop_order_id": f"S{i}"} for i, oid in enumerate(ids)]
            _write_renamed(shop.feed, rows)  # every order to `shipping` first (not measured)
            end = time.monotonic() + timeout_s
            while sum(1 for r in sandbox.requests() if r["method"] == "PUT") < len(ids):
                if time.monotonic() > end:
                    raise RuntimeError("the start-up feed was not pushed")
                time.sleep(0.1)
            time.sleep(0.5)
            for i, oid in enumerate(ids):
                rows[i] = {**rows[i], "status": "shipped", "tracking_number": f"T{i:06d}", "carrier": "PPL"}
                t_rename = _write_renamed(shop.feed, rows)
                end = time.monotonic() + timeout_s
                put = None
                while put is None and time.monotonic() < end:
                    time.sleep(0.05)
                    put = next((r for r in sandbox.requests() if r["method"] == "PUT" and r["order_id"] == oid
                                and r["status_code"] == 200 and isinstance(r.get("body"), dict)
                                and r["body"].get("status") == "shipped"), None)
                if put is None:
                    raise RuntimeError(f"no PUT for order {oid} within {timeout_s:g} s of the rename")
                latencies.append(put["ts"] - t_rename)
                time.sleep(0.3)
            watched = "watching shop feed" in (folder / "daemon.log").read_text(encoding="utf-8", errors="replace")
        finally:
            proc.terminate()
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    return {"samples": len(latencies), "settle_s": settle_s, "poll_interval_s": 3600, "watched": watched,
            "median_s": percentile(latencies, 50), "p99_s": percentile(latencies, 99), "max_s": max(latencies),
            "min_s": min(latencies), "latencies_s": [round(x, 3) for x in latencies]}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--settle", type=float, default=2.0)
    a = p.parse_args()
    print(json.dumps(run(a.samples, a.settle), indent=2))
