"""Issue 16 items 3, 4 and 7 against the real daemon (`mall-connector run` as a subprocess): the [receiver]
keys reach the server, and the ledger the daemon creates is 0600 under a permissive umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import httpx
import pytest

from connector.sandbox.server import SandboxServer
from tests.conftest import TEST_CLIENT_ID, free_port
from tests.unit.receiver.test_slow_clients import SlowClients
from tests.system.security.test_daemon_security import _wait
from tests.support.worlds import CsvShop

pytestmark = pytest.mark.e2e

TOKEN = "limits-token-Gq7Wz2Nx5Kc8Rv3Lp6Tb"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    folder = tmp_path_factory.mktemp("limits")
    port = free_port()
    with SandboxServer(TEST_CLIENT_ID, seed=3) as sandbox:
        shop = CsvShop(folder, sandbox, receiver_listen=f"127.0.0.1:{port}", tokens=[TOKEN])
        text = shop.config_path.read_text(encoding="utf-8")
        marker = f'tokens = ["{TOKEN}"]\n'
        assert marker in text
        shop.config_path.write_text(text.replace(marker, marker + (
            "request_timeout_s = 2\nmax_connections_per_address = 5\nwrong_token_limit_per_minute = 3\n"
            'trusted_proxies = ["127.0.0.1"]\n')), encoding="utf-8")
        os.chmod(shop.config_path, 0o600)
        log = open(folder / "daemon.log", "w", encoding="utf-8")
        proc = subprocess.Popen([sys.executable, "-m", "connector", "--config", str(shop.config_path), "run"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                                preexec_fn=lambda: os.umask(0o022))
        base = f"http://127.0.0.1:{port}"

        def up():
            try:
                return httpx.get(base + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            _wait(up, what="the receiver")
            yield {"base": base, "port": port, "folder": folder, "log": folder / "daemon.log"}
        finally:
            proc.terminate()
            proc.wait(60)
            log.close()


def test_the_daemon_enforces_the_per_address_limit_and_the_request_deadline(daemon):
    slow = SlowClients(daemon["port"], ["127.0.0.3"] * 10)
    try:
        assert slow.wait_closed(5) >= 5  # over max_connections_per_address = 5: closed at once
        with httpx.Client(timeout=15) as c:  # a normal webhook from another address meanwhile
            assert c.post(f"{daemon['base']}/webhooks/mall/{TOKEN}", content=b"[101]").status_code == 202
        assert slow.wait_closed(10) == 10  # the other 5 at request_timeout_s = 2, though they keep trickling
    finally:
        slow.close()
    assert "max_connections_per_address" in daemon["log"].read_text(encoding="utf-8")


def test_the_daemon_throttles_the_forwarded_client_behind_a_trusted_proxy(daemon):
    hook = f"{daemon['base']}/webhooks/mall/"
    with httpx.Client(timeout=15) as c:  # from 127.0.0.1, a trusted proxy
        guess = {"X-Forwarded-For": "198.51.100.1"}
        codes = [c.post(hook + f"guess-{i}", content=b"[1]", headers=guess).status_code for i in range(4)]
        assert codes == [404, 404, 404, 429]
        assert c.post(hook + TOKEN, content=b"[102]", headers=guess).status_code == 429
        assert c.post(hook + TOKEN, content=b"[103]", headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 202


def test_the_ledger_the_daemon_created_is_private(daemon):
    files = sorted(daemon["folder"].glob("ledger.db*"))
    assert [f.name for f in files][:1] == ["ledger.db"]
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f.name
