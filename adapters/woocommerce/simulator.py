"""A local WooCommerce REST API (wc/v3) for tests, the demo and ``mall-connector sandbox --shop woocommerce``.

What it models (docs/reference/shops.md, WooCommerce part): Basic auth with ``ck_``/``cs_`` keys (or the
same in the query string), read-only keys refusing writes; ``/wp-json/wc/v3/orders`` with ``status``,
``modified_after``/``after`` + ``dates_are_gmt``, ``orderby=modified``, ``per_page`` at most 100, bare JSON
arrays with ``X-WP-Total``/``X-WP-TotalPages``/``Link``; ``number`` different from ``id``; dates without
offset; status PUT writing a system note; ``400`` (not 404) on update of an unknown id; ``201`` +
``Location`` on create; the ``{"code","message","data":{"status"}}`` error envelope; shipment-tracking
meta and Packeta's ``shipping_lines[].packeta``; webhooks with an unsigned form ping on create, JSON
deliveries with the seven ``X-WC-Webhook-*`` headers and a base64 HMAC-SHA256 signature, no retries,
and auto-disable after more than 5 failures in a row; echo of the adapter's own writes.
"""

from __future__ import annotations

import base64
import itertools
import json
from datetime import datetime
from typing import Any

from adapters.shared.shopapi import hmac_b64_sha256
from adapters.shared.simhttp import Request, Response, ShopSimulator, page_of

PREFIX = "/wp-json/wc/v3"
CORE_STATUSES = ["pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed"]
MAX_FAILURES = 5  # woocommerce_max_webhook_delivery_failures: disabled when the count is already above it


def _wc_time(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, {"code": code, "message": message, "data": {"status": status}})


class WooSimulator(ShopSimulator):
    def __init__(self, *, key: str = "ck_test", secret: str = "cs_test", read_only_key: str | None = None,
                 statuses: list[str] | None = None, products: dict[str, int] | None = None, port: int = 0):
        super().__init__(port=port)
        self.keys = {key: (secret, "read_write")}
        if read_only_key:
            self.keys[read_only_key] = (secret, "read")
        self.statuses = list(CORE_STATUSES) + list(statuses or [])
        self.products = dict(products or {"SKU-1": 11, "SKU-2": 12, "5": 13})  # sku -> product id
        self.orders: dict[int, dict] = {}
        self.notes: dict[int, list[dict]] = {}
        self._ids = itertools.count(101)
        self._note_ids = itertools.count(1)

    def now(self) -> datetime:
        """The shop's clock in GMT without an offset, as WooCommerce writes its ``*_gmt`` dates."""
        return super().now().replace(tzinfo=None)

    # -- the shop admin's side (tests and the demo call these) ------------------------------------
    def admin_create_order(self, mall_order_id: str | None, status: str = "processing", **extra: Any) -> dict:
        meta = [{"id": 1, "key": "_mall_order_id", "value": mall_order_id}] if mall_order_id is not None else []
        with self.lock:
            return self._create({"status": status, "meta_data": meta, "created_via": "admin", **extra}, echo=False)

    def admin_update(self, order_id: int, *, status: str | None = None, tracking: str | None = None,
                     provider: str = "Zásilkovna", packeta_packet_id: str | None = None) -> dict:
        """What a shop employee does in wp-admin: a status change, a tracking number; fires order.updated."""
        with self.lock:
            o = self.orders[order_id]
            if status:
                self._set_status(o, status)
            if tracking:
                items = [{"tracking_provider": provider, "custom_tracking_provider": "", "custom_tracking_link": "",
                          "tracking_number": tracking, "date_shipped": int(self.now().timestamp()),
                          "tracking_id": f"t{order_id}"}]
                self._set_meta(o, "_wc_shipment_tracking_items", items)
            if packeta_packet_id:
                for line in o["shipping_lines"]:
                    line["packeta"] = {"carrier_id": "106", "point_id": "", "point_name": "", "carrier_number": "",
                                       "packet_id": packeta_packet_id}
            self._touch(o)
        return o

    def orders_for_mall_id(self, mall_order_id: str) -> list[dict]:
        with self.lock:
            return [o for o in self.orders.values()
                    if any(m["key"] == "_mall_order_id" and str(m["value"]) == str(mall_order_id) for m in o["meta_data"])]

    # -- internals -----------------------------------------------------------------------------
    def _set_meta(self, o: dict, key: str, value: Any) -> None:
        for m in o["meta_data"]:
            if m["key"] == key:
                m["value"] = value
                return
        o["meta_data"].append({"id": len(o["meta_data"]) + 1, "key": key, "value": value})

    def _set_status(self, o: dict, status: str) -> None:
        if o["status"] != status:
            self._note(o["id"], f"Order status changed from {o['status']} to {status}.", author="system")
            o["status"] = status

    def _note(self, oid: int, text: str, author: str = "system", customer_note: bool = False) -> dict:
        now = self.now()
        note = {"id": next(self._note_ids), "author": author, "date_created": _wc_time(now),
                "date_created_gmt": _wc_time(now), "note": text, "customer_note": customer_note}
        self.notes.setdefault(oid, []).append(note)
        return note

    def _touch(self, o: dict, echo: bool = True) -> None:
        now = self.now()
        o["date_modified"] = o["date_modified_gmt"] = _wc_time(now)
        if echo:
            self._fire("order.updated", o)

    def _create(self, body: dict, echo: bool = True) -> dict:
        oid = next(self._ids)
        now = self.now()
        o = {
            "id": oid, "number": f"{oid + 9000}", "status": body.get("status", "pending"),
            "currency": body.get("currency", "CZK"), "created_via": body.get("created_via", "rest-api"),
            "date_created": _wc_time(now), "date_created_gmt": _wc_time(now),
            "date_modified": _wc_time(now), "date_modified_gmt": _wc_time(now),
            "payment_method": body.get("payment_method", ""), "payment_method_title": body.get("payment_method_title", ""),
            "billing": body.get("billing", {}), "shipping": body.get("shipping", {}),
            "customer_note": body.get("customer_note", ""),
            "line_items": [], "shipping_lines": [], "fee_lines": [],
            "meta_data": [{"id": i + 1, "key": m["key"], "value": m["value"]} for i, m in enumerate(body.get("meta_data", []))],
        }
        for i, item in enumerate(body.get("line_items", [])):
            o["line_items"].append({"id": i + 1, "product_id": item.get("product_id"), "sku": item.get("sku", ""),
                                    "name": item.get("name", ""), "quantity": item.get("quantity", 1),
                                    "total": item.get("total", "0.00"), "subtotal": item.get("subtotal", "0.00"),
                                    "meta_data": item.get("meta_data", [])})
        for i, line in enumerate(body.get("shipping_lines", [])):
            o["shipping_lines"].append({"id": 100 + i, "method_id": line["method_id"],
                                        "method_title": line.get("method_title", ""), "total": line.get("total", "0.00"),
                                        "meta_data": line.get("meta_data", [])})
        for i, line in enumerate(body.get("fee_lines", [])):
            o["fee_lines"].append({"id": 200 + i, "name": line["name"], "total": line.get("total", "0.00")})
        total = sum(float(x["total"]) for x in o["line_items"] + o["shipping_lines"] + o["fee_lines"])
        o["total"] = f"{total:.2f}"
        self.orders[oid] = o
        if echo:
            self._fire("order.created", o)
        return o

    # -- webhooks ------------------------------------------------------------------------------
    def _fire(self, topic: str, o: dict) -> None:
        for hook in list(self.webhooks.values()):
            if hook["topic"] == topic and hook["status"] == "active":
                body = json.dumps(o, ensure_ascii=False, separators=(",", ":")).encode()
                resource, event = topic.split(".")
                headers = {
                    "Content-Type": "application/json", "User-Agent": "WooCommerce/9.9 Hookshot (WordPress/6.8)",
                    "X-WC-Webhook-Source": self.url + "/", "X-WC-Webhook-Topic": topic,
                    "X-WC-Webhook-Resource": resource, "X-WC-Webhook-Event": event,
                    "X-WC-Webhook-Signature": hmac_b64_sha256(hook["secret"], body),
                    "X-WC-Webhook-ID": str(hook["id"]), "X-WC-Webhook-Delivery-ID": f"d{hook['id']}-{o['id']}",
                }
                self.server.queue_delivery(hook["delivery_url"], body, headers, lambda s, h=hook: self._delivered(h, s))

    def _delivered(self, hook: dict, status: int) -> None:
        with self.lock:
            if 200 <= status <= 302:
                hook["failure_count"] = 0
                return
            if hook["failure_count"] > MAX_FAILURES:
                hook["status"] = "disabled"
            else:
                hook["failure_count"] += 1

    # -- the REST API --------------------------------------------------------------------------
    def _auth(self, req: Request) -> tuple[str | None, Response | None]:
        key = req.q("consumer_key")
        secret = req.q("consumer_secret")
        header = req.headers.get("authorization", "")
        if key is None and header.startswith("Basic "):
            try:
                key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                key = None
        if key is None:
            return None, _error(401, "woocommerce_rest_authentication_error", "Consumer key is missing.")
        if key not in self.keys:
            return None, _error(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
        if self.keys[key][0] != secret:
            return None, _error(401, "woocommerce_rest_authentication_error", "Consumer secret is invalid.")
        return self.keys[key][1], None

    def handle(self, req: Request) -> Response:
        if not req.path.startswith(PREFIX):
            return _error(404, "rest_no_route", "No route was found matching the URL and request method.")
        scope, err = self._auth(req)
        if err:
            return err
        if req.method != "GET" and scope != "read_write":
            return _error(401, "woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources.")
        parts = [p for p in req.path[len(PREFIX):].split("/") if p]
        try:
            body = req.json() if req.body else {}
        except ValueError:
            return _error(400, "rest_invalid_json", "Invalid JSON body passed.")
        with self.lock:
            return self._route(req, parts, body)

    def _route(self, req: Request, parts: list[str], body: Any) -> Response:
        m = req.method
        if parts == ["orders"] and m == "GET":
            return self._list(req)
        if parts == ["orders"] and m == "POST":
            return self._create_api(body)
        if len(parts) == 2 and parts[0] == "orders":
            if not parts[1].isdigit():
                return _error(404, "rest_no_route", "No route was found matching the URL and request method.")
            oid = int(parts[1])
            if m == "GET":
                if oid not in self.orders:
                    return _error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
                return Response(200, self.orders[oid])
            if m in ("PUT", "POST", "PATCH"):
                if oid not in self.orders:
                    return _error(400, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
                o = self.orders[oid]
                if "status" in body:
                    if body["status"] not in self.statuses:
                        return _error(400, "rest_invalid_param", "Invalid parameter(s): status")
                    self._set_status(o, body["status"])
                for meta in body.get("meta_data", []):
                    self._set_meta(o, meta["key"], meta["value"])
                self._touch(o)
                return Response(200, o)
        if len(parts) == 3 and parts[0] == "orders" and parts[2] == "notes" and parts[1].isdigit():
            oid = int(parts[1])
            if oid not in self.orders:
                return _error(404, "woocommerce_rest_order_invalid_id", "Invalid order ID.")
            if m == "POST":
                if not isinstance(body, dict) or not body.get("note"):
                    return _error(400, "rest_missing_callback_param", "Missing parameter(s): note")
                note = self._note(oid, body["note"], author="system", customer_note=bool(body.get("customer_note")))
                return Response(201, note)
            return Response(200, list(reversed(self.notes.get(oid, []))))
        if parts == ["products"] and m == "GET":
            sku = req.q("sku")
            found = [{"id": pid, "sku": s, "name": f"Product {s}"} for s, pid in self.products.items() if sku in (None, s)]
            return Response(200, found, {"X-WP-Total": str(len(found)), "X-WP-TotalPages": "1"})
        if parts == ["webhooks"] and m == "GET":
            hooks = [self._hook_view(h) for h in self.webhooks.values()]
            return Response(200, hooks, {"X-WP-Total": str(len(hooks)), "X-WP-TotalPages": "1"})
        if parts == ["webhooks"] and m == "POST":
            return self._create_hook(body)
        if len(parts) == 2 and parts[0] == "webhooks" and parts[1].isdigit() and m in ("PUT", "POST", "PATCH"):
            hook = self.webhooks.get(int(parts[1]))
            if hook is None:
                return _error(404, "woocommerce_rest_webhook_invalid_id", "Invalid ID.")
            for k in ("status", "delivery_url", "secret", "topic", "name"):
                if k in body:
                    hook[k] = body[k]
            if body.get("status") == "active":
                hook["failure_count"] = 0
            return Response(200, self._hook_view(hook))
        return _error(404, "rest_no_route", "No route was found matching the URL and request method.")

    def _list(self, req: Request) -> Response:
        try:
            per_page = int(req.q("per_page", "10"))
            page = int(req.q("page", "1"))
        except ValueError:
            return _error(400, "rest_invalid_param", "Invalid parameter(s): per_page, page")
        if not 1 <= per_page <= 100:
            return _error(400, "rest_invalid_param", "Invalid parameter(s): per_page")
        gmt = req.q("dates_are_gmt") in ("true", "1")
        rows = list(self.orders.values())
        statuses = req.query.get("status") or req.query.get("status[]")
        if statuses and statuses != ["any"]:
            wanted = ",".join(statuses).split(",")
            rows = [o for o in rows if o["status"] in wanted]
        for param, field, cmp in (("modified_after", "date_modified", 1), ("after", "date_created", 1),
                                  ("modified_before", "date_modified", -1)):
            value = req.q(param)
            if value:
                col = field + ("_gmt" if gmt else "")
                value = value[:19]
                rows = [o for o in rows if (o[col] > value if cmp > 0 else o[col] < value)]
        search = req.q("search")
        if search:
            rows = [o for o in rows if search in json.dumps(o, ensure_ascii=False)]
        key = "date_modified_gmt" if req.q("orderby") == "modified" else "date_created_gmt"
        rows.sort(key=lambda o: (o[key], o["id"]), reverse=req.q("order", "desc") == "desc")
        chunk, total, pages = page_of(rows, page, per_page)
        links = []
        if page > 1:
            links.append(f'<{self.url}{PREFIX}/orders?page={page - 1}>; rel="prev"')
        if page < pages:
            links.append(f'<{self.url}{PREFIX}/orders?page={page + 1}>; rel="next"')
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        if links:
            headers["Link"] = ", ".join(links)
        return Response(200, chunk, headers)

    def _create_api(self, body: Any) -> Response:
        if not isinstance(body, dict):
            return _error(400, "rest_invalid_json", "Invalid JSON body passed.")
        for item in body.get("line_items", []):
            if not (item.get("product_id") or item.get("sku") or item.get("variation_id")):
                return _error(400, "woocommerce_rest_required_product_reference",
                              "Product ID or SKU is required.")
            if item.get("sku") and item["sku"] not in self.products:
                return _error(400, "woocommerce_rest_invalid_product_id", "Product ID or SKU is invalid.")
        for line in body.get("shipping_lines", []):
            if not line.get("method_id"):
                return _error(400, "woocommerce_rest_invalid_shipping_item", "Shipping method ID is required.")
        if body.get("status", "pending") not in self.statuses:
            return _error(400, "rest_invalid_param", "Invalid parameter(s): status")
        o = self._create(body)
        return Response(201, o, {"Location": f"{self.url}{PREFIX}/orders/{o['id']}"})

    def _create_hook(self, body: Any) -> Response:
        if not isinstance(body, dict) or not body.get("delivery_url") or not body.get("topic"):
            return _error(400, "rest_missing_callback_param", "Missing parameter(s): topic, delivery_url")
        hid = next(self._hook_ids)
        hook = {"id": hid, "name": body.get("name", ""), "topic": body["topic"], "delivery_url": body["delivery_url"],
                "secret": body.get("secret") or "random-secret-the-partner-never-sees",
                "status": body.get("status", "active"), "failure_count": 0}
        self.webhooks[hid] = hook
        # The ping: form-encoded, unsigned, no X-WC-Webhook-* headers; its result is ignored on REST create.
        self.server.queue_delivery(hook["delivery_url"], f"webhook_id={hid}".encode(),
                                   {"Content-Type": "application/x-www-form-urlencoded"}, lambda s: None)
        return Response(201, self._hook_view(hook))

    @staticmethod
    def _hook_view(h: dict) -> dict:
        return {k: v for k, v in h.items() if k not in ("secret", "failure_count")}
