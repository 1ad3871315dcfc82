"""One ledger whoever runs the command: read-only commands never create one; the path rule is one rule."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from connector.cli import main

READ_ONLY = [
    ["ledger", "list"], ["ledger", "list", "--needs-action"], ["ledger", "show", "123"],
    ["orders", "list"], ["export", "picking", "-o", "{tmp}/p.xlsx"],
    ["export", "billing", "--from", "2026-11-01", "--to", "2026-11-15", "-o", "{tmp}/b.xlsx"],
]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "etc" / "config.toml"
    path.parent.mkdir()
    path.write_text(f'[mall]\nclient_id = "cid-123456789"\n[ledger]\nurl = "sqlite:///{tmp_path}/state/ledger.db"\n')
    (tmp_path / "state").mkdir()
    return path


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a[:2]))
def test_read_only_commands_never_create_a_ledger(config, tmp_path, args):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = CliRunner().invoke(main, ["--config", str(config), *args])
    assert r.exit_code == 66, r.output
    assert f"no ledger at {tmp_path}/state/ledger.db" in r.output and "StateDirectory" in r.output
    assert not (tmp_path / "state" / "ledger.db").exists()
    assert list((tmp_path / "state").iterdir()) == []


def test_steering_commands_and_an_existing_ledger_still_work(config, tmp_path):
    r = CliRunner().invoke(main, ["--config", str(config), "ledger", "retry", "--failed"])
    assert r.exit_code == 0, r.output  # retry/skip/done may open (and create) it
    assert (tmp_path / "state" / "ledger.db").exists()
    r = CliRunner().invoke(main, ["--config", str(config), "ledger", "list"])
    assert r.exit_code == 0, r.output


def test_missing_ledger_in_a_real_process_is_one_line_in_json_too(config, tmp_path):
    r = subprocess.run([sys.executable, "-m", "connector", "--config", str(config), "--log-format", "json",
                        "orders", "list"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 66 and "Traceback" not in r.stderr
    import json

    (line,) = r.stderr.strip().splitlines()
    assert "no ledger at" in json.loads(line)["msg"]
