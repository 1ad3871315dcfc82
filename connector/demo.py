"""`mall-connector demo`: the whole connector working end to end on one machine, nothing to configure.

What runs:

* a MALL sandbox (``SandboxServer``) in a thread of this process, on a free loopback port, sending its
  webhooks every second to the daemon's receiver;
* a generic-CSV shop in a fresh temporary folder: ``config.toml``, ``mapping.toml`` (a copy of the shipped
  one), the shop feed ``shop-orders.csv`` (always written to a temp name and renamed), ``outbox/``,
  ``ledger.db`` and ``daemon.log``; nothing is written anywhere else;
* the real daemon, ``mall-connector --config <tmp>/config.toml run``, as a subprocess.

The shop's folder and the daemon are the shared test world (adapters/generic_csv/world.py on
adapters/shared/world.py) that the tests and the benchmarks use too; the demo is a story told over it.

Then a short story plays (new orders by webhook, packing and shipping, a customer cancel, a mapping
mistake) and every step is checked by polling what an outsider can see: the sandbox's webhook and
request logs, the outbox files and the ledger (read only). A timeline and a final table are printed;
the daemon is stopped with SIGTERM and must exit 0. Any failure is one line on stderr and exit 1.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo
from typing import Any, Callable, Iterator

import click

from connector.ledger.types import FINISHED_CHANGE_STATES, LabelState, Origin

STORY_STEPS = 5
PRAGUE = ZoneInfo("Europe/Prague")
WAIT_S = 20.0  # the longest wait for one thing to happen; the whole story takes about 20 s
DAEMON_START_S = 30.0
DAEMON_STOP_S = 45.0  # the daemon finishes in-flight work for at most 30 s
CLI_TIMEOUT_S = 60.0
SEED = 20261126  # same sample orders every run
EXIT_CONFIG = 78  # the daemon's exit status for a config error: no point in trying another port
UNMAPPED_STATUS = "Čeká na dodavatele"  # "waiting for the supplier": a status the mapping does not know
FEED_COLUMNS = ("mall_order_id", "shop_order_id", "status", "carrier", "tracking_number", "tracking_url",
                "parcel_count")
#: Environment a demo child must not inherit: it would point it at another config, MALL account or systemd.
SCRUBBED_ENV = ("MALL_CONNECTOR_CONFIG", "MALL_CLIENT_ID", "MALL_CONNECTOR_TOKENS", "CREDENTIALS_DIRECTORY",
                "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
#: How the demo shop names the carrier of a MALL delivery method (as shop feeds do: freely).
CARRIER_NAMES = {"pplCz": "PPL", "1": "DPD", "zasilkovna": "Zásilkovna", "ulozenka": "Uloženka",
                 "dpdSk": "DPD SK", "packetaSk": "Packeta SK"}


class DemoError(Exception):
    """The story cannot go on; the message is the one line the user sees."""


class _Interrupted(Exception):
    """Ctrl+C, SIGTERM or SIGHUP: stop, clean up."""


def run_demo(*, keep_running: bool = False, speed: float = 1.0) -> int:
    """Play the demo; the process exit status (0 ok, 1 failed, 130 interrupted)."""
    demo = Demo(keep_running=keep_running, speed=speed)
    with _signals_raise_interrupt():
        try:
            demo.run()
            status = 0
        except (_Interrupted, KeyboardInterrupt):
            click.echo("\ndemo interrupted; stopping", err=True)
            status = 130
        except DemoError as e:
            click.echo(f"\ndemo failed: {_redact(str(e))}", err=True)
            status = 1
        except Exception as e:  # noqa: BLE001 - no raw tracebacks, ever
            click.echo(f"\ndemo failed: unexpected {type(e).__name__}: {_redact(str(e))}", err=True)
            status = 1
        try:
            demo.cleanup(ok=status == 0)
        except (_Interrupted, KeyboardInterrupt):
            click.echo("interrupted again: killing what is left", err=True)
            demo.cleanup(ok=False, hurry=True)
            status = status or 130
        except DemoError as e:
            click.echo(f"demo failed: {_redact(str(e))}", err=True)
            status = status or 1
        except Exception as e:  # noqa: BLE001
            click.echo(f"demo failed while cleaning up: {type(e).__name__}: {_redact(str(e))}", err=True)
            status = status or 1
    return status


# -- the story ---------------------------------------------------------------------------------------------


@dataclass
class StoryOrder:
    """One sample order and what the demo shop knows about it."""

    label: str  # A, B, C, D, E
    mall_order_id: int
    delivery_method: str
    branch_id: int | None
    shop_order_id: str
    feed: dict[str, str] = field(default_factory=dict)  # the order's current row in the shop feed

    @property
    def ref(self) -> str:
        return f"{self.mall_order_id} ({self.label})"


class Demo:
    def __init__(self, *, keep_running: bool, speed: float, out: Callable[[str], None] | None = None):
        self.keep_running = keep_running
        self.speed = max(0.1, min(float(speed), 10.0))
        self._out = out or click.echo
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.rng = random.Random(SEED)
        self.client_id = "demo-" + secrets.token_hex(10)
        self.token = secrets.token_urlsafe(24)
        self.packeta_password = "demo-packeta-" + secrets.token_hex(8)  # the Packeta simulator's API password
        self.packeta = None  # the Packeta simulator (issue 15: the money path)
        self.folder: Path | None = None
        self.sandbox = None
        self.world = None  # the shop's folder: adapters/generic_csv/world.py, shared with the tests and benchmarks
        self.daemon = None  # the real daemon: adapters/shared/world.py DaemonProcess
        self.receiver_port: int | None = None
        self.console_port: int | None = None
        self.console_password = secrets.token_urlsafe(12)  # one-time: this run's console login
        self.ledger = None
        self.orders: dict[str, StoryOrder] = {}
        self.handed: dict[int, str] = {}  # shop status the shop last received per order (outbox)
        self._seen_files: set[str] = set()
        self._printed_requests: set[int] = set()
        self._printed_webhooks = 0
        self._log_handler: logging.Handler | None = None
        self._saved_handlers: list[logging.Handler] = []

    # -- output ------------------------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.t0

    def line(self, text: str, at: float | None = None) -> None:
        """One timeline line: elapsed seconds, then what happened."""
        t = self.now() if at is None else at
        self._out(f"{t:6.1f}s  {text}")

    def detail(self, text: str) -> None:
        self._out(f"{'':10}{text}")

    def step(self, n: int, title: str) -> None:
        self._out("")
        self._out(f"[{n}/{STORY_STEPS}] {title}")

    def pause(self, seconds: float) -> None:
        """A small pause between story steps, so a human can follow; scaled by --speed."""
        time.sleep(seconds / self.speed)

    def at_wall(self, ts: float) -> float:
        """Elapsed demo time of a wall-clock timestamp (sandbox logs, file times)."""
        return max(0.0, ts - self.wall0)

    # -- the whole run -----------------------------------------------------------------------------------

    def run(self) -> None:
        self._out("mall-connector demo: a local MALL sandbox, a CSV shop in a temporary folder and the real "
                  "daemon, playing a short story.")
        self.setup()
        self.story_new_orders()
        self.pause(1.0)
        self.story_pack_and_ship()
        self.pause(1.0)
        self.story_customer_cancel()
        self.pause(1.0)
        self.story_mapping_mistake()
        self.pause(0.5)
        self.story_final_table()
        self.pause(0.5)
        self.story_money_path()
        if self.keep_running:
            self.explore()
        else:
            self.stop_daemon()

    # -- set-up ------------------------------------------------------------------------------------------

    def setup(self) -> None:
        from connector.logs import register_secret
        from connector.sandbox.server import SandboxServer

        register_secret(self.client_id)
        register_secret(self.token)
        register_secret(self.packeta_password)
        self.folder = Path(tempfile.mkdtemp(prefix="mall-connector-demo-"))
        self._capture_logging()
        self.line(f"temp folder {self.folder}")
        try:
            # Its own webhook timer stays idle: the story sends each batch right after MALL's change (flush),
            # so a batch is never split by chance; --keep-running then sends every second.
            self.sandbox = SandboxServer(self.client_id, host="127.0.0.1", port=0, seed=SEED,
                                         webhook_interval_s=3600.0).start()
        except OSError as e:
            raise DemoError(f"cannot start the MALL sandbox on 127.0.0.1: {e.strerror or e}") from None
        self.line(f"MALL sandbox on {self.sandbox.url}  (client_id {_mask(self.client_id)})")
        from adapters.generic_csv.world import CsvWorld

        self.world = CsvWorld(self.folder, self.sandbox.url, self.client_id, feed="shop-orders.csv",
                              columns=FEED_COLUMNS, write_config=False)
        from carriers.packeta.simulator import PacketaSimulator

        try:
            self.packeta = PacketaSimulator(api_password=self.packeta_password, host="127.0.0.1").start()
        except OSError as e:
            raise DemoError(f"cannot start the Packeta simulator on 127.0.0.1: {e.strerror or e}") from None
        self.line(f"Packeta tracking simulator on {self.packeta.url}  (API password {_mask(self.packeta_password)})")
        self.detail("it sends its order webhook right after each change (real MALL: at most once a minute)")
        self._write_mapping()
        self._add_console_user()
        self.write_feed(note=None)
        self.start_daemon()

    def _capture_logging(self) -> None:
        """The in-process sandbox logs to <tmp>/sandbox.log, not into the timeline."""
        from connector.logs import RedactingFilter, TerminalSafeFormatter

        root = logging.getLogger()
        self._saved_handlers = [h for h in root.handlers if getattr(h, "_mall_connector", False)]
        for h in self._saved_handlers:
            root.removeHandler(h)
        handler = logging.FileHandler(self.folder / "sandbox.log", encoding="utf-8")
        handler.addFilter(RedactingFilter())
        handler.setFormatter(TerminalSafeFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        handler._mall_connector = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        self._log_handler = handler

    def _release_logging(self) -> None:
        root = logging.getLogger()
        if self._log_handler is not None:
            root.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
        for h in self._saved_handlers:
            root.addHandler(h)
        self._saved_handlers = []

    def _write_mapping(self) -> None:
        from mappings import default_mapping_path

        text = default_mapping_path("generic_csv").read_text(encoding="utf-8")
        (self.folder / "mapping.toml").write_text(text, encoding="utf-8")
        typo, n = re.subn(r'(?m)^"shipped"(\s*)=(\s*)"shipped"', r'"shipped"\1=\2"shiped"', text)
        if n == 0:  # the shipped file changed shape: a minimal draft with the same mistake
            typo = '[to_mall]\n"shipped" = "shiped"\n'
        (self.folder / "mapping-draft.toml").write_text(typo, encoding="utf-8")

    def _add_console_user(self) -> None:
        """The console's user `admin` with this run's one-time password (argon2-hashed in the users file)."""
        from connector.console.users import add_user

        add_user(self.folder / "console-users.toml", "admin", "admin", self.console_password)

    def _config_text(self) -> str:
        return f"""\
# Written by `mall-connector demo`: everything it uses lives in this folder.
[mall]
base_url = "{self.sandbox.url}"   # the local MALL sandbox
client_id = "{self.client_id}"    # a throwaway demo value
timeout_s = 5

[ledger]
url = "sqlite:///ledger.db"       # relative to this file's folder

[receiver]
listen = "127.0.0.1:{self.receiver_port}"
tokens = ["{self.token}"]

[sync]
poll_interval_s = 1
drain_interval_s = 1
sweep_interval_s = 600
retry_base_s = 1
retry_max_s = 5

[shop]
adapter = "generic_csv"
mapping = "mapping.toml"

[shop.generic_csv]
source = "shop-orders.csv"
outbox = "outbox"
settle_s = 0                      # the demo shop writes its feed atomically (temp file + rename)

[carriers]
poll_interval_s = 2               # real use: 4 h per parcel (14400)
retry_base_s = 1

[carriers.packeta]
base_url = "{self.packeta.url}"   # the local Packeta simulator
api_password = "{self.packeta_password}"
min_interval_s = 0

[mdp]
labels_dir = "labels"             # MALL Delivery label files (one PDF per request)

[console]
enabled = true                    # the admin console in the browser (see docs/console.md)
listen = "127.0.0.1:{self.console_port}"
language = "en"
users_file = "console-users.toml"
"""

    @property
    def config_path(self) -> Path:
        return self.folder / "config.toml"

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env["PYTHONIOENCODING"] = "utf-8"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_daemon(self) -> None:
        """Start `mall-connector run` on a free port; a port taken meanwhile gets one more try."""
        for attempt in (1, 2):
            self.receiver_port = _free_port()
            self.console_port = _free_port()
            self.world.write_config(self._config_text(), private=True)  # it holds a client_id and a token
            self.sandbox.webhook_url = f"http://127.0.0.1:{self.receiver_port}/webhooks/mall/{self.token}"
            if self.daemon is None:
                from adapters.shared.world import DaemonProcess

                self.daemon = DaemonProcess(self.folder, self.config_path, log_level=None, log="daemon.log",
                                            env=self._child_env(), new_session=False)
            self.daemon.start()
            self.line(f"$ mall-connector --config {self.config_path} run")
            self.detail(f"the real daemon (pid {self.daemon.pid}): receiver on 127.0.0.1:{self.receiver_port}, shop "
                        "poll every 1 s, webhook inbox drained every 1 s")
            try:
                self._wait("the daemon's receiver to answer /healthz", self._healthy, timeout=DAEMON_START_S,
                           died="at start")
                break
            except DemoError:
                port_taken = self.daemon.returncode() == EXIT_CONFIG and b"[receiver] listen" in self.daemon.log_bytes()
                if attempt == 2 or (self.daemon.returncode() in (None, EXIT_CONFIG) and not port_taken):
                    raise
                self.line(f"the daemon {self._daemon_exit('at start')}; trying another port")
        from connector.ledger import open_ledger

        self.ledger = open_ledger(f"sqlite:///{self.folder / 'ledger.db'}", migrate_schema=False)
        self._wait("the daemon's first sweep of MALL's unconfirmed orders",
                   lambda: self.sandbox.request_log.gets("/v1/orders/unconfirmed"))
        self.line("daemon ready: /healthz answers 200; its first sweep found no unconfirmed orders on MALL")
        self.detail(f"MALL's webhooks go to http://127.0.0.1:{self.receiver_port}/webhooks/mall/*** (token masked)")
        self.line(f"console http://127.0.0.1:{self.console_port}/  user admin, one-time password "
                  f"{self.console_password}  (this run only)")

    def _healthy(self) -> bool:
        import httpx

        try:
            return httpx.get(f"http://127.0.0.1:{self.receiver_port}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    # -- step 1 ------------------------------------------------------------------------------------------

    def story_new_orders(self) -> None:
        self.step(1, "New orders arrive by webhook, reach the shop's outbox and are confirmed")
        state = self.sandbox.state
        created = [("A", "normal", None), ("B", "pickup", None), ("C", "cod", None), ("D", "normal", "blocked")]
        made = []
        for i, (label, kind, status) in enumerate(created):
            (o,) = state.create_orders(1, kind=kind, status=status)
            self.orders[label] = StoryOrder(
                label=label, mall_order_id=o["id"], delivery_method=o.get("delivery_method", ""),
                branch_id=o.get("branch_id"), shop_order_id=f"OBJ-{2401 + i}",
            )
            made.append(o)
        a, b, c, d = (self.orders[k] for k in "ABCD")
        self.line("MALL: 4 new orders, unconfirmed")
        for o, label in zip(made, "ABCD"):
            paid = "blocked: waiting for payment" if o["status"] == "blocked" else (
                "paid" if not o.get("cod") else "cash on delivery")
            self.detail(f"{label}  {o['id']}  {paid:<28} {_delivery(o.get('delivery_method'), o.get('branch_id'))}")
        self.send_webhook([a, b, c, d])
        self.await_outbox("orders", [a, b, c])
        self._wait(f"the connector to record {d.ref} as blocked", lambda: self._mall_status_in_ledger(d) == "blocked")
        self.line("connector: D is blocked (waiting for payment): recorded, not handed to the shop yet")
        self.await_confirmed([a, b, c])
        self.pause(0.8)
        state.mall_event(d.mall_order_id, "pay")
        self.line(f"MALL: the customer paid D {d.mall_order_id}: blocked → open")
        self.send_webhook([d])
        self.await_outbox("orders", [d])
        self.await_confirmed([d])

    # -- step 2 ------------------------------------------------------------------------------------------

    def story_pack_and_ship(self) -> None:
        self.step(2, "The shop packs two orders, then ships them; each change is pushed once")
        a, b, c, d = (self.orders[k] for k in "ABCD")
        for o in (c, d):
            o.feed = {"status": "new"}
        for o in (a, b):
            o.feed = {"status": "packing"}
        self.write_feed(note="A packing, B packing, C new, D new",
                        detail="\"new\" is in the mapping's [ignore]: never pushed")
        self.await_puts([a, b], "shipping")
        self.pause(0.8)
        from connector.sandbox import fakedata

        delivery = {d_.code: d_ for d_ in fakedata.DELIVERIES}
        number_a, url_a = self._tracking(delivery.get(a.delivery_method))
        a.feed = {"status": "shipped", "carrier": CARRIER_NAMES.get(a.delivery_method, "PPL"),
                  "tracking_number": number_a, "tracking_url": url_a}
        # B goes by Packeta, whose (simulated) tracking later reports it delivered: the money path.
        number_b = "Z" + "".join(self.rng.choice("0123456789") for _ in range(10))
        carrier_b = "Zásilkovna"
        self.packeta.add_parcel(number_b, [("accepted", datetime.now(PRAGUE).replace(microsecond=0))])
        b.feed = {"status": "shipped", "carrier": carrier_b, "tracking_number": number_b}
        self.write_feed(note="A shipped, B shipped",
                        detail=f"A's row has tracking number and URL; B's only carrier {carrier_b!r} and number")
        self.await_puts([a, b], "shipped")
        self.pause(0.8)
        self.story_mdp_labels()

    def story_mdp_labels(self) -> None:
        """A MALL Delivery order: packed with 2 parcels, pushed to shipping, its labels made and saved (docs/mdp.md)."""
        (o,) = self.sandbox.state.create_orders(1, kind="mdp", status="open")
        e = self.orders["E"] = StoryOrder(label="E", mall_order_id=o["id"], delivery_method=o.get("delivery_method", ""),
                                          branch_id=o.get("branch_id"), shop_order_id="OBJ-2405")
        self.line(f"MALL: a new MALL Delivery order E {e.mall_order_id} ({_delivery(e.delivery_method, e.branch_id)})")
        self.send_webhook([e])
        self.await_outbox("orders", [e])
        self.await_confirmed([e])
        e.feed = {"status": "packing", "parcel_count": "2"}
        self.write_feed(note="E packing, 2 parcels", detail="parcel_count: MALL Delivery makes one label per parcel")
        self.await_puts([e], "shipping")
        labels_dir = self.folder / "labels"

        def made():
            files = sorted(labels_dir.glob("labels-*.pdf")) if labels_dir.is_dir() else []
            return files[-1] if files else None

        path = self._wait(f"the label file of {e.ref}", made)
        post = next(x for x in self.sandbox.request_log.find("POST", "/v1/orders/labels"))
        self.line(f"MALL ← POST /v1/orders/labels {json.dumps(post.body['labels'])} → {post.status_code}",
                  at=self.at_wall(post.ts))
        barcodes = self.sandbox.state.consignments(e.mall_order_id)[-1]["barcodes"]
        self.line(f"connector: E's labels saved to labels/{path.name} ({path.stat().st_size} bytes, PDF)")
        self.detail(f"barcodes {', '.join(barcodes)} are in the ledger; `mall-connector labels {e.mall_order_id}` "
                    "prints them again")

    def _tracking(self, delivery) -> tuple[str, str]:
        prefix, digits = (delivery.tracking_prefix, delivery.tracking_digits) if delivery else ("", 11)
        number = prefix + "".join(self.rng.choice("0123456789") for _ in range(digits))
        template = delivery.tracking_url if delivery else "https://www.ppl.cz/vyhledat-zasilku?shipmentId={}"
        return number, template.format(number)

    # -- step 3 ------------------------------------------------------------------------------------------

    def story_customer_cancel(self) -> None:
        self.step(3, "A customer cancels an order on MALL; the shop learns it from the outbox")
        c = self.orders["C"]
        self.sandbox.state.mall_event(c.mall_order_id, "customer_cancel")
        self.line(f"MALL: the customer cancelled C {c.mall_order_id}: open → cancelled, unconfirmed again")
        self.send_webhook([c])
        self.await_outbox("changes", [c])
        self.await_confirmed([c], again=True)
        self.pause(0.5)
        c.feed = {"status": "cancelled"}
        self.write_feed(note="C cancelled (the shop imported the change)")
        change = self._wait(f"the connector to decide the shop's 'cancelled' for {c.ref}",
                            lambda: self._settled_change(c, target="cancelled"))
        sent = self._status_puts(c)
        verdict = "not sent again" if not sent else f"sent {len(sent)} PUT(s)"
        self.line(f"connector: C cancelled in the shop → {change.state}, {verdict}")
        self.detail(f"reason: {change.reason}")

    # -- step 4 ------------------------------------------------------------------------------------------

    def story_mapping_mistake(self) -> None:
        self.step(4, "A mapping mistake is caught")
        d = self.orders["D"]
        d.feed = {"status": UNMAPPED_STATUS}
        self.write_feed(note=f"D {UNMAPPED_STATUS!r} (waiting for the supplier)",
                        detail="a status the shop uses but the mapping does not know")
        change = self._wait(f"the connector to skip the unmapped status of {d.ref}",
                            lambda: self._settled_change(d, shop_status=UNMAPPED_STATUS))
        puts = self._status_puts(d)
        self.line(f"connector: D's change {change.state} as unmapped; {'nothing' if not puts else len(puts)} sent "
                  f"to MALL, which still has it {self.sandbox.state.get(d.mall_order_id)['status']}")
        result = self.cli("ledger", "list")
        if result.returncode != 0:
            raise DemoError(f"`ledger list` exited with status {result.returncode}: {_last_line(result.stderr)}")
        for text in result.stdout.rstrip("\n").splitlines():
            self.detail("  " + text)
        self.detail(f"hint: {change.reason}")
        self.pause(0.8)
        draft = self.folder / "mapping-draft.toml"
        self.line("an admin drafts a mapping edit with a typo (\"shiped\") and checks it before reloading:")
        result = self.cli("mapping", "check", str(draft))
        for text in (result.stdout + result.stderr).strip().splitlines():
            self.detail("  " + text)
        if result.returncode == 0:
            raise DemoError("`mapping check` accepted a mapping onto 'shiped'; the typo was not caught")
        self.detail(f"→ exit {result.returncode}: refused with file, line and a did-you-mean; a reload (SIGHUP) with "
                    "this file would keep the mapping in force")

    # -- step 5 ------------------------------------------------------------------------------------------

    def story_final_table(self) -> None:
        self.step(5, "Where every order ended up")
        self.detail("MALL status and confirmed: the sandbox; shop feed: the shop's export; handed: the last")
        self.detail("shop status the outbox gave the shop; last sync: the connector's ledger")
        self._out("")
        headers = ("MALL order", "MALL status", "confirmed", "shop feed", "handed", "last sync")
        rows = []
        for o in self.orders.values():
            mall = self.sandbox.state.get(o.mall_order_id)
            rows.append((str(o.mall_order_id), mall["status"], "yes" if mall["confirmed"] else "no",
                         o.feed.get("status", "-"), self.handed.get(o.mall_order_id, "-"), self._last_sync(o)))
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        self._out("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
        self._out("  " + "  ".join("-" * w for w in widths))
        for r in rows:
            self._out("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        self._out("")

    # -- the money path (issue 15) ------------------------------------------------------------------------

    def story_money_path(self) -> None:
        """MALL pays only for delivered orders: Packeta reports B delivered, the connector pushes delivered with
        the carrier's time, and B appears in the billing export."""
        self._out("")
        self._out("[money path] MALL pays only for delivered orders: the carrier's delivery reaches MALL and billing")
        b = self.orders["B"]
        number = b.feed["tracking_number"]
        shipped = datetime.strptime(self.sandbox.state.get(b.mall_order_id)["shipped"], "%Y-%m-%d %H:%M:%S")
        shipped = shipped.replace(tzinfo=PRAGUE)
        delivered = max(datetime.now(PRAGUE).replace(microsecond=0), shipped)
        self.packeta.add_parcel(number, [("accepted", shipped), ("at_pickup", shipped), ("delivered", delivered)])
        self.line(f"Packeta: parcel {number} of B picked up by the customer at {delivered:%Y-%m-%d %H:%M:%S}")
        self.detail("the connector asks Packeta's tracking API about each shipped parcel (packetTracking); here "
                    "every 2 s, for real every 4 h")
        self.await_puts([b], "delivered")
        calls = self.packeta.request_count("/api/rest")
        mall = self.sandbox.state.get(b.mall_order_id)
        self.line(f"MALL: B {b.mall_order_id} delivered at {mall['delivered_at']} (the carrier's time); "
                  f"{calls} tracking call(s) to Packeta")
        day = delivered.date().isoformat()
        result = self.cli("export", "billing", "--from", day, "--to", day, "-o", "billing.xlsx")
        if result.returncode != 0:
            raise DemoError(f"`export billing` exited with status {result.returncode}: {_last_line(result.stderr)}")
        self.detail("  " + result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "  (no output)")
        from openpyxl import load_workbook

        wb = load_workbook(self.folder / "billing.xlsx", read_only=True)
        ids = [row[0] for row in wb["Billing"].iter_rows(min_row=2, values_only=True) if row and row[0]]
        wb.close()
        if b.mall_order_id not in ids:
            raise DemoError(f"B {b.mall_order_id} is delivered on MALL but missing from the billing export")
        self.line(f"billing.xlsx lists B {b.mall_order_id}: MALL buys the goods now that it is delivered")

    def _last_sync(self, o: StoryOrder) -> str:
        changes = self.ledger.changes.list(order_id=o.mall_order_id)
        if not changes:
            return "-"
        ch = changes[-1]
        reason = (ch.reason or ch.last_error or "").split(":")[0]
        if reason.startswith("unmapped shop status"):
            reason = "unmapped shop status"
        if ch.origin == "mall":
            what = "new order" if ch.kind == "new_order" else (ch.target_status or ch.kind)
            return f"{what} handed to the shop" if ch.state == "done" else f"{what} to the shop: {ch.state}"
        if ch.state == "done":
            made = [r for r in self.ledger.mdp.labels_of(o.mall_order_id) if r.state == LabelState.DONE and r.file]
            labels = f"; labels {Path(made[-1].file).name}" if made else ""
            return f"pushed {ch.target_status} to MALL{labels}"
        return f"{ch.state}: {reason}" if reason else ch.state

    # -- the end -----------------------------------------------------------------------------------------

    def stop_daemon(self) -> None:
        """SIGTERM, then the daemon must finish its work in flight and exit 0."""
        if self.daemon is None or self.daemon.proc is None:
            return
        started = time.monotonic()
        rc = self.daemon.stop(timeout=DAEMON_STOP_S)
        if self.daemon.timed_out:
            raise DemoError(f"the daemon did not stop within {DAEMON_STOP_S:.0f} s of SIGTERM (killed it)")
        if rc != 0:
            raise DemoError(f"the daemon {_exit_text(rc)} after SIGTERM, expected status 0{self._daemon_problem()}")
        self.line(f"daemon stopped: SIGTERM → finished its work in flight → exit 0 "
                  f"({time.monotonic() - started:.1f} s)")

    def explore(self) -> None:
        """--keep-running: leave everything up and say how to look around, until Ctrl+C."""
        s, r, f = self.sandbox.url, f"http://127.0.0.1:{self.receiver_port}", self.folder
        cli = f"{_cli_prefix()} --config {shlex.quote(str(self.config_path))}"
        lines = [
            "Everything is still running. Look around:",
            f"  MALL sandbox        {s}/_sandbox   (operator endpoints, no client_id needed)",
            f"    orders            curl {s}/_sandbox/orders",
            f"    API requests      curl {s}/_sandbox/requests",
            f"    webhooks          curl {s}/_sandbox/webhooks",
            f"    a new order       curl -X POST {s}/_sandbox/orders -d '{{\"count\": 1, \"kind\": \"pickup\"}}'",
            f"    customer cancel   curl -X POST {s}/_sandbox/orders/ORDER_ID/events -d '{{\"action\": \"customer_cancel\"}}'",
            f"  console             http://127.0.0.1:{self.console_port}/   user admin, password "
            f"{self.console_password}",
            f"  receiver            {r}/metrics   {r}/healthz   {r}/readyz",
            f"                      webhooks: POST {r}/webhooks/mall/*** (the token is in config.toml)",
            f"  temp folder         {f}",
            "                      config.toml, mapping.toml, shop-orders.csv (the shop feed), outbox/, ledger.db, "
            "daemon.log",
            "  try",
            f"    {cli} ledger list --state all",
            f"    {cli} ledger show {self.orders['A'].mall_order_id}",
            f"    {cli} orders list --status all",
            f"    {cli} check",
            f"    tail -f {shlex.quote(str(f / 'daemon.log'))}",
            "Press Ctrl+C to stop (the folder is kept).",
        ]
        self._out("")
        for text in lines:
            self._out(text)
        try:
            while True:
                if self._daemon_ended():
                    raise DemoError(f"the daemon {self._daemon_exit('unexpectedly')}")
                self.sandbox.flush_webhooks()  # MALL's webhook for whatever changed (e.g. by curl), every second
                time.sleep(1.0)
        except (KeyboardInterrupt, _Interrupted):
            self._out("")
        self.stop_daemon()

    def cleanup(self, *, ok: bool, hurry: bool = False) -> None:
        """Stop every child and thread we started; remove the temp folder unless it is to be kept.

        ``hurry`` (a second Ctrl+C): kill the daemon instead of letting it finish its work in flight.
        """
        problems: list[str] = []
        if self.daemon is not None:
            if hurry:
                self.daemon.kill()
            else:
                self.daemon.stop(timeout=DAEMON_STOP_S)
                if self.daemon.timed_out:
                    problems.append("the daemon did not stop on SIGTERM and was killed")
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None
        if self.sandbox is not None:
            self.mall_requests = len(self.sandbox.request_log)  # the work the story cost MALL (shown at the end)
            self.sandbox.stop()
            self.sandbox = None
        if self.packeta is not None:
            self.packeta.stop()
            self.packeta = None
        self._release_logging()
        if self.folder is not None:
            if self.keep_running:
                self._out(f"Kept the temp folder {self.folder} (remove it with: rm -r {shlex.quote(str(self.folder))})")
            else:
                shutil.rmtree(self.folder, ignore_errors=True)
                if self.folder.exists():
                    problems.append(f"could not remove the temp folder {self.folder}")
                elif ok:
                    self._out(f"Demo finished in {self.now():.1f} s after {getattr(self, 'mall_requests', 0)} MALL API "
                              f"request(s); removed the temp folder {self.folder}.")
        if problems:
            raise DemoError("; ".join(problems))

    # -- the shop ----------------------------------------------------------------------------------------

    def write_feed(self, *, note: str | None, detail: str | None = None) -> None:
        """The shop's export of its current order states: written to a temp name, then renamed."""
        self.world.write_feed([{"mall_order_id": o.mall_order_id, "shop_order_id": o.shop_order_id, **o.feed}
                               for o in self.orders.values() if o.feed], lineterminator="\n")
        if note:
            self.line(f"shop: shop-orders.csv rewritten (temp file + rename): {note}")
            if detail:
                self.detail(detail)

    def _outbox_files(self) -> Iterator[tuple[str, float, list[dict]]]:
        """Outbox files published since the last call: (name, mtime, rows)."""
        from adapters.shared.world import read_csv

        for p in self.world.outbox_files():
            if p.name in self._seen_files:
                continue
            rows = read_csv(p)
            self._seen_files.add(p.name)
            yield p.name, p.stat().st_mtime, rows

    def await_outbox(self, kind: str, orders: list[StoryOrder]) -> None:
        """Wait until every order is in an outbox file of ``kind``; show each new file."""
        pending = {o.mall_order_id for o in orders}

        def check() -> bool:
            for name, mtime, rows in self._outbox_files():
                self._show_outbox_file(name, mtime, rows)
                if name.startswith(kind):
                    pending.difference_update(int(r["mall_order_id"]) for r in rows if r.get("mall_order_id"))
            return not pending

        self._wait(f"{', '.join(o.ref for o in orders)} in the shop's outbox ({kind}-*.csv)", check)

    def _show_outbox_file(self, name: str, mtime: float, rows: list[dict]) -> None:
        by_order: dict[int, list[dict]] = {}
        for r in rows:
            by_order.setdefault(int(r["mall_order_id"]), []).append(r)
        labels = {o.mall_order_id: o.label for o in self.orders.values()}
        if name.startswith("orders"):
            self.line(f"shop outbox ← outbox/{name}: {len(by_order)} new order(s)", at=self.at_wall(mtime))
            for oid, items in by_order.items():
                first = items[0]
                self.handed[oid] = first.get("shop_status") or "-"
                cod = first.get("cod") not in (None, "", "0")
                pay = f"COD {first.get('cod')} {first.get('currency')}" if cod else "prepaid"
                self.detail(f"{labels.get(oid, '?')}  {oid}  {first.get('customer_name')}, {first.get('city')} · "
                            f"{len(items)} item(s) · {pay} · shop status {first.get('shop_status')!r}")
        else:
            self.line(f"shop outbox ← outbox/{name}: {len(rows)} change(s) made on MALL", at=self.at_wall(mtime))
            for r in rows:
                oid = int(r["mall_order_id"])
                self.handed[oid] = r.get("shop_status") or "-"
                self.detail(f"{labels.get(oid, '?')}  {oid}  MALL {r.get('mall_status')} → shop status "
                            f"{r.get('shop_status')!r} ({r.get('note')})")

    # -- what MALL saw -----------------------------------------------------------------------------------

    def send_webhook(self, orders: list[StoryOrder]) -> None:
        """MALL sends its webhook for the changes so far; show the delivery (from the sandbox's webhook log)."""
        pending = {o.mall_order_id for o in orders}
        self.sandbox.flush_webhooks()

        def check() -> bool:
            entries = self.sandbox.webhook_log.entries()
            for e in entries[self._printed_webhooks:]:
                self._printed_webhooks += 1
                ids = ", ".join(str(i) for i in e.ids)
                answer = f"receiver answered {e.status_code}" if e.status_code else f"failed: {e.error}"
                self.line(f"MALL → webhook [{ids}] → {answer}", at=self.at_wall(e.ts))
                if e.outcome != "delivered":
                    raise DemoError(f"the webhook to the daemon's receiver failed ({e.error or e.outcome})")
                pending.difference_update(e.ids)
            return not pending

        self._wait(f"MALL's webhook for {', '.join(o.ref for o in orders)}", check)

    def await_confirmed(self, orders: list[StoryOrder], *, again: bool = False) -> None:
        def confirmed() -> bool:
            return all(self.sandbox.state.get(o.mall_order_id)["confirmed"] for o in orders)

        self._wait(f"{', '.join(o.ref for o in orders)} to be confirmed on MALL", confirmed)
        ids = {o.mall_order_id for o in orders}
        puts = [e for e in self.sandbox.request_log.puts() if e.order_id in ids and e.seq not in self._printed_requests
                and isinstance(e.body, dict) and e.body.get("confirmed") is True and "status" not in e.body]
        self._printed_requests.update(e.seq for e in puts)
        at = self.at_wall(max(e.ts for e in puts)) if puts else None
        codes = sorted({str(e.status_code) for e in puts}) or ["?"]
        why = "again, now that the shop has the change" if again else "only now that the shop has them"
        self.line(f"MALL ← PUT {{\"confirmed\": true}} for {', '.join(o.label for o in orders)} → {'/'.join(codes)}"
                  f" ({why})", at=at)

    def await_puts(self, orders: list[StoryOrder], status: str) -> None:
        """Wait until MALL has these orders in ``status`` and show the PUTs that did it."""
        def there() -> bool:
            return all(self.sandbox.state.get(o.mall_order_id)["status"] == status for o in orders)

        self._wait(f"MALL to have {', '.join(o.ref for o in orders)} {status}", there)
        carriers = {o.mall_order_id: o for o in orders}
        for e in self._status_puts(*orders):
            if e.seq in self._printed_requests:
                continue
            self._printed_requests.add(e.seq)
            body = json.dumps(e.body, ensure_ascii=False)
            head = f"MALL ← PUT /v1/orders/{e.order_id} ({carriers[e.order_id].label})"
            if len(head) + len(body) <= 80:
                self.line(f"{head} {body} → {e.status_code}", at=self.at_wall(e.ts))
            else:  # one field a line, still the JSON MALL received
                self.line(f"{head} → {e.status_code}", at=self.at_wall(e.ts))
                fields = [json.dumps({k: v}, ensure_ascii=False)[1:-1] for k, v in e.body.items()]
                for i, f in enumerate(fields):
                    self.detail(("{" if i == 0 else " ") + f + ("}" if i == len(fields) - 1 else ","))
            o = carriers[e.order_id]
            if status == "shipped" and not o.feed.get("tracking_url"):
                self.detail(f"↳ tracking_url built from the carrier table for {o.feed.get('carrier')!r}")

    def _status_puts(self, *orders: StoryOrder) -> list:
        ids = {o.mall_order_id for o in orders}
        return [e for e in self.sandbox.request_log.puts() if e.order_id in ids
                and isinstance(e.body, dict) and "status" in e.body]

    # -- what the connector decided (its ledger, read only) ---------------------------------------------

    def _mall_status_in_ledger(self, o: StoryOrder) -> str | None:
        row = self.ledger.orders.get(o.mall_order_id)
        return row.mall_status if row is not None else None

    def _settled_change(self, o: StoryOrder, *, target: str | None = None, shop_status: str | None = None):
        for ch in self.ledger.changes.list(order_id=o.mall_order_id):
            if ch.origin != Origin.SHOP or ch.state not in FINISHED_CHANGE_STATES:
                continue
            if (target is None or ch.target_status == target) and (shop_status is None or ch.shop_status == shop_status):
                return ch
        return None

    # -- helpers -----------------------------------------------------------------------------------------

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """Run the real CLI against the demo config; shown in the timeline as a shell command."""
        shown = " ".join(shlex.quote(a) for a in args)
        self.line(f"$ mall-connector --config {self.config_path} {shown}")
        try:
            return self.world.cli(*args, timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL, encoding="utf-8",
                                  errors="replace", env=self._child_env())
        except subprocess.TimeoutExpired:
            raise DemoError(f"`mall-connector {shown}` did not finish within {CLI_TIMEOUT_S:.0f} s") from None

    def _wait(self, what: str, predicate: Callable[[], Any], timeout: float = WAIT_S, died: str | None = None) -> Any:
        """Poll ``predicate`` until it returns something truthy; DemoError naming ``what`` on timeout, or
        saying how the daemon ended (``died``: when, e.g. "at start") if it exits meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if self._daemon_ended():
                raise DemoError(f"the daemon {self._daemon_exit(died or f'while the demo waited for {what}')}")
            if time.monotonic() >= deadline:
                raise DemoError(f"timed out after {timeout:.0f} s waiting for {what} (see daemon.log)")
            time.sleep(0.1)

    def _daemon_ended(self) -> bool:
        """The daemon was started and has exited without being stopped."""
        return self.daemon is not None and self.daemon.proc is not None and not self.daemon.alive()

    def _daemon_exit(self, when: str) -> str:
        """How the daemon ended, e.g. "exited with status 78 at start: config error: ..." (one error line)."""
        rc = self.daemon.returncode() if self.daemon is not None else None
        return f"{_exit_text(rc)} {when}{self._daemon_problem()}"

    def _daemon_problem(self) -> str:
        """": <the daemon's last error line>", or "" when it logged none (INFO lines say nothing useful here)."""
        try:
            text = (self.folder / "daemon.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        for ln in reversed([ln.strip() for ln in text.splitlines() if ln.strip()]):
            if not _LOG_RECORD.match(ln) or _LOG_PROBLEM.match(ln):
                return ": " + _redact(ln)
        return ""


# -- small helpers -------------------------------------------------------------------------------------------


def _delivery(method: str | None, branch_id: int | None) -> str:
    """'pplCz (PPL)', 'zasilkovna (Zásilkovna), pickup branch 21402'."""
    text = f"{method} ({CARRIER_NAMES[method]})" if method in CARRIER_NAMES else (method or "?")
    return text + (f", pickup branch {branch_id}" if branch_id else "")


_LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_LOG_PROBLEM = re.compile(r"^\S+ \S+ (ERROR|CRITICAL)\b")


def _exit_text(rc: int | None) -> str:
    if rc is None:
        return "stopped"
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with status {rc}"


def _free_port() -> int:
    """A loopback TCP port that was free a moment ago (the OS picks it: bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mask(secret: str) -> str:
    return secret[:5] + "…" if len(secret) > 8 else "***"


def _redact(text: str) -> str:
    from connector.logs import redact

    return redact(text)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return _redact(lines[-1]) if lines else ""


def _cli_prefix() -> str:
    """How the user can run the CLI from where they started the demo (mall-connector may not be on PATH)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name == "mall-connector":
        on_path = shutil.which("mall-connector")
        if on_path and Path(on_path).resolve() == Path(argv0).resolve():
            return "mall-connector"
        return shlex.quote(argv0)
    return f"{shlex.quote(sys.executable)} -m connector"


class _signals_raise_interrupt:
    """SIGTERM and SIGHUP end the demo like Ctrl+C does (children are cleaned up); main thread only."""

    SIGNALS = ("SIGTERM", "SIGHUP")

    def __enter__(self):
        self._saved: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self._saved[sig] = signal.signal(sig, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise _Interrupted()

    def __exit__(self, *exc) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
