"""packaging/nginx/console.location.conf in front of the real console: Debian's nginx on a loopback port,
the console under waitress with ``url_prefix = "/console"`` and ``trusted_proxy``."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from connector.config import load_config
from connector.console import start_console
from connector.console.users import add_user
from connector.ledger import open_ledger
from connector.ledger.audit import recent
from tests.conftest import free_port
from tests.support.paths import ROOT

pytestmark = pytest.mark.e2e
SNIPPET = ROOT / "packaging" / "nginx" / "console.location.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class _FakeDaemon:
    """What start_console reads from a daemon, without the scheduler."""

    def __init__(self, config, ledger):
        from connector.sync.runner import MappingHolder
        from connector.mapping import load_mapping

        self.config = config
        self.ledger = ledger
        self.reloads = 0
        self.services = type("S", (), {"mapping": MappingHolder(load_mapping(config.mapping_path)), "client": None})()

    def request_reload(self):
        self.reloads += 1

    def readiness(self):
        return True, {}


@pytest.fixture
def proxied(tmp_path):
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: apt-get install nginx (see .ci/run)", pytrace=False)
    console_port, nginx_port = free_port(), free_port()
    (tmp_path / "mapping.toml").write_text('[to_mall]\n"Odesláno" = "shipped"\n', encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        f'[ledger]\nurl = "sqlite:///ledger.db"\n[shop]\nmapping = "mapping.toml"\n'
        f'[console]\nenabled = true\nlisten = "127.0.0.1:{console_port}"\nurl_prefix = "/console"\n'
        f'trusted_proxy = "127.0.0.1"\n', encoding="utf-8")
    add_user(tmp_path / "console-users.toml", "alice", "admin", "alice-admin-pw-1")
    cfg = load_config(tmp_path / "config.toml")
    ledger = open_ledger(cfg.ledger.url)
    server = start_console(_FakeDaemon(cfg, ledger))
    snippet = SNIPPET.read_text(encoding="utf-8").replace("127.0.0.1:8081", f"127.0.0.1:{console_port}")
    (tmp_path / "console.location.conf").write_text(snippet, encoding="utf-8")
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / d).mkdir()
    (tmp_path / "nginx.conf").write_text(f"""
daemon off; worker_processes 1; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy; fastcgi_temp_path {tmp_path}/fastcgi;
  uwsgi_temp_path {tmp_path}/uwsgi; scgi_temp_path {tmp_path}/scgi;
  server {{ listen 127.0.0.1:{nginx_port}; include {tmp_path}/console.location.conf; }}
}}
""", encoding="utf-8")
    check = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{nginx_port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(base + "/", timeout=1)
            break
        except httpx.HTTPError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
            time.sleep(0.1)
    yield {"base": base, "ledger": ledger}
    proc.terminate()
    proc.wait(timeout=20)
    server.stop()
    ledger.close()


def test_the_console_works_under_the_nginx_location(proxied):
    base = proxied["base"]
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/orders").status_code in (403, 404)  # only the /console/ location is proxied
        page = http.get("/console/login")
        assert page.status_code == 200
        assert 'href="/console/static/console.css"' in page.text
        assert http.get("/console/static/console.css").status_code == 200
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        jar = {"Cookie": page.headers["set-cookie"].split(";")[0]}  # Secure cookie over plain http: by hand
        r = http.post("/console/login", data={"username": "alice", "password": "alice-admin-pw-1",
                                              "csrf_token": token},
                      headers={**jar, "X-Forwarded-For": "203.0.113.9"})  # a client's forged header
        assert r.status_code == 302 and r.headers["location"] == "/console/"
        jar = {"Cookie": r.headers["set-cookie"].split(";")[0]}
        home = http.get("/console/", headers=jar)
        assert home.status_code == 200 and 'href="/console/orders"' in home.text
        assert http.get("/console/mapping", headers=jar).status_code == 200
    login = [e for e in recent(proxied["ledger"]) if e.action == "login"][0]
    # nginx replaces X-Forwarded-For with the real peer, so the rate limit and the audit see who connected.
    assert login.detail == "from 127.0.0.1"
