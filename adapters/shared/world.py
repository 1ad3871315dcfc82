"""A shop in a folder, wired to a MALL: the one test world the tests (tests/support/worlds.py), the
benchmarks (bench/common.py) and ``mall-connector demo`` all build on (docs/architecture.md, "Test worlds").

It is here, not under tests/, because the demo and the benchmarks ship and run without the tests; it is
not in connector/ because the core knows no shop. A world has a folder with ``config.toml`` (written
whole by its adapter's world: adapters/generic_csv/world.py, adapters/fastcentrik/world.py), a feed the
shop publishes the way the README tells shops to (a temp file, then a rename), the outbox the connector
writes for the shop, and the real CLI and daemon as subprocesses of this Python.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback TCP port that was free a moment ago (for a daemon that needs its port up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


#: How far in the past a published feed's mtime is set: already settled for any ``settle_s`` a world uses.
SETTLED_S = 5.0


def publish_file(path: Path, data: bytes, seq: int) -> None:
    """Write ``path`` atomically (a temp file, then a rename) with a settled mtime that differs per ``seq``."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    t = time.time() - SETTLED_S + seq * 0.001
    os.utime(path, (t, t))


class ShopWorld:
    """The folder, its config file, the published feed, the outbox, and the CLI run against the config."""

    def __init__(self, folder: Path, *, feed: str | None = None, outbox: str = "outbox"):
        self.folder = Path(folder)
        self.feed = self.folder / feed if feed else None  # an API shop (Shoptet, WooCommerce) has none
        self.outbox = self.folder / outbox
        self.config_path = self.folder / "config.toml"
        self._publications = 0

    # -- the config ----------------------------------------------------------------------------------------
    def write_config(self, text: str, *, private: bool = False) -> Path:
        """Write ``config.toml``; ``private``: mode 0600, as for a file with a client_id and tokens in it."""
        self.config_path.write_text(text, encoding="utf-8")
        if private:
            os.chmod(self.config_path, 0o600)
        return self.config_path

    def config(self):
        from connector.config import load_config

        return load_config(self.config_path)

    # -- the shop's side -----------------------------------------------------------------------------------
    def publish(self, data: bytes, path: Path | None = None) -> None:
        """Publish the feed (or ``path``) atomically: a temp file, then a rename. Its mtime is set in the
        past (settled) and differs on every publication, even within one clock tick, so the connector's
        fingerprint of the file changes each time."""
        self._publications += 1
        publish_file(path or self.feed, data, self._publications)

    def outbox_files(self, prefix: str = "") -> list[Path]:
        """The published outbox files (``*.csv``, never the hidden temp files), by name."""
        if not self.outbox.is_dir():
            return []
        return sorted(p for p in self.outbox.iterdir()
                      if p.suffix == ".csv" and not p.name.startswith(".") and p.name.startswith(prefix))

    def outbox_rows(self, prefix: str) -> list[dict]:
        """Every row of the published outbox files whose name starts with ``prefix`` (``orders``, ``changes``)."""
        return [row for path in self.outbox_files(prefix) for row in read_csv(path)]

    # -- the connector -------------------------------------------------------------------------------------
    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "connector", "--config", str(self.config_path), *args]

    def cli(self, *args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        """Run one CLI command in the world's folder; text output captured."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.command(*args), timeout=timeout, cwd=self.folder, **kw)

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        """Start one CLI command (``run``, ``sync-once`` ...) in the world's folder, stdout/stderr piped."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        return subprocess.Popen(self.command(*args), cwd=self.folder, **kw)

    def daemon(self, **kw) -> "DaemonProcess":
        """The world's ``mall-connector run`` (not started yet)."""
        return DaemonProcess(self.folder, self.config_path, **kw)


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


class DaemonProcess:
    """``mall-connector --config … run`` as a subprocess of this Python: started, SIGKILLed, restarted,
    stopped with SIGTERM. Its output goes to a log file in the folder: ``log`` is a name with ``{n}`` for
    the incarnation (one file each) or a plain name (appended to by every incarnation)."""

    def __init__(self, folder: Path, config_path: Path, *, log_level: str | None = "info",
                 log: str = "logs/daemon-{n:03d}.log", env: dict[str, str] | None = None,
                 new_session: bool = True):
        self.folder = Path(folder)
        self.config_path = Path(config_path)
        self.log_level = log_level
        self.log = log
        self.env = env
        self.new_session = new_session  # a terminal's Ctrl+C reaches only the caller, which stops the daemon
        self.proc: subprocess.Popen | None = None
        self.incarnation = 0
        self.kills = 0
        self.kill_times: list[float] = []
        self.exit_codes: list[int] = []
        self.timed_out = False  # the last stop() had to SIGKILL after its timeout
        self.log_paths: list[Path] = []
        self._log = None

    def start(self) -> subprocess.Popen:
        assert self.proc is None or self.proc.poll() is not None
        self._reap()  # the incarnation that ended by itself
        self.incarnation += 1
        path = self.folder / self.log.format(n=self.incarnation)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path not in self.log_paths:
            self.log_paths.append(path)
        self._log = open(path, "ab")
        level = ["--log-level", self.log_level] if self.log_level else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector", "--config", str(self.config_path), *level, "run"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.folder, env=self.env,
            start_new_session=self.new_session,
        )
        return self.proc

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        """The exit status of the running incarnation once it ended, else of the last reaped one."""
        if self.proc is not None:
            return self.proc.poll()
        return self.exit_codes[-1] if self.exit_codes else None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, the worst a crash or an OOM killer can do."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.kills += 1
            self.kill_times.append(time.time())
        self._reap()

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and wait for the clean exit; its code (0 expected). After ``timeout`` it is SIGKILLed
        and ``timed_out`` is set."""
        self.timed_out = False
        if not self.alive():
            self._reap()
            return self.exit_codes[-1] if self.exit_codes else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.proc.kill()
            self.proc.wait()
        return self._reap()

    def _reap(self) -> int | None:
        if self.proc is None:
            return None
        code = self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.exit_codes.append(code)
        self.proc = None
        return code

    def log_text(self) -> str:
        return "".join(p.read_text(encoding="utf-8", errors="replace") for p in self.log_paths if p.exists())

    def log_bytes(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.log_paths if p.exists())


def config_text(adapter: str, *, mall_url: str, client_id: str, timeout_s: float | None = None,
                ledger_url: str = "sqlite:///ledger.db", sync: str = "", sections: str = "", shop: str = "",
                mapping: str | None = None, section: str = "", extra: str = "") -> str:
    """A whole ``config.toml`` for ``adapter``: [mall], [ledger], [sync] (``sync``: its lines), then
    ``sections`` (e.g. a [receiver]), [shop] (``shop``: more of its lines, ``mapping``: its file),
    [shop.<adapter>] (``section``: its lines) and ``extra`` (more lines of that section, or more sections)."""

    def lines(text: str) -> str:
        return text if not text or text.endswith("\n") else text + "\n"

    timeout = f"timeout_s = {timeout_s}\n" if timeout_s is not None else ""
    mapping_line = f'mapping = "{mapping}"\n' if mapping else ""
    return (f'[mall]\nbase_url = "{mall_url}"\nclient_id = "{client_id}"\n{timeout}'
            f'[ledger]\nurl = "{ledger_url}"\n'
            f"[sync]\n{lines(sync)}{lines(sections)}"
            f'[shop]\nadapter = "{adapter}"\n{lines(shop)}{mapping_line}'
            f"[shop.{adapter}]\n{lines(section)}{extra}")
