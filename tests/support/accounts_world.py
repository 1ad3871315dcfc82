"""Two MALL accounts (CZ and SK) behind one API address, and one CSV shop: the world of the accounts tests.

MALL runs one API host for every country and tells the country by the client_id. Here each account is its
own sandbox (its own orders, request log and rate limit) and ``MallFront``, a real HTTP server on loopback,
forwards each request to the sandbox of its ``client_id`` (an unknown one gets MALL's 401), so the connector
sees one ``[mall] base_url`` as it would in production.
"""

from __future__ import annotations

import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from adapters.generic_csv.world import CsvWorld

CZ_ID = "cz-" + "Qm4Xr8Tw2Ka6Pz0Nc5Ve7Hb3"
SK_ID = "sk-" + "Lp9Dj1Wf5Rs7Gy3Mb8Tk0Ue2"
TOK_CZ = "Cz-" + "Hy7Ud3Kp9Wm2Qx6Rb4Tn8Vc5Ze1Ls0Ag"
TOK_SK = "Sk-" + "Fe3Rq8Zm1Yw6Jt0Lc4Xn9Pb2Dv7Gk5Hs"
SK_FIRST_PURCHASE = 5_000_000  # SK's order ids far from CZ's: MALL's ids are global



class MallFront:
    """One API address for several sandboxes, chosen by the request's client_id."""

    def __init__(self, sandboxes: dict[str, object]):
        self.by_client_id = dict(sandboxes)
        self.routed: dict[str, int] = {}
        front = self
        http = httpx.Client(timeout=30)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                client_id = (parse_qs(urlsplit(self.path).query).get("client_id") or [None])[0]
                box = front.by_client_id.get(client_id)
                if box is None:
                    return self._send(401, b'{"result":{"code":401,"status":"UNAUTHORIZED","message":"bad client_id"}}',
                                      {"Content-Type": "application/json"})
                front.routed[client_id] = front.routed.get(client_id, 0) + 1
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
                r = http.request(self.command, box.url + self.path, content=body, headers=headers)
                keep = {k: v for k, v in r.headers.items()
                        if k.lower() in ("content-type",) or k.lower().startswith("x-ratelimit")}
                self._send(r.status_code, r.content, keep)

            do_GET = do_PUT = do_POST = _forward  # noqa: N815

            def _send(self, code, body, headers):
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._http = http
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self._http.close()


class TwoAccountShop(CsvWorld):
    """The shared CSV shop world (adapters/generic_csv/world.py) whose config has [accounts.cz] and
    [accounts.sk] on one MallFront instead of a single [mall] client_id."""

    def __init__(self, folder: Path, front: MallFront, *, listen: str | None = None, extra: str = ""):
        super().__init__(folder, front.url, CZ_ID, write_config=False)
        self.front = front
        receiver = f'[receiver]\nlisten = "{listen}"\n' if listen else ""
        self.write_config(f"""[mall]
base_url = "{front.url}"
timeout_s = 5
[ledger]
url = "sqlite:///ledger.db"
[sync]
retry_base_s = 0.05
retry_max_s = 0.2
poll_interval_s = 1
drain_interval_s = 1
sweep_interval_s = 3600
{receiver}[shop]
adapter = "generic_csv"
[shop.generic_csv]
source = "shop.csv"
outbox = "outbox"
settle_s = 0
[accounts.cz]
client_id = "{CZ_ID}"
tokens = ["{TOK_CZ}"]
[accounts.sk]
client_id = "{SK_ID}"
tokens = ["{TOK_SK}"]
{extra}""", private=True)
        self.write_feed([])

    def config(self):
        from connector.config import load_config

        return load_config(self.config_path, environ={})

    def env(self) -> dict:
        """The environment without any MALL_* secret or systemd credential of the machine running the tests."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MALL_", "CREDENTIALS_DIRECTORY"))}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def cli(self, *args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("env", self.env())
        return super().cli(*args, timeout=timeout, **kw)

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        kw.setdefault("env", self.env())
        return super().popen(*args, **kw)


def status_puts(sandbox, order_id: int | None = None) -> list:
    return [e for e in sandbox.request_log.puts(order_id) if isinstance(e.body, dict) and "status" in e.body]


def gets_of(sandbox, order_id: int) -> list:
    return sandbox.request_log.find("GET", f"/v1/orders/{order_id}")
