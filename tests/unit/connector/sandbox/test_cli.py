"""``mall-connector sandbox``: starts, answers, stops cleanly on SIGTERM; bad options are clean errors."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading

import httpx
import pytest
from click.testing import CliRunner

from connector.sandbox.cli import sandbox as sandbox_command
from tests.conftest import TEST_CLIENT_ID, free_port


class Reader:
    """Collects a pipe's lines in a thread, so a test can wait for the first one with a timeout."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.got_line = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream) -> None:
        for line in stream:
            self.lines.append(line)
            self.got_line.set()
        self.got_line.set()

    def text(self) -> str:
        self.thread.join(timeout=10)
        return "".join(self.lines)


@pytest.mark.e2e
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_exits_0_on_signal(stop_signal):
    port = free_port()
    env = {**os.environ, "MALL_CLIENT_ID": TEST_CLIENT_ID}
    proc = subprocess.Popen(
        # As the mall-connector console script does (``python -m connector.cli`` would import cli.py twice).
        [sys.executable, "-c", "from connector.cli import main; main()", "sandbox", "--listen", f"127.0.0.1:{port}", "--orders", "24",
         "--seed", "5", "--webhook-interval", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    out, err = Reader(proc.stdout), Reader(proc.stderr)
    try:
        assert out.got_line.wait(timeout=15)
        first = out.lines[0]
        assert re.fullmatch(rf"MALL sandbox listening on http://127\.0\.0\.1:{port}\n", first), first
        url = f"http://127.0.0.1:{port}"
        body = httpx.get(f"{url}/v1/orders/stats", params={"client_id": TEST_CLIENT_ID, "days": 3650}).json()
        assert sum(body["data"].values()) == 24
        assert httpx.get(f"{url}/v1/orders").status_code == 401
        assert httpx.post(f"{url}/_sandbox/orders", json={"kind": "cod"}).status_code == 201
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stdout, stderr = out.text(), err.text()
    proc.stdout.close()
    proc.stderr.close()
    assert "/_sandbox/orders" in stdout and "sandbox stopped" in stdout
    assert "Traceback" not in stderr
    assert TEST_CLIENT_ID not in stdout + stderr


@pytest.mark.e2e
def test_cli_max_page_size_caps_pages():
    port = free_port()
    env = {**os.environ, "MALL_CLIENT_ID": TEST_CLIENT_ID}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from connector.cli import main; main()", "sandbox", "--listen", f"127.0.0.1:{port}",
         "--orders", "40", "--max-page-size", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    out = Reader(proc.stdout)
    try:
        assert out.got_line.wait(timeout=15)
        body = httpx.get(f"http://127.0.0.1:{port}/v1/orders",
                         params={"client_id": TEST_CLIENT_ID, "page_size": 1000, "status": "in:open,shipping"}).json()
        assert len(body["data"]) == 4 and body["paging"]["size"] == 4 and body["paging"]["total"] == 10
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.text()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("args,message", [
    (["--error-rate", "1.5"], "--error-rate"),
    (["--drop-rate", "x"], "--drop-rate"),
    (["--listen", "localhost"], "HOST:PORT"),
    (["--listen", "127.0.0.1:70000"], "HOST:PORT"),
    (["--orders", "-1"], "--orders"),
    (["--webhook-url", "ftp://example"], "http(s) URL"),
    (["--webhook-interval", "0"], "--webhook-interval"),
    (["--latency-ms", "-5"], "--latency-ms"),
])
def test_bad_options_are_clean_click_errors(args, message):
    result = CliRunner().invoke(sandbox_command, ["--client-id", TEST_CLIENT_ID, *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_client_id_is_required_but_may_come_from_the_environment():
    result = CliRunner().invoke(sandbox_command, [], env={"MALL_CLIENT_ID": None})
    assert result.exit_code == 2 and "--client-id" in result.output
    blank = CliRunner().invoke(sandbox_command, [], env={"MALL_CLIENT_ID": "  "})
    assert blank.exit_code == 2 and "must not be empty" in blank.output


def test_port_in_use_is_a_one_line_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(sandbox_command, ["--client-id", TEST_CLIENT_ID, "--listen", f"127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "Traceback" not in result.output


def test_help_shows_an_example():
    result = CliRunner().invoke(sandbox_command, ["--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and "mall-connector sandbox --orders" in result.output
    assert "MALL_SANDBOX_WEBHOOK_URL" in result.output  # secrets from the environment, not argv (issue 16 item 8)
    assert "MALL_CLIENT_ID" in result.output
