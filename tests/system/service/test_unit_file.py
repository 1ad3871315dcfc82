"""The systemd unit: the directives the daemon's behaviour relies on, and systemd's own verdict."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from connector.config import CREDENTIAL_CLIENT_ID, EXIT_CONFIG
from tests.support.paths import ROOT

UNIT = ROOT / "packaging" / "systemd" / "mall-connector.service"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value in order (systemd keys may repeat; configparser cannot say so)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"directive outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line}"
        section.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def one(unit, key, section="Service") -> str:
    values = unit[section].get(key)
    assert values, f"{key}= missing from [{section}]"
    return values[-1]


def test_sections(unit):
    assert set(unit) == {"Unit", "Service", "Install"}
    assert one(unit, "WantedBy", "Install") == "multi-user.target"


def test_lifecycle_directives(unit):
    assert one(unit, "Type") == "notify"
    assert one(unit, "NotifyAccess") == "main"
    assert one(unit, "Restart") == "on-failure"
    assert one(unit, "RestartPreventExitStatus") == str(EXIT_CONFIG) == "78"
    assert int(one(unit, "WatchdogSec")) == 120
    reload_cmd = one(unit, "ExecReload")
    assert "-HUP" in reload_cmd and "$MAINPID" in reload_cmd
    assert int(one(unit, "TimeoutStopSec")) > 30  # the daemon finishes in-flight work within ~30 s
    assert one(unit, "KillMode") == "mixed"


def test_exec_start_runs_the_daemon_with_json_logs(unit):
    cmd = one(unit, "ExecStart").split()
    assert cmd[0].startswith("/"), "systemd needs an absolute path"
    assert cmd[-1] == "run"
    assert cmd[cmd.index("--log-format") + 1] == "json"
    assert cmd[cmd.index("--config") + 1] == "/etc/mall-connector/config.toml"


def test_identity_directories_and_credentials(unit):
    assert one(unit, "User") == "mall-connector"
    assert one(unit, "StateDirectory") == "mall-connector"
    assert one(unit, "ConfigurationDirectory") == "mall-connector"
    assert one(unit, "LoadCredential").split(":", 1)[0] == CREDENTIAL_CLIENT_ID
    assert one(unit, "UMask") == "0077"


def test_hardening(unit):
    expected = {
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
        "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "RestrictNamespaces": "yes",
        "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
    }
    for key, value in expected.items():
        assert one(unit, key) == value, key
    assert "@system-service" in unit["Service"]["SystemCallFilter"]
    # AF_UNIX is how READY=1/WATCHDOG=1 reach systemd; without it Type=notify never starts.
    assert set(one(unit, "RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_it(tmp_path):
    # ExecStart must exist for verify; everything else (every key name and value) is checked as shipped.
    text = UNIT.read_text(encoding="utf-8")
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    copy = tmp_path / "mall-connector.service"
    copy.write_text(text.replace(exec_start, "ExecStart=/bin/true"), encoding="utf-8")
    res = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    output = res.stdout + res.stderr
    assert res.returncode == 0, output
    assert "Unknown" not in output and "ignoring" not in output.lower(), output
