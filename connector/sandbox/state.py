"""The sandbox's orders: a thread-safe in-memory store and a seeded generator of realistic MALL orders.

Orders are kept as MALL wire dicts (snake_case, null fields left out as real MALL does; mall-api.md §3).
Status rules are not re-implemented here: partner updates go through ``statuses.check_update`` and
MALL-side events through ``statuses.mall_may``, so the sandbox refuses exactly what the connector
believes MALL refuses. Timestamps are Europe/Prague local time, ``YYYY-MM-DD HH:MM:SS``.
"""

from __future__ import annotations

import random
import threading
import unicodedata
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo

from connector.mall.statuses import (
    ALL_STATUSES,
    TRACKING_NUMBER_RE,
    Status,
    check_update,
    mall_may,
)
from connector.sandbox import fakedata as fd

PRAGUE = ZoneInfo("Europe/Prague")
DATETIME_FMT = "%Y-%m-%d %H:%M:%S"
DATE_FMT = "%Y-%m-%d"
KINDS = ("normal", "test", "mdp", "pickup", "cod")
#: Order ids are purchase_id * 100 + 2, as in the recorded responses (231207 -> 23120701); first one 10085339302.
FIRST_PURCHASE_ID = 100853393

#: Key order of an order detail, as in the recorded GET /v1/orders/{id}.
DETAIL_KEYS = (
    "id", "purchase_id", "external_order_id", "currency", "delivery_price", "cod_price", "cod", "discount",
    "payment_type", "delivery_method", "delivery_method_id", "branch_id", "branches", "tracking_number",
    "tracking_url", "ship_date", "delivery_date", "delivered_at", "first_delivery_attempt", "address", "confirmed",
    "status", "items", "test", "mdp", "mdp_classic", "mdp_spectrum", "ready_to_return",
    *(s.value for s in ALL_STATUSES), "ulozenka_status_history", "consignment_status_history",
)
#: Keys of a basic order (list with filter=basic), in the recorded order; null ones are left out.
BASIC_KEYS = (
    "id", "purchase_id", "customer_id", "customer", "cod", "payment_type", "ship_date", "tracking_number",
    "tracking_url", "delivered_at", "status", "confirmed", "test", "mdp", "mdp_classic", "mdp_spectrum",
)

#: Operator actions that move an order the way MALL does, and the status each one targets.
MALL_ACTIONS: dict[str, Status | None] = {
    "pay": Status.OPEN,
    "customer_cancel": Status.CANCELLED,
    "unpaid_cancel": Status.CANCELLED,
    "mdp_ship": Status.SHIPPED,
    "mdp_deliver": Status.DELIVERED,
    "mdp_return": Status.RETURNED,
    "mdp_lose": Status.LOST,
    "change_branch": None,
}

#: Body fields of PUT /v1/orders/{id} and their JSON types.
UPDATE_FIELDS: dict[str, type] = {
    "confirmed": bool, "status": str, "tracking_number": str, "tracking_url": str,
    "delivered_at": str, "first_delivery_attempt": str,
}


class SandboxError(Exception):
    """A refusal the API answers with ``http_status`` and a MALL errorCode."""

    def __init__(self, http_status: int, code: str, message: str):
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message


class OrderNotFound(SandboxError):
    def __init__(self, order_id: object):
        super().__init__(404, "RESOURCE_NOT_FOUND", f"order {order_id} not found")


def fmt_dt(dt: datetime) -> str:
    return dt.strftime(DATETIME_FMT)


def _parse_dt(value: str, field: str) -> datetime:
    try:
        return datetime.strptime(value, DATETIME_FMT)
    except ValueError:
        raise SandboxError(400, "INVALID_DATE_FORMAT", f"{field} must be YYYY-MM-DD HH:MM:SS") from None


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace(" ", "")


def _copy(value: Any) -> Any:
    """A deep copy of JSON-like data (several times faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10**n)).zfill(n)


def _next_workday(d: date, days: int = 1) -> date:
    d += timedelta(days=days)
    while d.weekday() >= 5:
        d += timedelta(days=1)
    return d


class OrderGenerator:
    """Builds one realistic order (without id) and its status history from a seeded RNG.

    ``payment_type`` "A" (prepaid) / "B" (cash on delivery) is a guess: MALL does not document the codes.
    """

    def __init__(self, rng: random.Random):
        self.rng = rng

    def build(self, kind: str, status: Status, now: datetime, *, settled: bool) -> tuple[dict, list[dict]]:
        """(order, history). ``settled`` puts the last change some time in the past, else at ``now``."""
        rng = self.rng
        country = "SK" if rng.random() < 0.2 else "CZ"
        currency = "EUR" if country == "SK" else "CZK"
        delivery = rng.choice([d for d in fd.DELIVERIES if d.country == country and self._fits(d, kind)])
        items = self._items(country)
        goods = sum(i["price"] * i["quantity"] for i in items)
        free_from = 60 if currency == "EUR" else 1500
        delivery_price = 0 if goods >= free_from else delivery.price
        cod_price = fd.COD_FEE[currency] if kind == "cod" else 0
        cod = self._money(goods + delivery_price + cod_price, currency) if kind == "cod" else 0
        discount = 0
        if kind != "cod" and rng.random() < 0.1:
            discount = 4 if currency == "EUR" else 100

        steps = self._path(kind, status, delivery.mdp)
        times = self._times(steps, kind, now, settled)
        history = [
            {"who": who, "action": action, "from": prev, "to": to.value, "when": fmt_dt(t)}
            for (to, who, action), prev, t in zip(steps, [None] + [s[0].value for s in steps[:-1]], times)
        ]
        started = times[1] if len(times) > 1 and steps[1][0] is Status.OPEN else times[0]
        ship_date = _next_workday(started.date())
        order: dict[str, Any] = {
            "external_order_id": 0,
            "currency": currency,
            "delivery_price": delivery_price,
            "cod_price": cod_price,
            "cod": cod,
            "discount": discount,
            "payment_type": "B" if kind == "cod" else "A",
            "delivery_method": delivery.code,
            "delivery_method_id": delivery.method_id,
            "branches": {"overridden": False},
            "ship_date": ship_date.strftime(DATE_FMT),
            "delivery_date": _next_workday(ship_date, 2 if country == "SK" else 1).strftime(DATE_FMT),
            "address": self._address(country),
            "confirmed": False,
            "status": status.value,
            "items": items,
            "test": kind == "test",
            "mdp": delivery.mdp,
            "mdp_classic": delivery.mdp,  # which MDP variant applies is undocumented; classic is the plain one
            "mdp_spectrum": False,
            "ready_to_return": False,
            "ulozenka_status_history": [],
            "consignment_status_history": [],
        }
        if delivery.pickup:
            branch = rng.randint(1000, 29999)
            order["branch_id"] = branch
            order["branches"] = {"branch_id": branch, "overridden": False}
        for (to, _, _), t in zip(steps, times):
            order[to.value] = fmt_dt(t)
        reached = {s for s, _, _ in steps}
        if Status.SHIPPED in reached:
            order["tracking_number"], order["tracking_url"] = self.tracking(delivery)
        if status is Status.DELIVERED:
            delivered = times[-1]
            attempt = delivered - timedelta(hours=rng.randint(1, 48)) if delivery.pickup else delivered
            attempt = max(attempt, times[-2])
            order["delivered_at"] = fmt_dt(delivered)
            order["first_delivery_attempt"] = fmt_dt(attempt)
        return order, history

    def tracking(self, delivery: fd.Delivery) -> tuple[str, str]:
        number = delivery.tracking_prefix + _digits(self.rng, delivery.tracking_digits)
        return number, delivery.tracking_url.format(number)

    @staticmethod
    def _fits(d: fd.Delivery, kind: str) -> bool:
        if kind == "mdp":
            return d.mdp
        if kind == "pickup":
            return d.pickup and not d.mdp
        if kind == "cod":
            return not d.mdp
        return not d.pickup and not d.mdp  # normal, test

    @staticmethod
    def _money(value: float, currency: str) -> float | int:
        return round(value) if currency == "CZK" else round(value, 2)

    def _items(self, country: str) -> list[dict]:
        rng = self.rng
        items = []
        for p in rng.sample(fd.PRODUCTS, rng.choice([1, 1, 1, 2, 2, 3])):
            if country == "SK":
                price, vat = round(round(p.price_czk / fd.CZK_PER_EUR) - 0.1, 2), fd.SK_VAT[p.vat_cz]
            else:
                price, vat = p.price_czk, p.vat_cz
            items.append({
                "id": p.id, "article_id": p.article_id, "quantity": rng.choice([1, 1, 1, 1, 2, 3]),
                "price": price, "vat": vat, "commission": p.commission, "title": p.title, "serial_numbers": [],
            })
        return items

    def _address(self, country: str) -> dict:
        rng = self.rng
        female = rng.random() < 0.5
        if country == "SK":
            first, last = rng.choice(fd.SK_WOMEN if female else fd.SK_MEN)
            city, zip_code = rng.choice(fd.SK_CITIES)
            street, domains = rng.choice(fd.SK_STREETS), fd.SK_MAIL_DOMAINS
            phone = "+4219" + _digits(rng, 8)
        else:
            first, last = rng.choice(fd.CZ_WOMEN if female else fd.CZ_MEN)
            city, zip_code = rng.choice(fd.CZ_CITIES)
            street, domains = rng.choice(fd.CZ_STREETS), fd.CZ_MAIL_DOMAINS
            phone = "+420" + rng.choice("67") + _digits(rng, 8)
        number = f"{rng.randint(1, 2500)}/{rng.randint(1, 40)}" if rng.random() < 0.6 else str(rng.randint(1, 120))
        address = {
            "customer_id": rng.randint(1000000000, 1099999999),
            "name": f"{first} {last}",
            "phone": phone,
            "email": f"{_ascii(first)}.{_ascii(last)}{rng.randint(1, 99)}@{rng.choice(domains)}",
            "street": f"{street} {number}",
            "city": city,
            "zip": zip_code,
            "country": country,
        }
        if rng.random() < 0.1:
            address = {**address, "company": f"{last} {rng.choice(fd.COMPANY_SUFFIXES)}"}
        return address

    def _path(self, kind: str, status: Status, mdp: bool) -> list[tuple[Status, str, str]]:
        """The (status, who, action) steps that led to ``status``."""
        rng = self.rng
        steps = [(Status.OPEN, "mall", "create")] if kind == "test" else [(Status.BLOCKED, "mall", "create")]
        if status is Status.BLOCKED:
            return steps
        if status is Status.CANCELLED and kind != "test" and rng.random() < 0.3:
            return steps + [(Status.CANCELLED, "mall", "unpaid_cancel")]
        if kind != "test":
            steps.append((Status.OPEN, "mall", "pay"))
        if status is Status.OPEN:
            return steps
        if status is Status.CANCELLED:
            if rng.random() < 0.5:
                return steps + [(Status.CANCELLED, "mall", "customer_cancel")]
            if rng.random() < 0.5:
                steps.append((Status.SHIPPING, "partner", "update"))
            return steps + [(Status.CANCELLED, "partner", "update")]
        if mdp or status is Status.SHIPPING or rng.random() < 0.7:
            steps.append((Status.SHIPPING, "partner", "update"))
        if status is Status.SHIPPING:
            return steps
        steps.append((Status.SHIPPED, "mall", "mdp_ship") if mdp else (Status.SHIPPED, "partner", "update"))
        if status is Status.SHIPPED:
            return steps
        if mdp:
            action = {Status.DELIVERED: "mdp_deliver", Status.RETURNED: "mdp_return", Status.LOST: "mdp_lose"}[status]
            return steps + [(status, "mall", action)]
        return steps + [(status, "partner", "update")]

    def _times(self, steps: list[tuple[Status, str, str]], kind: str, now: datetime, settled: bool) -> list[datetime]:
        """A plausible time for each step, the last one at ``now`` or (settled) some while before."""
        rng = self.rng
        hour = 3600
        gaps = [0.0]
        for (prev, _, _), (to, _, action) in zip(steps, steps[1:]):
            if to is Status.OPEN:
                gap = rng.uniform(60, 600) if kind == "cod" else rng.uniform(300, 6 * hour)
            elif to is Status.SHIPPING:
                gap = rng.uniform(hour, 20 * hour)
            elif to is Status.SHIPPED:
                gap = rng.uniform(hour, 8 * hour) if prev is Status.SHIPPING else rng.uniform(2 * hour, 24 * hour)
            elif to is Status.DELIVERED:
                gap = rng.uniform(20 * hour, 72 * hour)
            elif to is Status.CANCELLED and action == "unpaid_cancel":
                gap = rng.uniform(24 * hour, 10 * 24 * hour)
            elif to is Status.CANCELLED:
                gap = rng.uniform(hour, 48 * hour)
            else:  # returned, lost
                gap = rng.uniform(5 * 24 * hour, 14 * 24 * hour)
            gaps.append(gap)
        end = now
        if settled:
            final = steps[-1][0] in (Status.DELIVERED, Status.RETURNED, Status.CANCELLED, Status.LOST)
            end = now - timedelta(seconds=rng.uniform(24 * hour, 25 * 24 * hour) if final else rng.uniform(120, 48 * hour))
        total = sum(gaps)
        times, elapsed = [], 0.0
        for gap in gaps:
            elapsed += gap
            times.append((end - timedelta(seconds=total - elapsed)).replace(microsecond=0))
        return times


def _parse_update(body: object) -> dict:
    """The validated fields of a PUT /v1/orders/{id} body (nulls dropped); SandboxError 400 otherwise."""
    if not isinstance(body, dict):
        raise SandboxError(400, "BAD_REQUEST", "the body must be a JSON object")
    unknown = sorted(set(body) - set(UPDATE_FIELDS))
    if unknown:
        raise SandboxError(400, "UNKNOWN_FIELD", f"unknown field(s): {', '.join(unknown)}")
    fields = {k: v for k, v in body.items() if v is not None}
    for key, value in fields.items():
        if not isinstance(value, UPDATE_FIELDS[key]):
            kind = "true or false" if UPDATE_FIELDS[key] is bool else "a string"
            raise SandboxError(400, "VALIDATION_ERROR", f"{key} must be {kind}")
    if "status" in fields:
        try:
            fields["status"] = Status(fields["status"])
        except ValueError:
            raise SandboxError(400, "INVALID_STATUS", f"{fields['status']!r} is not an order status") from None
    for key in ("delivered_at", "first_delivery_attempt"):
        if key in fields:
            _parse_dt(fields[key], key)
    return fields


def _parse_labels(body: object) -> dict:
    """The validated body of ``POST /v1/orders/labels``; SandboxError 400 otherwise."""
    if not isinstance(body, dict):
        raise SandboxError(400, "BAD_REQUEST", "the body must be a JSON object")
    unknown = sorted(set(body) - {"labels_type", "first_position", "labels_per_page", "labels"})
    if unknown:
        raise SandboxError(400, "UNKNOWN_FIELD", f"unknown field(s): {', '.join(unknown)}")

    def whole(name: str, value: object, lo: int, hi: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise SandboxError(400, "VALIDATION_ERROR", f"{name} must be a whole number from {lo} to {hi}")
        return value

    labels_type = body.get("labels_type", "pdf")
    if labels_type not in ("pdf", "zpl"):
        raise SandboxError(400, "VALIDATION_ERROR", "labels_type must be pdf or zpl")
    per_page = whole("labels_per_page", body.get("labels_per_page", 4), 1, 16)
    first = whole("first_position", body.get("first_position", 1), 1, per_page)
    entries = body.get("labels")
    if not isinstance(entries, list) or not 1 <= len(entries) <= 500:
        raise SandboxError(400, "VALIDATION_ERROR", "labels must be a list of 1 to 500 {order_id, parcel_count}")
    out, seen = [], set()
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) - {"order_id", "parcel_count"}:
            raise SandboxError(400, "VALIDATION_ERROR", "each labels entry is {order_id, parcel_count}")
        oid = whole("order_id", entry.get("order_id"), 1, 2**63 - 1)
        if oid in seen:
            raise SandboxError(400, "VALIDATION_ERROR", f"order {oid} is listed twice")
        seen.add(oid)
        out.append({"order_id": oid, "parcel_count": whole("parcel_count", entry.get("parcel_count", 1), 1, 100)})
    return {"labels_type": labels_type, "labels_per_page": per_page, "first_position": first, "labels": out}


class OrderStore:
    """Thread-safe in-memory MALL orders with a change history and the queue of ids awaiting a webhook.

    Every read returns a deep copy, so callers can never change the state behind the lock's back.
    ``clock`` returns the current Europe/Prague time (injectable for tests).
    """

    def __init__(self, seed: int = 0, clock: Callable[[], datetime] | None = None):
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._gen = OrderGenerator(self._rng)
        self._clock = clock or (lambda: datetime.now(PRAGUE))
        self._orders: dict[int, dict] = {}  # ids only grow, so insertion order is id order
        self._rows: dict[int, Mapping[str, Any]] = {}  # cache for rows(); dropped when an order changes
        self._history: dict[int, list[dict]] = {}
        self._changed: dict[int, None] = {}  # insertion-ordered set of ids MALL changed since the last webhook
        self._next_purchase = FIRST_PURCHASE_ID
        self._consignments: dict[int, list[dict]] = {}  # label sets per MALL Delivery order, latest last
        self._next_consignment = 1

    # -- creating orders -------------------------------------------------------------------------

    def seed_orders(self, n: int) -> list[dict]:
        """Add ``n`` orders spread over all 8 statuses, ids ascending with their age; no webhooks."""
        with self._lock:
            now = self._now()
            built = []
            for i in range(n):
                status = ALL_STATUSES[i % len(ALL_STATUSES)]
                kind = "mdp" if status is Status.LOST else self._rng.choices(
                    ["normal", "pickup", "mdp", "cod"], weights=[40, 20, 20, 20])[0]
                order, history = self._gen.build(kind, status, now, settled=True)
                last_by_partner = history[-1]["who"] == "partner"
                order["confirmed"] = status is not Status.BLOCKED and (last_by_partner or self._rng.random() < 0.5)
                built.append((history[0]["when"], order, history))
            built.sort(key=lambda b: b[0])
            return [self._add(order, history) for _, order, history in built]

    def create_orders(self, count: int = 1, kind: str = "normal", status: str | Status | None = None) -> list[dict]:
        """New orders as MALL would create them now: unconfirmed and queued for a webhook.

        Default status ``open`` so a partner can act at once (test orders always start there); pass
        ``blocked`` to start before payment, or a later status to set up a scenario (its past is generated).
        """
        if kind not in KINDS:
            raise SandboxError(400, "BAD_REQUEST", f"kind must be one of {', '.join(KINDS)}")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100_000:
            raise SandboxError(400, "BAD_REQUEST", "count must be an integer from 1 to 100000")
        try:
            target = Status(status) if status is not None else Status.OPEN
        except ValueError:
            raise SandboxError(400, "INVALID_STATUS", f"{status!r} is not an order status") from None
        if kind == "test" and target is Status.BLOCKED:
            raise SandboxError(400, "BAD_REQUEST", "test orders start in open, never blocked")
        if target is Status.LOST and kind != "mdp":
            raise SandboxError(400, "BAD_REQUEST", "only MALL Delivery (kind mdp) orders can be lost")
        with self._lock:
            created = []
            for _ in range(count):
                order, history = self._gen.build(kind, target, self._now(), settled=False)
                created.append(self._add(order, history))
                self._changed[created[-1]["id"]] = None
            return created

    def _add(self, order: dict, history: list[dict]) -> dict:
        order["purchase_id"] = self._next_purchase
        order["id"] = self._next_purchase * 100 + 2
        self._next_purchase += self._rng.randint(1, 9)
        self._orders[order["id"]] = order
        self._history[order["id"]] = history
        return self._render(order)

    # -- reading ---------------------------------------------------------------------------------

    def get(self, order_id: int) -> dict:
        """The order detail as GET /v1/orders/{id} returns it."""
        with self._lock:
            return self._render(self._get(order_id))

    def history(self, order_id: int) -> list[dict]:
        """Every change of the order: {who: mall|partner, action, from, to, when}."""
        with self._lock:
            self._get(order_id)
            return _copy(self._history[order_id])

    def orders(self) -> list[dict]:
        """All order details (test orders included), ids ascending."""
        with self._lock:
            return [self._render(o) for o in self._orders.values()]

    def rows(self) -> list[Mapping[str, Any]]:
        """Every order's top-level scalar fields plus ``customer_id``/``customer``, ids ascending.

        What the list endpoints filter and page over: read-only views cached until their order changes,
        so listing a large store does not copy every order on every page.
        """
        with self._lock:
            return [self._rows.get(oid) or self._row(oid) for oid in self._orders]

    def _row(self, order_id: int) -> Mapping[str, Any]:
        o = self._orders[order_id]
        row = {k: v for k, v in o.items() if not isinstance(v, (dict, list))}
        row.update(customer_id=o["address"]["customer_id"], customer=o["address"]["name"])
        self._rows[order_id] = view = MappingProxyType(row)
        return view

    def ids(self) -> list[int]:
        with self._lock:
            return list(self._orders)

    def __len__(self) -> int:
        with self._lock:
            return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        with self._lock:
            return order_id in self._orders

    def stats(self, days: int = 30, include_test: bool = False) -> dict[str, int]:
        """Orders per status among those created in the last ``days`` days."""
        with self._lock:
            since = (self._now() - timedelta(days=days)).replace(tzinfo=None)
            counts = {s.value: 0 for s in (Status.BLOCKED, Status.OPEN, Status.SHIPPING, Status.SHIPPED,
                                           Status.CANCELLED, Status.DELIVERED, Status.LOST, Status.RETURNED)}
            for oid, order in self._orders.items():
                if order["test"] and not include_test:
                    continue
                if datetime.strptime(self._history[oid][0]["when"], DATETIME_FMT) >= since:
                    counts[order["status"]] += 1
            return counts

    @staticmethod
    def basic(order: dict) -> dict:
        """The basic form (list with filter=basic) of an order detail or a ``rows()`` row."""
        if "address" in order:
            order = {**order, "customer_id": order["address"]["customer_id"], "customer": order["address"]["name"]}
        return {k: order[k] for k in BASIC_KEYS if order.get(k) is not None}

    # -- partner changes (the MALL API) ----------------------------------------------------------

    def partner_update(self, order_id: int, body: object) -> bool:
        """Apply a PUT /v1/orders/{id} body under MALL's rules; True when the order changed.

        Raises SandboxError (400, RuleViolation code) when ``check_update`` refuses it.
        """
        fields = _parse_update(body)
        with self._lock:
            order = self._get(order_id)
            current = Status(order["status"])
            target: Status | None = fields.get("status")
            confirm = fields.get("confirmed") is True
            violation = check_update(
                current, confirmed=order["confirmed"], mdp=order["mdp"], target=target, confirm=confirm,
                tracking_number=fields.get("tracking_number"), tracking_url=fields.get("tracking_url"),
                delivered_at=fields.get("delivered_at"),
            )
            if violation is not None:
                raise SandboxError(400, violation.code, violation.message)
            now = fmt_dt(self._now())
            changed = False
            if confirm and not order["confirmed"]:
                order["confirmed"] = True
                self._log(order_id, "partner", "confirm", current, current, now)
                changed = True
            if target is not None:
                order["status"] = target.value
                order[target.value] = now
                if target is Status.SHIPPED and "tracking_number" in fields:
                    order["tracking_number"] = fields["tracking_number"]
                    order["tracking_url"] = fields["tracking_url"]
                if target is Status.DELIVERED:
                    order["delivered_at"] = fields["delivered_at"]
                    order["first_delivery_attempt"] = fields.get("first_delivery_attempt", fields["delivered_at"])
                self._log(order_id, "partner", "update", current, target, now)
                changed = True
            return changed

    def partner_tracking(self, order_id: int, body: object) -> bool:
        """Apply PUT /v1/orders/{id}/tracking: only while shipped and not MALL Delivery; True when changed."""
        if not isinstance(body, dict) or set(body) - {"tracking_number", "tracking_url"}:
            raise SandboxError(400, "BAD_REQUEST", "the body must be {tracking_number, tracking_url}")
        number, url = body.get("tracking_number"), body.get("tracking_url")
        if not isinstance(number, str) or not isinstance(url, str) or not number or not url:
            raise SandboxError(400, "TRACKING_REQUIRED", "both tracking_number and tracking_url are needed")
        if not TRACKING_NUMBER_RE.match(number):
            raise SandboxError(400, "TRACKING_NUMBER_INVALID",
                               f"tracking_number {number!r} may contain only 0-9 a-z A-Z . _ -")
        with self._lock:
            order = self._get(order_id)
            if order["status"] != Status.SHIPPED:
                raise SandboxError(400, "TRACKING_NOT_ALLOWED",
                                   f"tracking can only be set on a shipped order; this one is {order['status']}")
            if order["mdp"]:
                raise SandboxError(400, "MDP_TRACKING_BY_MALL", "MALL Delivery order: MALL fills in the tracking")
            if (order.get("tracking_number"), order.get("tracking_url")) == (number, url):
                return False
            order["tracking_number"], order["tracking_url"] = number, url
            shipped = Status(order["status"])
            self._log(order_id, "partner", "tracking", shipped, shipped, fmt_dt(self._now()))
            return True

    # -- MALL Delivery labels and serial numbers (mall-api.md §2.6, §2.7) -------------------------

    def create_labels(self, body: object) -> dict:
        """Apply ``POST /v1/orders/labels``: a label set per order, all or nothing; the answer's ``data``.

        Labels exist only for MALL Delivery orders in shipping or shipped; once shipped, ``parcel_count`` is
        frozen (a new set with another count is refused 400). Each call makes new barcodes: asking twice makes
        two label sets, as on MALL."""
        from connector.sandbox import labelfile

        req = _parse_labels(body)
        with self._lock:
            for entry in req["labels"]:
                order = self._get(entry["order_id"])
                oid, status = order["id"], Status(order["status"])
                if not order["mdp"]:
                    raise SandboxError(400, "NOT_MDP_ORDER", f"order {oid} is not a MALL Delivery order: no labels")
                if status not in (Status.SHIPPING, Status.SHIPPED):
                    raise SandboxError(400, "LABELS_NOT_ALLOWED",
                                       f"labels exist only in shipping or shipped; order {oid} is {status}")
                last = (self._consignments.get(oid) or [None])[-1]
                if status is Status.SHIPPED and last is not None and last["parcel_count"] != entry["parcel_count"]:
                    raise SandboxError(400, "PARCEL_COUNT_FROZEN",
                                       f"order {oid} is shipped: parcel_count is frozen at {last['parcel_count']}")
            now = fmt_dt(self._now())
            every: list[labelfile.Label] = []
            orders = []
            for entry in req["labels"]:
                oid, count = entry["order_id"], entry["parcel_count"]
                seq = self._next_consignment
                self._next_consignment += 1
                barcodes = [f"DR{oid}{seq:03d}{n:03d}" for n in range(1, count + 1)]
                mine = [labelfile.Label(oid, n, count, code) for n, code in enumerate(barcodes, start=1)]
                every += mine
                raw = self._label_file(mine, req)
                self._consignments.setdefault(oid, []).append({
                    "id": str(seq), "order_id": oid, "labels_raw": raw, "labels_type": req["labels_type"],
                    "parcel_count": count, "type": "online", "barcodes": barcodes, "created": now,
                })
                order = self._orders[oid]
                status = Status(order["status"])
                self._log(oid, "partner", "labels", status, status, now)
                orders.append({"order_id": oid, "barcodes": barcodes})
            return {"orders": orders, "labels_raw": self._label_file(every, req)}

    @staticmethod
    def _label_file(labels: list, req: dict) -> str:
        import base64

        from connector.sandbox import labelfile

        if req["labels_type"] == "zpl":
            content = labelfile.zpl(labels)
        else:
            content = labelfile.pdf(labels, labels_per_page=req["labels_per_page"],
                                    first_position=req["first_position"])
        return base64.b64encode(content).decode("ascii")

    def consignments(self, order_id: int) -> list[dict]:
        """The order's label sets, oldest first ([] when none); 404 for an unknown order."""
        with self._lock:
            self._get(order_id)
            return _copy(self._consignments.get(order_id, []))

    def set_serial_numbers(self, order_id: int, item_id: str, body: object) -> bool:
        """Apply ``PUT /v1/orders/{id}/items/{itemId}/serial-numbers``; True when the list changed."""
        if not isinstance(body, list) or len(body) > 1000 or not all(
                isinstance(x, str) and 0 < len(x) <= 100 for x in body):
            raise SandboxError(400, "BAD_REQUEST",
                               "the body must be a JSON array of serial numbers (strings of 1-100 characters)")
        with self._lock:
            order = self._get(order_id)
            item = next((i for i in order["items"] if i["id"] == item_id), None)
            if item is None:
                raise SandboxError(404, "RESOURCE_NOT_FOUND", f"order {order_id} has no item {item_id!r}")
            if item.get("serial_numbers") == body:
                return False
            item["serial_numbers"] = list(body)
            status = Status(order["status"])
            self._log(order_id, "partner", "serial_numbers", status, status, fmt_dt(self._now()))
            return True

    # -- MALL-side changes (operator endpoints) --------------------------------------------------

    def mall_event(self, order_id: int, action: str, *, branch_id: int | None = None) -> dict:
        """Change an order as MALL would (``MALL_ACTIONS``), gated by ``statuses.mall_may``.

        As on real MALL the order becomes unconfirmed and its id is queued for the next webhook.
        Refusals are SandboxError 409 (400 for an unknown action or a bad branch_id).
        """
        if action not in MALL_ACTIONS:
            raise SandboxError(400, "BAD_REQUEST", f"action must be one of {', '.join(MALL_ACTIONS)}")
        with self._lock:
            order = self._get(order_id)
            current = Status(order["status"])
            now = fmt_dt(self._now())
            if action == "change_branch":
                self._change_branch(order, current, branch_id)
                self._log(order_id, "mall", action, current, current, now)
            else:
                target = MALL_ACTIONS[action]
                assert target is not None
                if action == "unpaid_cancel" and current is not Status.BLOCKED:
                    raise SandboxError(409, "CONFLICT", f"only a blocked order can be cancelled as unpaid; it is {current}")
                if action.startswith("mdp_") and not order["mdp"]:
                    raise SandboxError(409, "CONFLICT", f"{action}: order {order_id} is not a MALL Delivery order")
                if not mall_may(current, target, mdp=order["mdp"]):
                    raise SandboxError(409, "CONFLICT", f"MALL cannot move order {order_id} from {current} to {target}")
                order["status"] = target.value
                order[target.value] = now
                if action == "mdp_ship":
                    delivery = next(d for d in fd.DELIVERIES if d.code == order["delivery_method"])
                    order["tracking_number"], order["tracking_url"] = self._gen.tracking(delivery)
                if action == "mdp_deliver":
                    order["delivered_at"] = order["first_delivery_attempt"] = now
                self._log(order_id, "mall", action, current, target, now)
            order["confirmed"] = False
            self._changed[order_id] = None
            return self._render(order)

    def _change_branch(self, order: dict, current: Status, branch_id: object) -> None:
        """Move a pickup order to another branch; the original stays in branches.branch_id.

        Field meaning is inferred from MALL's example (mall-api.md §7): ``branch_id`` is the branch in
        effect, ``branches.secondary_branch_id`` the replacement, ``overridden`` true once replaced.
        """
        if not isinstance(branch_id, int) or isinstance(branch_id, bool) or branch_id <= 0:
            raise SandboxError(400, "BAD_REQUEST", "change_branch needs a positive integer branch_id")
        if "branch_id" not in order:
            raise SandboxError(409, "CONFLICT", "not a pickup-branch order")
        if current not in (Status.BLOCKED, Status.OPEN, Status.SHIPPING):
            raise SandboxError(409, "CONFLICT", f"the branch can only change before shipping; the order is {current}")
        if branch_id == order["branch_id"]:
            raise SandboxError(409, "CONFLICT", f"the order already goes to branch {branch_id}")
        order["branch_id"] = branch_id
        order["branches"] = {
            "branch_id": order["branches"].get("branch_id", branch_id),
            "secondary_branch_id": branch_id,
            "overridden": True,
            "last_change": fmt_dt(self._now()),
        }

    # -- webhook queue ---------------------------------------------------------------------------

    def drain_changed(self) -> list[int]:
        """Ids MALL changed since the last call (de-duplicated, in order of first change), and forget them."""
        with self._lock:
            ids, self._changed = list(self._changed), {}
            return ids

    def pending_changed(self) -> list[int]:
        with self._lock:
            return list(self._changed)

    # -- helpers ---------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self._clock().astimezone(PRAGUE)

    def _get(self, order_id: int) -> dict:
        try:
            return self._orders[order_id]
        except (KeyError, TypeError):
            raise OrderNotFound(order_id) from None

    def _log(self, order_id: int, who: str, action: str, frm: Status, to: Status, when: str) -> None:
        """Record a change in the history; every change passes here, so the cached row is dropped here too."""
        self._rows.pop(order_id, None)
        self._history[order_id].append({"who": who, "action": action, "from": frm.value, "to": to.value, "when": when})

    @staticmethod
    def _render(order: dict) -> dict:
        """A deep copy with keys in MALL's order and null fields left out."""
        out = {k: order[k] for k in DETAIL_KEYS if order.get(k) is not None}
        out.update({k: v for k, v in order.items() if k not in out and v is not None})
        return _copy(out)
