"""Issue 16 item 8: `mall-connector sandbox` takes its client_id and webhook URL from the environment or a
file, so neither secret is in argv (readable by every local user in /proc/PID/cmdline)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from connector.sandbox.cli import sandbox as sandbox_command
from tests.conftest import TEST_CLIENT_ID, free_port

HOOK_TOKEN = "sandbox-hook-Vw3Lq9Zt5Rk2Hb7Nc4Xp"


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from connector.cli import main; main()", "sandbox", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **env})


def _wait_listening(url: str, proc: subprocess.Popen) -> None:
    for _ in range(300):  # up to ~15 s
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            httpx.get(url + "/_sandbox", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("sandbox did not start")


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["env", "file"])
def test_secrets_never_in_argv(tmp_path: Path, how: str):
    port = free_port()
    hook = f"http://127.0.0.1:{free_port()}/webhooks/mall/{HOOK_TOKEN}"
    if how == "env":
        env = {"MALL_CLIENT_ID": TEST_CLIENT_ID, "MALL_SANDBOX_WEBHOOK_URL": hook}
    else:
        (tmp_path / "cid").write_text(TEST_CLIENT_ID + "\n")
        (tmp_path / "hook").write_text(hook + "\n")
        env = {"MALL_CLIENT_ID": "", "MALL_CLIENT_ID_FILE": str(tmp_path / "cid"),
               "MALL_SANDBOX_WEBHOOK_URL_FILE": str(tmp_path / "hook")}
    proc = _start(["--listen", f"127.0.0.1:{port}", "--orders", "2"], env)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_listening(url, proc)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        assert TEST_CLIENT_ID not in cmdline and HOOK_TOKEN not in cmdline
        assert httpx.get(url + "/v1/orders/stats", params={"client_id": TEST_CLIENT_ID}).status_code == 200
        assert httpx.get(url + "/v1/orders/stats", params={"client_id": "wrong"}).status_code == 401
        shown = httpx.get(url + "/_sandbox/webhooks").json()["url"]
        assert shown and shown.startswith(hook.rsplit("/", 1)[0]) and HOOK_TOKEN not in shown  # set, and redacted
    finally:
        proc.terminate()
        proc.wait(10)
        err = proc.stderr.read().decode()
        proc.stderr.close()
    assert TEST_CLIENT_ID not in err and HOOK_TOKEN not in err


def test_an_empty_or_missing_secret_file_is_a_clean_error(tmp_path: Path):
    (tmp_path / "empty").write_text("\n")
    r = CliRunner().invoke(sandbox_command, ["--client-id-file", str(tmp_path / "empty")], env={"MALL_CLIENT_ID": None})
    assert r.exit_code == 2 and "is empty" in r.output
    r = CliRunner().invoke(sandbox_command, ["--client-id-file", str(tmp_path / "nope")], env={"MALL_CLIENT_ID": None})
    assert r.exit_code == 2 and "cannot read" in r.output
    r = CliRunner().invoke(sandbox_command, ["--webhook-url-file", str(tmp_path / "empty")],
                           env={"MALL_CLIENT_ID": TEST_CLIENT_ID})
    assert r.exit_code == 2 and "--webhook-url-file" in r.output
