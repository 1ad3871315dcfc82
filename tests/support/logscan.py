"""pytest plugin: no log line written during the test suite may carry the test client_id or a webhook token.

Enable it from the top-level conftest (tests/conftest.py)::

    pytest_plugins = ["tests.support.logscan"]

or for one run: ``pytest -p tests.support.logscan``.

What it watches:

* **this process**: a handler on the root logger sees every record any logger emits during the session (at
  whatever level the code and the tests set), and checks its message, its exception and its stack text;
* **subprocesses** the tests start (``mall-connector run``, ``sync-once``, the CLI ...): the plugin puts
  ``tests/support/_tee`` on ``PYTHONPATH``; its ``sitecustomize`` copies everything such a Python process
  writes to stdout and stderr (logs, tracebacks, CLI error lines) into a file per process, which is scanned
  when the test that started the process ends, and again when the session ends (daemons outlive their test).

What it looks for: the test client_id (tests/conftest.py ``TEST_CLIENT_ID``), every module-level string of
a test module or conftest whose name says TOKEN, CLIENT_ID or SECRET (16+ characters), a client_id in a
URL query (``client_id=`` not followed by ``***``) and a token in a webhook path (``/webhooks/mall/`` not
followed by ``***``). A hit fails the test during which it was written, naming the logger and the text.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

TEE_DIR = Path(__file__).resolve().parent / "_tee"
ENV_DIR = "MALL_CONNECTOR_LOGSCAN_DIR"
ENV_TEST = "MALL_CONNECTOR_LOGSCAN_TEST"
NAME = re.compile(r"TOKEN|CLIENT_ID|SECRET", re.I)
PATTERNS = (
    re.compile(r"[?&]client_id=(?!\*\*\*|<)[^&\s'\"]+"),  # <your --client-id> in a help text is no secret
    re.compile(r"/webhooks/mall/(?!\*\*\*)[A-Za-z0-9._~-]{16,}"),
)


class SecretScanner:
    """Finds secrets in text; ``secrets`` can grow while the session collects modules."""

    def __init__(self, secrets=()):
        self.secrets: set[str] = {s for s in secrets if s and len(s) >= 12}

    def add_from(self, namespace: dict) -> None:
        for name, value in namespace.items():
            if isinstance(value, str) and len(value) >= 16 and NAME.search(name) and not name.startswith("__"):
                self.secrets.add(value)

    def find(self, text: str) -> list[str]:
        hits = [f"secret {s[:4]}…" for s in self.secrets if s in text]
        hits += [f"pattern {m.group(0)[:24]}…" for p in PATTERNS for m in p.finditer(text)]
        return hits


class LeakHandler(logging.Handler):
    """Root handler: records every log record that carries a secret (message, exception, stack)."""

    def __init__(self, scanner: SecretScanner):
        super().__init__(level=logging.NOTSET)
        self.scanner = scanner
        self.leaks: list[str] = []
        self._guard = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._guard, "busy", False):
            return
        self._guard.busy = True
        try:
            try:
                text = record.getMessage()
            except Exception:  # noqa: BLE001 - a bad format string is the caller's bug, not a leak
                text = str(record.msg)
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                text += "\n" + record.exc_text
            if record.stack_info:
                text += "\n" + record.stack_info
            hits = self.scanner.find(text)
            if hits:
                self.leaks.append(f"{record.name} {record.levelname}: {', '.join(hits)}: {text[:300]!r}")
        finally:
            self._guard.busy = False


class LogScan:
    def __init__(self, config: pytest.Config):
        from tests.conftest import TEST_CLIENT_ID

        self.config = config
        self.scanner = SecretScanner([TEST_CLIENT_ID])
        self.handler = LeakHandler(self.scanner)
        self.dir = Path(tempfile.mkdtemp(prefix="logscan-"))
        self.reported: set[tuple[str, str]] = set()
        self.owners: dict[str, str] = {}  # output file -> the test that started the process
        self.session_leaks: list[str] = []
        self._saved_env = {k: os.environ.get(k) for k in ("PYTHONPATH", ENV_DIR, ENV_TEST)}

    # -- session ----------------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session):
        logging.getLogger().addHandler(self.handler)
        os.environ[ENV_DIR] = str(self.dir)
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(TEE_DIR), os.environ.get("PYTHONPATH")) if p)

    def pytest_collection_modifyitems(self, session, config, items):
        for plugin in config.pluginmanager.get_plugins():  # conftest modules
            if getattr(plugin, "__file__", "") and "conftest" in str(plugin.__file__):
                self.scanner.add_from(vars(plugin))
        seen = set()
        for item in items:
            module = getattr(item, "module", None)
            if module is not None and module.__name__ not in seen:
                seen.add(module.__name__)
                self.scanner.add_from(vars(module))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        os.environ[ENV_TEST] = item.nodeid
        yield
        os.environ.pop(ENV_TEST, None)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        leaks = self.handler.leaks[:]
        self.handler.leaks.clear()
        if call.when == "teardown":
            leaks += self._scan_files(item.nodeid)
        if leaks and report.outcome != "failed":
            report.outcome = "failed"
            report.longrepr = ("a secret reached a log line or a subprocess's output (tests/support/logscan.py):\n  "
                               + "\n  ".join(leaks[:20]))

    def pytest_sessionfinish(self, session, exitstatus):
        logging.getLogger().removeHandler(self.handler)
        self.session_leaks = self.handler.leaks + self._scan_files(None)
        if self.session_leaks and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def pytest_terminal_summary(self, terminalreporter):
        if self.session_leaks:
            terminalreporter.section("secrets in log lines (tests/support/logscan.py)", red=True)
            for line in self.session_leaks[:50]:
                terminalreporter.line(line)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- subprocess output ------------------------------------------------------------------------
    def _scan_files(self, nodeid: str | None) -> list[str]:
        """Scan the output files of the processes started during test ``nodeid`` (None: every file)."""
        out = []
        for path in sorted(self.dir.glob("*.out")):
            owner = self.owners.get(path.name)
            if owner is None:
                try:
                    with open(path, encoding="utf-8", errors="replace") as f:
                        owner = self.owners[path.name] = f.readline().rstrip("\n")
                except OSError:
                    continue
            if nodeid is not None and owner != nodeid:
                continue
            try:
                body = path.read_text(encoding="utf-8", errors="replace").partition("\n")[2]
            except OSError:
                continue
            for hit in self.scanner.find(body):
                if (path.name, hit) not in self.reported:
                    self.reported.add((path.name, hit))
                    line = next((ln for ln in body.splitlines() if hit.split(" ", 1)[1].rstrip("…") in ln), "")
                    out.append(f"subprocess output of {owner or 'the session'} ({path.name}): {hit}: {line[:300]!r}")
        return out


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("mall-connector-logscan"):
        config.pluginmanager.register(LogScan(config), "mall-connector-logscan")
