"""A CSV shop in a temp folder wired to a sandbox: config file, feed writer, outbox reader, CLI runner."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

from connector.config import load_config
from tests.conftest import TEST_CLIENT_ID

FEED_COLUMNS = ["mall_order_id", "status", "shop_order_id", "tracking_number", "tracking_url", "carrier",
                "delivered_at", "first_delivery_attempt"]


class CsvShop:
    def __init__(self, folder: Path, sandbox, *, extra: str = "", mapping: str | None = None,
                 receiver_listen: str | None = None, tokens: list[str] | None = None, sync: str = ""):
        self.folder = folder
        self.sandbox = sandbox
        self.feed = folder / "shop.csv"
        self.outbox = folder / "outbox"
        self.outbox.mkdir(exist_ok=True)  # `run` exits 78 without it (the folder is shared with the shop)
        self.config_path = folder / "config.toml"
        mapping_line = f'mapping = "{mapping}"\n' if mapping else ""
        receiver = ""
        if receiver_listen or tokens:
            receiver = "[receiver]\n"
            if receiver_listen:
                receiver += f'listen = "{receiver_listen}"\n'
            if tokens:
                receiver += "tokens = [" + ", ".join(f'"{t}"' for t in tokens) + "]\n"
        self.config_path.write_text(
            f"""[mall]
base_url = "{sandbox.url}"
client_id = "{TEST_CLIENT_ID}"
timeout_s = 5
[ledger]
url = "sqlite:///ledger.db"
[sync]
retry_base_s = 0.05
retry_max_s = 0.2
max_attempts = 12
{sync}{receiver}[shop]
adapter = "generic_csv"
{mapping_line}[shop.generic_csv]
source = "shop.csv"
outbox = "outbox"
settle_s = 0
{extra}""",
            encoding="utf-8",
        )
        self.write_feed([])

    def config(self):
        return load_config(self.config_path)

    def write_feed(self, rows: list[dict], *, encoding: str = "utf-8", delimiter: str = ",") -> None:
        """Write the feed the way the README tells shops to: a temp file, then a rename."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=FEED_COLUMNS, delimiter=delimiter, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
        tmp = self.feed.with_suffix(".tmp")
        tmp.write_bytes(buf.getvalue().encode(encoding))
        os.replace(tmp, self.feed)
        # Settled (in the past) and distinct per write, even within one clock tick, so the fingerprint changes.
        self._bump = getattr(self, "_bump", 0) + 1
        t = time.time() - 5 + self._bump * 0.001
        os.utime(self.feed, (t, t))

    def outbox_rows(self, prefix: str) -> list[dict]:
        rows = []
        if not self.outbox.exists():
            return rows
        for f in sorted(self.outbox.iterdir()):
            if f.name.startswith(prefix) and f.suffix == ".csv":
                with f.open(encoding="utf-8", newline="") as fh:
                    rows.extend(csv.DictReader(fh))
        return rows

    def cli(self, *args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "connector", "--config", str(self.config_path), *args],
                              capture_output=True, text=True, timeout=timeout, cwd=self.folder, **kw)

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "connector", "--config", str(self.config_path), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.folder, **kw)


def status_puts(sandbox, order_id: int | None = None) -> list:
    """PUTs that asked for a status change (not pure confirmations)."""
    return [e for e in sandbox.request_log.puts(order_id) if isinstance(e.body, dict) and "status" in e.body]


def applied_status_puts(sandbox, order_id: int | None = None) -> list:
    return [e for e in status_puts(sandbox, order_id) if e.applied]
