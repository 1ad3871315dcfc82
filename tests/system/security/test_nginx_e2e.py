"""Issue 16 item 4: the shipped nginx config in front of the real receiver, end to end.

Debian's nginx runs unprivileged (``nginx -p DIR -c CONF``; as user nobody when the suite runs as
root) on a free loopback port, with a self-signed certificate made by ``openssl req -x509``, and
``packaging/nginx/mall-connector.conf`` included with only its host-specific values replaced
(listen address, upstream port, certificate and log paths; each replacement must hit, so the shipped
file cannot drift from what is tested). Clients connect from different loopback addresses so the
trusted-proxy logic has real client addresses to tell apart.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from connector.ledger.repo import open_ledger
from connector.metrics import Metrics
from receiver.app import create_app
from receiver.server import ReceiverServer
from tests.conftest import free_port
from tests.support.paths import ROOT

pytestmark = pytest.mark.e2e  # needs Debian's nginx and openssl (.ci/run installs both); never skipped

SHIPPED = ROOT / "packaging" / "nginx" / "mall-connector.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TOKEN = "nginx-e2e-Vw3Lq9Zt5Rk2Hb7Nc4Xp"
HOOK = "/webhooks/mall/" + TOKEN
WRONG_LIMIT = 3


def site_config(receiver_port: int, port: int, d: Path) -> str:
    text = SHIPPED.read_text(encoding="utf-8")
    replacements = {
        "listen 443 ssl;": f"listen 127.0.0.1:{port} ssl;",
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{receiver_port};",
        "/etc/ssl/certs/mall-connector.crt": str(d / "cert.pem"),
        "/etc/ssl/private/mall-connector.key": str(d / "key.pem"),
        "/var/log/nginx/mall-connector.access.log": str(d / "access.log"),
        "/var/log/nginx/mall-connector.error.log": str(d / "site-error.log"),
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{SHIPPED.name} no longer contains {old!r} exactly once"
        text = text.replace(old, new)
    return text


class Nginx:
    def __init__(self, receiver_port: int):
        self.dir = Path(tempfile.mkdtemp(prefix="mall-nginx-"))
        d = self.dir
        (d / "tmp").mkdir()
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True, timeout=60)
        self.port = free_port()
        (d / "mall-connector.conf").write_text(site_config(receiver_port, self.port, d), encoding="utf-8")
        temp = d / "tmp"
        (d / "nginx.conf").write_text(
            f"worker_processes 1;\npid {d / 'nginx.pid'};\nerror_log {d / 'error.log'} warn;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
            f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n"
            f"  include {d / 'mall-connector.conf'};\n"
            "}\n", encoding="utf-8")
        kwargs: dict = {}
        if os.geteuid() == 0:  # CI runs as root: drop to nobody, so nginx runs unprivileged as in the brief
            nobody = pwd.getpwnam("nobody")
            kwargs = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            for p in [d, *d.rglob("*")]:
                os.chown(p, nobody.pw_uid, nobody.pw_gid)
        cmd = [NGINX, "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log"), "-g", "daemon off;"]
        test = subprocess.run(cmd + ["-t"], capture_output=True, text=True, timeout=30, **kwargs)
        assert test.returncode == 0, test.stderr
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
        for _ in range(200):  # up to ~10 s for nginx to listen
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                assert self.proc.poll() is None, self.proc.stderr.read().decode()
                time.sleep(0.05)
        else:
            raise AssertionError("nginx did not start listening")
        self.url = f"https://127.0.0.1:{self.port}"
        self.tls = ssl.create_default_context(cafile=str(d / "cert.pem"))

    def client(self, source: str = "127.0.0.1", **kw) -> httpx.Client:
        transport = httpx.HTTPTransport(verify=self.tls, local_address=source)
        return httpx.Client(base_url=self.url, transport=transport, timeout=15, **kw)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    ledger = open_ledger("sqlite:///" + str(tmp_path_factory.mktemp("nginx") / "ledger.db"))
    app = create_app(ledger=ledger, tokens=[TOKEN], metrics=Metrics(), wrong_token_limit_per_minute=WRONG_LIMIT,
                     trusted_proxies=["127.0.0.1"])
    receiver = ReceiverServer(app, "127.0.0.1", 0, trusted_proxies=["127.0.0.1"])
    receiver.start()
    nginx = Nginx(int(receiver.port))
    yield {"nginx": nginx, "receiver": receiver, "ledger": ledger}
    nginx.stop()
    receiver.stop(timeout=5)
    ledger.close()


def inbox(ledger) -> list[int]:
    return sorted(ledger.inbox.due(100_000))


def test_webhook_through_nginx_over_tls_reaches_the_inbox(stack):
    with stack["nginx"].client() as c:
        r = c.post(HOOK, content=b"[10085339302, 10085339303]")
        assert r.status_code == 202, r.text
        assert r.json() == {"accepted": 2, "queued": 2}
        h = c.get("/healthz")
        assert h.status_code == 200 and h.json()["service"] == "mall-connector"
    assert {10085339302, 10085339303} <= set(inbox(stack["ledger"]))


def test_only_the_webhook_and_healthz_are_published(stack):
    with stack["nginx"].client() as c:
        assert c.get("/metrics").status_code == 404
        assert c.get("/readyz").status_code == 404
        assert c.get("/").status_code == 404
        assert c.get(HOOK).status_code == 403  # POST only
    direct = httpx.get(stack["receiver"].url + "/metrics", timeout=15)  # still there on loopback
    assert direct.status_code == 200 and "mall_connector_webhooks" in direct.text


def test_a_body_over_the_limit_is_refused_by_nginx(stack):
    before = inbox(stack["ledger"])
    body = ("[" + ",".join(["1234567890"] * 7000) + "]").encode()  # ~77 KB > 64k
    with stack["nginx"].client("127.0.0.9") as c:
        assert c.post(HOOK, content=body).status_code == 413
    assert inbox(stack["ledger"]) == before


def test_the_throttle_counts_the_forwarded_client_not_the_proxy(stack):
    attacker, mall = "127.0.0.5", "127.0.0.6"
    with stack["nginx"].client(attacker) as c:
        codes = [c.post("/webhooks/mall/guess-" + str(i) * 22, content=b"[1]").status_code
                 for i in range(WRONG_LIMIT + 1)]
        assert codes == [404] * WRONG_LIMIT + [429]
        assert c.post(HOOK, content=b"[555]").status_code == 429  # the right token too, until the window ends
        # A forged X-Forwarded-For does not help: nginx replaces it with the real address.
        assert c.post(HOOK, content=b"[555]", headers={"X-Forwarded-For": mall}).status_code == 429
    with stack["nginx"].client(mall) as c:  # another client behind the same proxy is not throttled
        assert c.post(HOOK, content=b"[556]").status_code == 202
    ids = inbox(stack["ledger"])
    assert 556 in ids and 555 not in ids


def test_the_access_log_never_holds_the_token(stack):
    with stack["nginx"].client("127.0.0.7") as c:
        assert c.post(HOOK, content=b"[777]").status_code == 202
    log = (stack["nginx"].dir / "access.log").read_text(encoding="utf-8")
    assert "/webhooks/mall/***" in log
    assert TOKEN not in log


def test_a_header_that_never_ends_is_cut_by_nginx(stack):
    """client_header_timeout 5s: nginx closes it; the receiver never saw the connection."""
    n = stack["nginx"]
    raw = socket.create_connection(("127.0.0.1", n.port), timeout=5)
    s = n.tls.wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        s.sendall(f"POST {HOOK} HTTP/1.1\r\nHost: x\r\n".encode())
        s.settimeout(1)
        closed = False
        for i in range(40):  # bounded: at most ~40 s
            try:
                s.sendall(f"X-Slow-{i}: 1\r\n".encode())
                if s.recv(100) == b"":
                    closed = True
                    break
            except (socket.timeout, TimeoutError):
                continue
            except (OSError, ssl.SSLError):
                closed = True
                break
        assert closed
    finally:
        s.close()
