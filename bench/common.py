"""Shared helpers of the benchmarks: machine facts, percentiles, a sandbox in its own process, a CSV shop,
and SQL statement counting."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Iterator

import httpx

from adapters.generic_csv.world import FEED_COLUMNS as BASE_FEED_COLUMNS
from adapters.generic_csv.world import CsvWorld, csv_bytes
from adapters.shared.world import publish_file

CLIENT_ID = "bench-client-id-0123456789"
TOKEN = "bench-webhook-token-7f3a9c1e5b8d2046"  # >= 128 bits, not sequential (issue 16 item 7)
ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mall-connector", "Flask", "Werkzeug", "waitress", "SQLAlchemy", "alembic", "httpx", "httpcore",
            "pydantic", "APScheduler", "prometheus_client", "tenacity")


def now() -> float:
    return time.perf_counter()


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening on {port}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def fsync_latency_ms(folder: str, n: int = 200) -> float:
    """Median time of a 4 KiB write + fsync in ``folder`` (what one SQLite commit with synchronous=FULL costs)."""
    fd, path = tempfile.mkstemp(dir=folder)
    try:
        times = []
        for _ in range(n):
            t = now()
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            times.append(now() - t)
        return percentile(times, 50) * 1000
    finally:
        os.close(fd)
        os.unlink(path)


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    return {
        "CPU": cpu,
        "cores": f"{os.cpu_count()} logical ({affinity} usable by this process)",
        "memory": mem,
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "SQLite": sqlite3.sqlite_version,
        "packages": ", ".join(versions),
        "fsync (4 KiB write + fsync, median)": f"{fsync_latency_ms(tempfile.gettempdir()):.2f} ms on {tempfile.gettempdir()}",
    }


# -- the MALL sandbox, in a process of its own (as MALL is remote: its CPU must not share our GIL) ---------

class SandboxProcess:
    """`mall-connector sandbox` on a free loopback port, driven through its operator endpoints."""

    def __init__(self, *, log_path: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "--log-level", "warning", "sandbox",
             "--listen", f"127.0.0.1:{self.port}", "--client-id", CLIENT_ID, "--orders", "0"],
            stdout=subprocess.DEVNULL, stderr=self._log, cwd=ROOT,
        )
        wait_port(self.port, proc=self.proc)
        self.op = httpx.Client(base_url=f"{self.url}/_sandbox", timeout=120)

    def create_orders(self, count: int, *, status: str = "open", kind: str = "normal") -> list[int]:
        ids: list[int] = []
        while count > 0:
            n = min(count, 20_000)
            r = self.op.post("/orders", json={"count": n, "kind": kind, "status": status})
            r.raise_for_status()
            ids += [o["id"] for o in r.json()["orders"]]
            count -= n
        return ids

    def orders(self) -> dict[int, dict]:
        r = self.op.get("/orders")
        r.raise_for_status()
        return {o["id"]: o for o in r.json()["orders"]}

    def requests(self) -> list[dict]:
        r = self.op.get("/requests")
        r.raise_for_status()
        return r.json()["requests"]

    def clear_requests(self) -> None:
        self.op.delete("/requests").raise_for_status()

    def set_faults(self, **knobs) -> None:
        self.op.post("/faults", json=knobs).raise_for_status()

    def reset_faults(self) -> None:
        self.op.delete("/faults").raise_for_status()

    def close(self) -> None:
        self.op.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()

    def __enter__(self) -> "SandboxProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def http_counts(requests: list[dict]) -> dict[str, int]:
    """Requests of a sandbox log by kind: GET one order, GET a list, PUT, and 429 answers."""
    out = {"get_order": 0, "list": 0, "put": 0, "429": 0, "total": len(requests)}
    for r in requests:
        if r["method"] == "PUT":
            out["put"] += 1
        elif r["order_id"] is not None:
            out["get_order"] += 1
        else:
            out["list"] += 1
        if r["status_code"] == 429:
            out["429"] += 1
    return out


# -- a generic-CSV shop in a folder ----------------------------------------------------------------------

FEED_COLUMNS = (*BASE_FEED_COLUMNS, "location")


class Shop(CsvWorld):
    """The shared generic-CSV world (adapters/generic_csv/world.py) with the benchmarks' client_id, a 30 s
    MALL timeout and the picking ``location`` column; ``sync``: [sync] lines, ``receiver``: a [receiver]."""

    def __init__(self, folder: Path, mall_url: str, sync: str = "", receiver: str = ""):
        super().__init__(folder, mall_url, CLIENT_ID, columns=FEED_COLUMNS, timeout_s=30, sync=sync,
                         sections=receiver)


def write_feed(path: Path, rows: list[dict]) -> None:
    """Write a generic CSV feed atomically, with an mtime in the past (settled) that changes on every write."""
    write_feed.bump = getattr(write_feed, "bump", 0) + 1
    publish_file(path, csv_bytes(rows, FEED_COLUMNS), write_feed.bump)


def shop_rows(ids: list[int], status: str, offset: int = 0) -> list[dict]:
    rows = []
    for i, oid in enumerate(ids):
        row = {"mall_order_id": oid, "status": status, "shop_order_id": f"S{offset + i:07d}", "carrier": "PPL",
               "location": f"A-{i % 40:02d}-{i % 7}"}
        if status == "shipped":
            row["tracking_number"] = f"PPL{offset + i:09d}"
        rows.append(row)
    return rows


# -- counting SQL statements ------------------------------------------------------------------------------

class StatementCounter:
    """Counts statements an engine sends (BEGIN/COMMIT issued by the connector's own hooks included)."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.engine = engine
        self.count = 0
        self.commits = 0
        self._event = event
        event.listen(engine, "before_cursor_execute", self._on_execute)
        event.listen(engine, "commit", self._on_commit)

    def _on_execute(self, *args, **kw) -> None:
        self.count += 1

    def _on_commit(self, *args, **kw) -> None:
        self.commits += 1

    def reset(self) -> None:
        self.count = 0
        self.commits = 0

    def close(self) -> None:
        self._event.remove(self.engine, "before_cursor_execute", self._on_execute)
        self._event.remove(self.engine, "commit", self._on_commit)


@contextlib.contextmanager
def tempdir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"mall-bench-{prefix}-") as d:
        yield Path(d)
