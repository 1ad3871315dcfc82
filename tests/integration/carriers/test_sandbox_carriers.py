"""``mall-connector sandbox --carriers`` starts the carrier simulators next to the MALL sandbox."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import TEST_CLIENT_ID, free_port
from tests.unit.connector.sandbox.test_cli import Reader

pytestmark = pytest.mark.e2e


def test_sandbox_carriers_flag_serves_every_simulator_and_prints_their_config():
    port = free_port()
    env = {**os.environ, "MALL_CLIENT_ID": TEST_CLIENT_ID}
    proc = subprocess.Popen([sys.executable, "-c", "from connector.cli import main; main()", "sandbox", "--listen",
                             f"127.0.0.1:{port}", "--orders", "0", "--carriers"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = Reader(proc.stdout), Reader(proc.stderr)
    try:
        deadline = time.monotonic() + 20  # until the three [carriers.<name>] tables are printed
        while time.monotonic() < deadline and sum("min_interval_s" in ln for ln in out.lines) < 3:
            out.got_line.wait(timeout=0.5)
            out.got_line.clear()
        text = "".join(out.lines)
        urls = dict(re.findall(r"\[carriers\.(\w+)\]\nbase_url = \"(http://127\.0\.0\.1:\d+)\"", text))
        assert set(urls) == {"packeta", "ceska_posta", "ppl"}, text
        for url in urls.values():
            assert httpx.get(f"{url}/_sim").status_code == 200
        r = httpx.get(f"{urls['ceska_posta']}/services/ParcelHistory/getDataAsJson", params={"idParcel": "DR0000000000C"})
        assert r.status_code == 200 and r.json()[0]["states"]["state"][0]["id"] == "-3"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err.text()
    proc.stdout.close()
    proc.stderr.close()
