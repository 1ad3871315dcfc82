"""Two MALL accounts (CZ and SK) behind one API address, and one CSV shop: the world of the accounts tests.

MALL runs one API host for every country and tells the country by the client_id. Here each account is its
own sandbox (its own orders, request log and rate limit) and ``MallFront`` (connector/sandbox/front.py), a real
HTTP server on loopback, forwards each request to the sandbox of its ``client_id`` (an unknown one gets MALL's
401), so the connector sees one ``[mall] base_url`` as it would in production.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from adapters.generic_csv.world import CsvWorld
from connector.sandbox.front import MallFront  # noqa: F401 - the tests import it from here

CZ_ID = "cz-" + "Qm4Xr8Tw2Ka6Pz0Nc5Ve7Hb3"
SK_ID = "sk-" + "Lp9Dj1Wf5Rs7Gy3Mb8Tk0Ue2"
TOK_CZ = "Cz-" + "Hy7Ud3Kp9Wm2Qx6Rb4Tn8Vc5Ze1Ls0Ag"
TOK_SK = "Sk-" + "Fe3Rq8Zm1Yw6Jt0Lc4Xn9Pb2Dv7Gk5Hs"
SK_FIRST_PURCHASE = 5_000_000  # SK's order ids far from CZ's: MALL's ids are global



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
