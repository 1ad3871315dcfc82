"""The moving parts of a chaos run: an instrumented MALL sandbox, a shop that keeps working, MALL's own
changes and MALL's webhooks replayed; the real daemon as a subprocess that is SIGKILLed and restarted is
the shared world's ``DaemonProcess`` (adapters/shared/world.py).

Everything random takes a ``random.Random`` built from the run's seed, so a seed fixes the schedule
(which orders, which actions, which fault rates, when the kills come); thread and process timing on a
real machine still varies, so two runs of one seed agree on the schedule, not on every counter.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from adapters.shared.world import read_csv
from connector.sandbox.state import SandboxError

PRAGUE = ZoneInfo("Europe/Prague")

#: The chaos shop's own status names (Czech, as a real shop writes them) and the mapping it uses.
NEW, HANDLING, WAITING, PACKING, SENT, DELIVERED, CANCELLED = (
    "nová", "vyřizuje se", "čeká na zboží", "balí se", "odesláno", "doručeno", "stornováno")
UNMAPPED = WAITING  # neither mapped nor ignored: must be reported, never pushed
MAPPING_TOML = f"""# chaos shop mapping
[to_mall]
"{PACKING}" = "shipping"
"{SENT}" = "shipped"
"{DELIVERED}" = "delivered"
"{CANCELLED}" = "cancelled"
[ignore]
statuses = ["{NEW}", "{HANDLING}"]
[from_mall]
open = "{NEW}"
shipping = "{PACKING}"
shipped = "{SENT}"
delivered = "{DELIVERED}"
cancelled = "{CANCELLED}"
"""
#: What a MALL status means for the shop when the outbox tells it (MALL-side changes).
SHOP_STATUS_FOR = {"cancelled": CANCELLED, "shipped": SENT, "delivered": DELIVERED}


PACKETA = "Zásilkovna"


def prague_now() -> str:
    return datetime.now(PRAGUE).strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------------------------------------
# The sandbox, instrumented


def instrument(store) -> None:
    """Stamp every order-history entry the sandbox writes from now on with the exact time and the
    order's branch, and record when the API served each order, so the checks can order MALL-side
    changes, reads, confirmations and outbox files exactly.

    The entries are appended under the store's lock in the order they took effect; the stamp is taken
    there too (``history()`` returns these dicts, the API never shows them)."""
    original = store._log

    def _log(order_id, who, action, frm, to, when):
        original(order_id, who, action, frm, to, when)
        order = store._orders[order_id]
        store._history[order_id][-1].update(ts=time.time(), branch_id=order.get("branch_id"))

    store._log = _log
    # Every GET /v1/orders/{id} the API answered (the sandbox's request threads, not this runner): when
    # the connector read the order, stamped under the same lock as the history.
    store.reads = reads = {}
    original_get = store.get
    main = threading.main_thread()

    def get(order_id):
        with store._lock:
            ts = time.time()
            order = original_get(order_id)
        if threading.current_thread() is not main:
            reads.setdefault(order_id, []).append(ts)
        return order

    store.get = get


# ---------------------------------------------------------------------------------------------
# The shop


@dataclass
class OutboxFile:
    name: str
    kind: str  # orders | changes
    rows: list[dict]
    mtime: float
    seq: int  # the handoff id in the name: publication order
    imported_at: float = 0.0  # when the shop took it: it was published before that

    @staticmethod
    def seq_of(name: str) -> int:
        return int(Path(name).stem.rsplit("-", 1)[1])


@dataclass
class ShopOrder:
    oid: int
    mdp: bool
    status: str = NEW
    tracking_number: str | None = None
    tracking_url: str | None = None
    carrier: str | None = None
    delivered_at: str | None = None
    branch_id: str | None = None


class ShopSim:
    """A shop that imports the outbox and works its orders: new → packing → shipped (with tracking) →
    sometimes delivered; some cancelled by the shop, some parked in an unmapped status first, some
    shipped without tracking at first (the change fails until the number arrives). It learns MALL's
    changes only from the outbox (a customer cancel makes it cancel too) and writes its feed atomically."""

    def __init__(self, csv_shop, rng, is_mdp):
        self.csv_shop = csv_shop
        self.rng = rng
        self.is_mdp = is_mdp  # oid -> bool (the shop reads it from the delivery method)
        self.orders: dict[int, ShopOrder] = {}
        self.files: list[OutboxFile] = []
        self.imported = csv_shop.folder / "imported"
        self.imported.mkdir(exist_ok=True)
        self.dirty = False
        self.status_log: dict[int, list[tuple[float, str]]] = {}  # oid -> (time written, status), in order
        self.writes = 0
        self.transitions = 0  # status changes the shop made on its own
        self.reactions = 0  # status changes made because MALL said so
        self.no_tracking_first = 0

    # -- the outbox ---------------------------------------------------------------------------
    def import_outbox(self) -> int:
        """Take every published ``*.csv`` (never the hidden temp files), oldest batch first; move it away."""
        names = sorted(self.csv_shop.outbox_files(), key=lambda p: OutboxFile.seq_of(p.name))
        for path in names:
            rows = read_csv(path)
            f = OutboxFile(path.name, "orders" if path.name.startswith("orders-") else "changes", rows,
                           path.stat().st_mtime, OutboxFile.seq_of(path.name), time.time())
            os.rename(path, self.imported / path.name)  # keeps the mtime
            self.files.append(f)
            self._apply(f)
        return len(names)

    def _apply(self, f: OutboxFile) -> None:
        if f.kind == "orders":
            for row in f.rows:
                oid = int(row["mall_order_id"])
                if oid not in self.orders:
                    self.orders[oid] = ShopOrder(oid, mdp=self.is_mdp(oid), branch_id=row["branch_id"] or None)
                    self.dirty = True
                if row["status"] in SHOP_STATUS_FOR:
                    self._react(oid, row["status"])
            return
        for row in f.rows:
            oid = int(row["mall_order_id"])
            o = self.orders.get(oid)
            if o is None:
                continue  # a change for an order the shop never got: the checks report it
            if row["note"].startswith("pickup branch changed"):
                o.branch_id = row["branch_id"]
            elif row["mall_status"] in SHOP_STATUS_FOR:
                self._react(oid, row["mall_status"])

    def _react(self, oid: int, mall_status: str) -> None:
        o = self.orders[oid]
        status = SHOP_STATUS_FOR[mall_status]
        if o.status != status and o.status not in (CANCELLED, DELIVERED):
            o.status = status
            self.reactions += 1
            self.dirty = True

    # -- working the orders -------------------------------------------------------------------
    def work(self, intensity: float) -> None:
        """Move some orders one step; ``intensity`` is the chance per order and tick."""
        rng = self.rng
        for oid in sorted(self.orders):
            o = self.orders[oid]
            if rng.random() >= intensity:
                continue
            r = rng.random()
            before = (o.status, o.tracking_number)
            if o.status in (NEW, HANDLING):
                if r < 0.06:
                    o.status = CANCELLED
                elif r < 0.16:
                    o.status = WAITING
                elif r < 0.30 and o.status == NEW:
                    o.status = HANDLING
                else:
                    o.status = PACKING
            elif o.status == WAITING:
                o.status = PACKING if r < 0.9 else CANCELLED
            elif o.status == PACKING and not o.mdp:
                if r < 0.04:
                    o.status = CANCELLED
                else:
                    o.status = SENT
                    if rng.random() < 0.1:
                        self.no_tracking_first += 1  # the number comes a tick later: fails, then goes
                    else:
                        self._tracking(o)
            elif o.status == SENT and not o.mdp:
                if o.tracking_number is None:
                    self._tracking(o)
                elif r < 0.3 and (o.carrier != PACKETA or rng.random() < 0.3):  # Packeta: mostly the carrier tells
                    o.status = DELIVERED
                    o.delivered_at = prague_now()
            if (o.status, o.tracking_number) != before:
                self.transitions += o.status != before[0]
                self.dirty = True

    def _tracking(self, o: ShopOrder) -> None:
        if self.rng.random() < 0.6:  # a Packeta parcel: its delivery comes from the carrier's tracking (issue 15)
            o.tracking_number, o.carrier, o.tracking_url = f"Z{o.oid % 10**10:010d}", PACKETA, None
            return
        number = f"PPL{o.oid % 10**9:09d}"
        o.tracking_number = number
        if self.rng.random() < 0.5:
            o.tracking_url = f"https://www.ppl.cz/vyhledat-zasilku?shipmentId={number}"
        else:
            o.carrier = "PPL"  # the connector builds the URL from the carrier

    def write_feed(self, force: bool = False) -> None:
        if not (self.dirty or force):
            return
        rows = [{"mall_order_id": o.oid, "status": o.status, "shop_order_id": f"S{o.oid % 100000}",
                 "tracking_number": o.tracking_number or "", "tracking_url": o.tracking_url or "",
                 "carrier": o.carrier or "", "delivered_at": o.delivered_at or ""}
                for o in sorted(self.orders.values(), key=lambda o: o.oid)]
        self.csv_shop.write_feed(rows)
        now = time.time()
        for o in self.orders.values():
            seen = self.status_log.setdefault(o.oid, [])
            if not seen or seen[-1][1] != o.status:
                seen.append((now, o.status))
        self.dirty = False
        self.writes += 1

    def status_at(self, oid: int, t: float) -> str | None:
        """The order's status in the feed the shop had written by time ``t`` (None before the first)."""
        status = None
        for ts, value in self.status_log.get(oid, ()):
            if ts > t:
                break
            status = value
        return status

    def feed_statuses(self) -> dict[int, str]:
        return {o.oid: o.status for o in self.orders.values()}


# ---------------------------------------------------------------------------------------------
# MALL's side


@dataclass
class MallEvent:
    ts: float
    oid: int
    action: str
    ok: bool


class MallDriver:
    """Plays MALL: new orders (some blocked until paid), payments, unpaid and customer cancels,
    pickup-branch changes, MALL Delivery shipping and delivery. Straight on the sandbox's store, as
    MALL's back office would; every change unconfirms the order and queues a webhook."""

    KINDS = (("normal", 35), ("pickup", 25), ("cod", 15), ("mdp", 25))

    def __init__(self, store, rng, target_orders: int):
        self.store = store
        self.rng = rng
        self.target = target_orders
        self.kinds: dict[int, str] = {}
        self.mdp: dict[int, bool] = {}
        self.events: list[MallEvent] = []

    @property
    def created(self) -> int:
        return len(self.kinds)

    def tick(self, create_per_tick: float) -> None:
        rng = self.rng
        n = int(create_per_tick) + (rng.random() < create_per_tick % 1)
        for _ in range(min(n, self.target - self.created)):
            kind = rng.choices([k for k, _ in self.KINDS], weights=[w for _, w in self.KINDS])[0]
            status = "blocked" if rng.random() < 0.25 else "open"
            (order,) = self.store.create_orders(1, kind=kind, status=status)
            self.kinds[order["id"]] = kind
            self.mdp[order["id"]] = bool(order["mdp"])
        by_status: dict[str, list[int]] = {}
        for row in self.store.rows():
            if row["id"] in self.kinds:
                by_status.setdefault(row["status"], []).append(row["id"])
        for oid in by_status.get("blocked", []):
            r = rng.random()
            if r < 0.08:
                self._event(oid, "pay")
            elif r < 0.09:
                self._event(oid, "unpaid_cancel")
        live = by_status.get("open", []) + by_status.get("shipping", [])
        if live and rng.random() < 0.12:
            self._event(rng.choice(live), "customer_cancel")
        pickups = [oid for oid in live + by_status.get("blocked", []) if self.kinds[oid] == "pickup"]
        if pickups and rng.random() < 0.15:
            self._event(rng.choice(pickups), "change_branch", branch_id=rng.randint(30000, 39999))
        for oid in by_status.get("shipping", []):
            if self.mdp[oid] and rng.random() < 0.08:
                self._event(oid, "mdp_ship")
        for oid in by_status.get("shipped", []):
            if self.mdp[oid] and rng.random() < 0.06:
                self._event(oid, "mdp_deliver" if rng.random() < 0.85 else "mdp_return")

    def _event(self, oid: int, action: str, **kw) -> None:
        try:
            self.store.mall_event(oid, action, **kw)
            ok = True
        except SandboxError:  # e.g. the partner moved it meanwhile: MALL refuses, as it would
            ok = False
        self.events.append(MallEvent(time.time(), oid, action, ok))


# ---------------------------------------------------------------------------------------------
# MALL's webhooks, replayed (the daemon itself: adapters/shared/world.py DaemonProcess)


class Replayer:
    """MALL's webhooks late and out of order: re-POSTs batches that were delivered earlier."""

    def __init__(self, sandbox, url: str, rng):
        import httpx

        self.sandbox = sandbox
        self.url = url
        self.rng = rng
        self.sent = 0
        self._http = httpx.Client(timeout=2.0)
        self._lock = threading.Lock()

    def maybe_replay(self, chance: float) -> None:
        if self.rng.random() >= chance:
            return
        delivered = [e for e in self.sandbox.webhook_log.entries() if e.outcome == "delivered"]
        if not delivered:
            return
        batch = self.rng.choice(delivered[: max(1, len(delivered) - 1)])  # an older one
        try:
            self._http.post(self.url, json=batch.ids)
            self.sent += 1
        except Exception:  # noqa: BLE001 - the daemon may be down (killed): that is part of the game
            pass

    def close(self) -> None:
        self._http.close()


# ---------------------------------------------------------------------------------------------
# The carrier (issue 15)


class CarrierDriver:
    """Plays Packeta: parcels of orders MALL has shipped get delivered in the Packeta simulator (a time between
    MALL's shipped time and now), and the simulator has bad moments (outage, 5xx, timeouts, garbage answers).
    Some of these orders the shop also reports delivered itself: MALL must get `delivered` once either way."""

    def __init__(self, sim, store, shop, rng):
        self.sim, self.store, self.shop, self.rng = sim, store, shop, rng
        self.delivered: dict[int, str] = {}  # oid -> the carrier's delivery time (Prague)

    def tick(self, chance: float) -> None:
        for o in list(self.shop.orders.values()):
            if o.carrier != PACKETA or not o.tracking_number or o.oid in self.delivered or self.rng.random() >= chance:
                continue
            mall = self.store.get(o.oid)
            if mall["status"] != "shipped" or not mall.get("shipped"):
                continue
            shipped = datetime.strptime(mall["shipped"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=PRAGUE)
            now = datetime.now(PRAGUE).replace(microsecond=0)
            at = max(shipped, shipped + (now - shipped) * self.rng.random()).replace(microsecond=0)
            self.sim.add_parcel(o.tracking_number, [("accepted", shipped), ("delivered", at)])
            self.delivered[o.oid] = at.strftime("%Y-%m-%d %H:%M:%S")

    def faults(self) -> None:
        r = self.rng.random()
        if r < 0.25:
            self.sim.set_faults(outage=self.rng.randint(1, 3))
        elif r < 0.5:
            self.sim.set_faults(error=self.rng.randint(1, 3), error_status=self.rng.choice([500, 502, 503]))
        elif r < 0.65:
            self.sim.set_faults(garbage=self.rng.randint(1, 2))
        elif r < 0.75:
            self.sim.set_faults(delay=1, delay_s=2.5)  # the connector's timeout is 2 s

    def deliver_the_rest(self) -> None:
        self.sim.set_faults(outage=0, error=0, garbage=0, delay=0)
        self.tick(1.0)
