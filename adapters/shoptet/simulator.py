"""A local Shoptet API (api.myshoptet.com) for tests, the demo and ``mall-connector sandbox --shop shoptet``.

Modelled (docs/reference/shops.md, Shoptet part): the ``Shoptet-Private-API-Token`` header; the
``{data, errors, metadata}`` envelope with ``X-Request-ID``; ``X-RateLimit-Bucket-Filling``; more than 3
requests at once per token answered ``429`` with an HTTP-date ``Retry-After``; string order codes; the body
paginator (50 a page on ``/api/orders``, 1000 on ``/changes``); ``creationTimeFrom``; a per-shop status list
with negative system ids; ``POST /api/orders`` requiring ``externalCode`` and ``currency.code`` and refusing a
duplicate ``externalCode`` with ``409`` **[assumed]**; ``PATCH …/status`` a no-op on the same status;
``POST …/history``; webhooks (one URL per event, ``422`` on a second) signed with a hex HMAC-SHA1 in
``Shoptet-Webhook-Signature``; the adapter's own writes echoed as ``order:update``.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

from adapters.shared.shopapi import hmac_hex_sha1
from adapters.shared.simhttp import Request, Response, ShopSimulator, page_of

TZ = timezone(timedelta(hours=1))  # the shop's local time, sent with its offset
STATUSES = [(-1, "Nevyřízená"), (-2, "Vyřizuje se"), (-3, "Vyřízena"), (-4, "Stornována"), (26, "Balí se"),
            (52, "Zabaleno")]  # ids and names: third-party sources only (shops-api.md §A.2.3), marked so
MAX_PARALLEL = 3


def sh_time(dt: datetime) -> str:
    return dt.astimezone(TZ).strftime("%Y-%m-%dT%H:%M:%S%z")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace(" ", "+"))


def envelope(data: Any = None, errors: list | None = None, status: int = 200, headers: dict | None = None) -> Response:
    rid = uuid.uuid4().hex
    return Response(status, {"data": data, "errors": errors, "metadata": {"requestId": rid}},
                    {"X-Request-ID": rid, **(headers or {})})


def err(status: int, code: str, message: str, instance: str = "") -> Response:
    return envelope(None, [{"errorCode": code, "message": message, "instance": instance}], status)


class ShoptetSimulator(ShopSimulator):
    def __init__(self, *, token: str = "shoptet-token", statuses: list[tuple[int, str]] | None = None,
                 products: set[str] | None = None, eshop_id: int = 222651, port: int = 0):
        super().__init__(port=port)
        self.token = token
        self.statuses = list(statuses or STATUSES)
        self.products = set(products if products is not None else {"SKU-1", "SKU-2", "5"})
        self.eshop_id = eshop_id
        self.orders: dict[str, dict] = {}
        self.history: dict[str, list[dict]] = {}
        self.signature_key = "61d1175f54c47dd67df14c17002a17b2"
        self._codes = itertools.count(2026000001)
        self.hold = threading.Event()  # a test sets it cleared to hold requests open (parallel limit)
        self.hold.set()
        self._active = 0
        self._active_lock = threading.Lock()

    def status_name(self, sid: int) -> str:
        return dict(self.statuses).get(sid, "")

    # -- the shop admin's side -----------------------------------------------------------------
    def admin_create_order(self, external_code: str | None, status_name: str = "Nevyřízená") -> dict:
        with self.lock:
            sid = next((i for i, n in self.statuses if n == status_name), None)
            if sid is None:
                sid = min(0, *(i for i, _ in self.statuses)) - 1
                self.statuses.append((sid, status_name))
            return self._create({"externalCode": external_code, "currency": {"code": "CZK"}, "statusId": sid}, echo=False)

    def admin_update(self, code: str, *, status_name: str | None = None, tracking: str | None = None) -> dict:
        with self.lock:
            o = self.orders[code]
            if status_name:
                sid = next(i for i, n in self.statuses if n == status_name)
                o["status"] = {"id": sid, "name": status_name}
            if tracking:  # the shop's carrier fills in the tracking URL
                o["notes"]["trackingNumber"] = tracking
                o["notes"]["trackingUrl"] = f"https://www.ppl.cz/vyhledat-zasilku?shipmentId={tracking}"
            self._touch(o)
            return o

    def orders_for_external(self, external_code: str) -> list[dict]:
        with self.lock:
            return [o for o in self.orders.values() if o["externalCode"] == external_code]

    # -- internals -----------------------------------------------------------------------------
    def _touch(self, o: dict, echo: bool = True) -> None:
        o["changeTime"] = sh_time(self.now())
        if echo:
            self._fire("order:update", o["code"])

    def _create(self, body: dict, echo: bool = True) -> dict:
        code = str(next(self._codes))
        now = sh_time(self.now())
        sid = body.get("statusId", -1)
        o = {
            "code": code, "guid": str(uuid.uuid4()), "externalCode": body.get("externalCode"),
            "creationTime": now, "changeTime": now, "email": body.get("email"), "phone": body.get("phone"),
            "status": {"id": sid, "name": self.status_name(sid)}, "currency": body.get("currency"),
            "billingAddress": body.get("billingAddress"), "deliveryAddress": body.get("deliveryAddress"),
            "shippingDetails": body.get("shippingDetails"), "paid": body.get("paid"),
            "items": body.get("items", []),
            "notes": {"trackingNumber": None, "trackingUrl": None, "eshopRemark": (body.get("notes") or {}).get("eshopRemark"),
                      "customerRemark": None, "additionalFields": []},
            "adminUrl": f"{self.url}/admin/objednavky-detail/?id={code}",
        }
        self.orders[code] = o
        if echo:
            self._fire("order:create", code)
        return o

    def _fire(self, event: str, code: str) -> None:
        for hook in list(self.webhooks.values()):
            if hook["event"] == event:
                body = json.dumps({"eshopId": self.eshop_id, "event": event, "eventCreated": sh_time(self.now()),
                                   "eventInstance": code}, separators=(",", ":")).encode()
                headers = {"Content-Type": "application/json",
                           "Shoptet-Webhook-Signature": hmac_hex_sha1(self.signature_key, body)}
                self.server.queue_delivery(hook["url"], body, headers, lambda s: None)

    def _list_item(self, o: dict) -> dict:
        return {k: o[k] for k in ("code", "guid", "creationTime", "changeTime", "email", "phone", "status", "adminUrl")}

    @staticmethod
    def _page(rows: list, req: Request, cap: int, default: int) -> tuple[list, dict]:
        page = int(req.q("page", "1") or 1)
        per = min(int(req.q("itemsPerPage", str(default)) or default), cap)  # over the cap silently gives the cap
        chunk, total, pages = page_of(rows, page, per)
        return chunk, {"totalCount": total, "page": page, "pageCount": pages, "itemsOnPage": len(chunk),
                       "itemsPerPage": per}

    # -- the API -------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        token = req.headers.get("shoptet-private-api-token")
        if token is None:
            return err(401, "missing-access-token", "Access token is missing.")
        if token != self.token:
            return err(401, "invalid-token", "Invalid access token.")
        with self._active_lock:
            if self._active >= MAX_PARALLEL:
                retry = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=1), usegmt=True)
                refused = err(429, "too-many-requests", "Too many parallel requests for this token.")
                refused.headers["Retry-After"] = retry  # an HTTP-date, as Shoptet sends it
                return refused
            self._active += 1
        try:
            self.hold.wait(10)
            with self.lock:
                r = self._route(req)
            r.headers.setdefault("X-RateLimit-Bucket-Filling", "1/200")
            return r
        finally:
            with self._active_lock:
                self._active -= 1

    def _route(self, req: Request) -> Response:
        parts = [p for p in req.path.split("/") if p]
        m = req.method
        if parts[:1] != ["api"]:
            return err(404, "not-found", "Endpoint not found.")
        parts = parts[1:]
        try:
            body = req.json() if req.body else {}
        except ValueError:
            return err(422, "invalid-request-data", "Request body is not valid JSON.")
        if parts == ["orders", "statuses"] and m == "GET":
            return envelope({"defaultStatus": -1, "statuses": [
                {"id": i, "name": n, "system": i < 0, "order": k, "markAsPaid": False} for k, (i, n) in enumerate(self.statuses)]})
        if parts == ["orders", "changes"] and m == "GET":
            if not req.q("from"):
                return err(400, "invalid-request-data", "Parameter from is required.", "from")
            since = parse_time(req.q("from"))
            rows = sorted((o for o in self.orders.values() if parse_time(o["changeTime"]) >= since),
                          key=lambda o: o["changeTime"])
            chunk, pag = self._page([{"code": o["code"], "changeTime": o["changeTime"], "changeType": "edit"} for o in rows],
                                    req, 1000, 20)
            return envelope({"changes": chunk, "paginator": pag})
        if parts == ["orders"] and m == "GET":
            rows = sorted(self.orders.values(), key=lambda o: o["creationTime"])
            if req.q("creationTimeFrom"):
                since = parse_time(req.q("creationTimeFrom"))
                rows = [o for o in rows if parse_time(o["creationTime"]) >= since]
            chunk, pag = self._page([self._list_item(o) for o in rows], req, 50, 50)
            return envelope({"orders": chunk, "paginator": pag})
        if parts == ["orders"] and m == "POST":
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, dict) or not data.get("externalCode") or not (data.get("currency") or {}).get("code"):
                return err(422, "invalid-request-data", "externalCode and currency.code are required.", "data")
            if self.orders_for_external(data["externalCode"]):
                return err(409, "duplicate-data", "Order with this externalCode already exists.", "externalCode")
            for i, item in enumerate(data.get("items", [])):
                if item.get("itemType") == "product" and item.get("code") and item["code"] not in self.products:
                    return err(422, "product-not-found", f"Product {item['code']} not found.", f"items[{i}].code")
            if data.get("statusId") is not None and data["statusId"] not in dict(self.statuses):
                return err(422, "invalid-request-data", "Unknown statusId.", "statusId")
            return envelope({"order": self._create(data)}, status=201)
        if len(parts) == 3 and parts[:2] == ["products", "code"] and m == "GET":
            if parts[2] not in self.products:
                return err(404, "product-not-found", "Product not found.")
            return envelope({"product": {"code": parts[2]}})
        if len(parts) >= 2 and parts[0] == "orders":
            o = self.orders.get(parts[1])
            if o is None:
                return err(404, "order-not-found", "Order not found.")
            if len(parts) == 2 and m == "GET":
                return envelope({"order": o})
            if parts[2:] == ["status"] and m == "PATCH":
                sid = ((body or {}).get("data") or {}).get("statusId")
                if sid not in dict(self.statuses):
                    return err(422, "invalid-request-data", "Unknown statusId.", "statusId")
                if o["status"]["id"] != sid:
                    o["status"] = {"id": sid, "name": self.status_name(sid)}
                    self._touch(o)
                return envelope({"order": o})
            if parts[2:] == ["history"] and m == "POST":
                text = ((body or {}).get("data") or {}).get("text")
                if not text:
                    return err(422, "invalid-request-data", "text is required.", "text")
                self.history.setdefault(o["code"], []).append({"text": text, "type": body["data"].get("type", "comment")})
                return envelope(None, status=201)
        if parts == ["webhooks"] and m == "GET":
            return envelope({"webhooks": list(self.webhooks.values())})
        if parts == ["webhooks"] and m == "POST":
            out = []
            for w in (body or {}).get("data", []):
                if any(h["event"] == w.get("event") for h in self.webhooks.values()):
                    return err(422, "invalid-request-data", "Webhook already exists for this event", "event")
                hid = next(self._hook_ids)
                hook = {"id": hid, "event": w["event"], "url": w["url"], "sendPayload": w.get("sendPayload"),
                        "created": sh_time(self.now()), "updated": None}
                self.webhooks[hid] = hook
                out.append(hook)
            return envelope({"webhooks": out}, status=201)
        if parts == ["webhooks", "renew-signature-key"] and m == "POST":
            self.signature_key = uuid.uuid4().hex
            return envelope({"signatureKey": self.signature_key}, status=201)
        return err(404, "not-found", "Endpoint not found.")
