"""Issue 16 item 5 ("The unit"): memory and task bounds, and the hardening `systemd-analyze security` asks
for where it does not break the service; checked by systemd's own tools on the shipped file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.system.service.test_unit_file import UNIT, one, parse_unit


@pytest.fixture(scope="module")
def unit():
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def _bytes(value: str) -> int:
    m = re.fullmatch(r"(\d+)([KMG]?)", value)
    assert m, value
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2)]


def test_memory_and_tasks_are_bounded(unit):
    high, top = _bytes(one(unit, "MemoryHigh")), _bytes(one(unit, "MemoryMax"))
    assert 128 * 1024**2 <= high < top <= 1024**3
    tasks = int(one(unit, "TasksMax"))
    from connector.config import ReceiverConfig

    max_threads = ReceiverConfig.model_fields["threads"].metadata[-1].le
    assert max_threads + 16 <= tasks <= 512  # room for every receiver thread plus the scheduler's
    nofile = int(one(unit, "LimitNOFILE"))
    assert nofile > ReceiverConfig().connection_limit + 100


def test_further_hardening(unit):
    assert one(unit, "ProcSubset") == "pid"
    assert one(unit, "PrivateMounts") == "yes"
    assert one(unit, "PrivateIPC") == "yes"
    # Deliberately absent, with the reason in the file: they would break the outbox group / MALL calls.
    assert "PrivateUsers" not in unit["Service"] and "IPAddressDeny" not in unit["Service"]
    text = UNIT.read_text(encoding="utf-8")
    assert "#PrivateUsers=yes" in text and "outbox_group" in text
    assert "#IPAddressDeny=any" in text and "#IPAddressAllow=" in text


def _copy_with_runnable_exec(tmp_path: Path) -> Path:
    text = UNIT.read_text(encoding="utf-8")
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    copy = tmp_path / "mall-connector.service"
    copy.write_text(text.replace(exec_start, "ExecStart=/bin/true"), encoding="utf-8")
    return copy


def test_systemd_analyze_verify_accepts_the_hardened_unit(tmp_path):
    res = subprocess.run(["systemd-analyze", "verify", str(_copy_with_runnable_exec(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Unknown" not in out and "ignoring" not in out.lower(), out


def test_systemd_analyze_security_rates_it_ok(tmp_path):
    res = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                          str(_copy_with_runnable_exec(tmp_path))], capture_output=True, text=True, timeout=60)
    out = res.stdout + res.stderr
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", out)
    assert m, out
    assert float(m.group(1)) <= 1.3 and m.group(2) == "OK", m.group(0)
    failing = {line.split()[1].split("=")[0] for line in out.splitlines() if line.startswith("✗")}
    for directive in ("ProcSubset", "PrivateMounts", "MemoryDenyWriteExecute", "NoNewPrivileges", "UMask"):
        assert directive not in failing
