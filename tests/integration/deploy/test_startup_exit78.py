"""Failures a restart cannot fix exit 78 naming the key (systemd's RestartPreventExitStatus=78 stops there),
and every start-up error is one line in the chosen --log-format."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.e2e


def _config(folder: Path, *, ledger: str, outbox: str, port: int, extra: str = "") -> Path:
    path = folder / "config.toml"
    path.write_text(f"""[mall]
base_url = "http://127.0.0.1:9"
client_id = "cid-startup-123456"
[ledger]
url = "sqlite:///{ledger}"
[receiver]
listen = "127.0.0.1:{port}"
[shop.generic_csv]
source = "feed.csv"
outbox = "{outbox}"
{extra}""")
    os.chmod(path, 0o640)
    return path


def _run(config: Path, *args: str, python: str = sys.executable, **kw) -> tuple[int, list[dict]]:
    r = subprocess.run([python, "-m", "connector", "--config", str(config), "--log-format", "json", *args, "run"],
                       capture_output=True, text=True, timeout=60, cwd=config.parent, **kw)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [json.loads(line) for line in r.stderr.strip().splitlines()]
    return r.returncode, lines


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "outbox").mkdir()
    (tmp_path / "state").mkdir()
    return tmp_path


def test_missing_ledger_folder(folder):
    cfg = _config(folder, ledger=f"{folder}/nope/ledger.db", outbox=f"{folder}/outbox", port=free_port())
    rc, lines = _run(cfg)
    assert rc == 78
    assert "ledger.url" in lines[-1]["msg"] and "[ledger] url" in lines[-1]["msg"]
    assert f"{folder}/nope does not exist" in lines[-1]["msg"]


def test_missing_outbox_folder(folder):
    cfg = _config(folder, ledger=f"{folder}/state/l.db", outbox=f"{folder}/gone", port=free_port())
    rc, lines = _run(cfg)
    assert rc == 78 and "[shop.generic_csv] outbox" in lines[-1]["msg"] and f"{folder}/gone" in lines[-1]["msg"]
    assert not (folder / "gone").exists() and not (folder / "state" / "l.db").exists()


def test_unknown_outbox_group(folder):
    cfg = _config(folder, ledger=f"{folder}/state/l.db", outbox=f"{folder}/outbox", port=free_port(),
                  extra='outbox_group = "no-such-group-xyz"\n')
    rc, lines = _run(cfg)
    assert rc == 78 and "[shop.generic_csv] outbox_group" in lines[-1]["msg"]


def test_receiver_address_in_use_names_the_key_and_address(folder):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = _config(folder, ledger=f"{folder}/state/l.db", outbox=f"{folder}/outbox", port=port)
        rc, lines = _run(cfg)
    assert rc == 78
    assert f'[receiver] listen = "127.0.0.1:{port}"' in lines[-1]["msg"] and "already in use" in lines[-1]["msg"]


def test_text_format_stays_one_plain_line(folder):
    cfg = _config(folder, ledger=f"{folder}/nope/l.db", outbox=f"{folder}/outbox", port=free_port())
    r = subprocess.run([sys.executable, "-m", "connector", "--config", str(cfg), "run"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 78 and r.stderr.startswith("config error: ") and len(r.stderr.strip().splitlines()) == 1


def test_unwritable_ledger_folder(open_tmp, request):
    """Real permissions: as root the daemon runs as nobody (root may write anywhere)."""
    (open_tmp / "outbox").mkdir()
    state = open_tmp / "state"
    state.mkdir(mode=0o555)
    os.chmod(state, 0o555)
    cfg = _config(open_tmp, ledger=f"{state}/l.db", outbox=f"{open_tmp}/outbox", port=free_port())
    os.chmod(cfg, 0o644)
    kw: dict = {}
    python = sys.executable
    if os.geteuid() == 0:
        python = str(request.getfixturevalue("world_bin") / "python")
        kw = {"user": 65534, "group": 65534, "extra_groups": []}
    rc, lines = _run(cfg, python=python, **kw)
    assert rc == 78 and "[ledger] url" in lines[-1]["msg"] and "not writable" in lines[-1]["msg"]
