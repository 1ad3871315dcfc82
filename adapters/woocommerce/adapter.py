"""The WooCommerce adapter: MALL orders created through the REST API, statuses and tracking read back with
``modified_after`` (WooCommerce never retries a webhook, so the poll is the safety net)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx

from adapters.base import NewOrder, ShopOrderState
from adapters.shared.api_shop import ApiShopAdapter, secret
from adapters.shared.shopapi import ShopApiError, hmac_b64_sha256, money, split_name

API = "/wp-json/wc/v3"
WEBHOOK_TOPIC = "order.updated"
#: How far before a create attempt the lookup reads: WooCommerce has no unique key to refuse a second
#: create, so the lookup must not miss the order when the shop's clock is off (the search by the MALL id
#: keeps the answer small however wide the window).
CLOCK_SLACK_S = 86400


def _gmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


class WooCommerceAdapter(ApiShopAdapter):
    name = "woocommerce"
    signature_header = "X-WC-Webhook-Signature"
    sign = staticmethod(hmac_b64_sha256)
    webhook_key_fields = ("webhook_secret", "webhook_secret_previous")
    lookup_days = 90

    def credentials(self) -> dict:
        return {"auth": httpx.BasicAuth(secret(self.cfg.consumer_key), secret(self.cfg.consumer_secret))}

    @property
    def source(self) -> str:
        return f"woocommerce {self.cfg.base_url.rstrip('/')}{API}/orders"

    # -- shop -> MALL --------------------------------------------------------------------------
    def first_cursor(self, since: float) -> str:
        return _gmt(since)

    def changed_orders(self, cursor: str, refs: list[str]) -> tuple[list[dict], str]:
        """Orders modified since the cursor (5 s of overlap, oldest first), then those a verified webhook
        named that the list did not bring. The cursor moves in ``later_cursor``."""
        since = (datetime.fromisoformat(cursor) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")
        orders: list[dict] = []
        for page in range(1, self.cfg.max_pages + 1):
            body, headers = self.api.request("GET", f"{API}/orders", params={
                "modified_after": since, "dates_are_gmt": "true", "orderby": "modified", "order": "asc",
                "per_page": 100, "page": page})
            if not isinstance(body, list):
                raise ShopApiError(self.api.endpoint("GET", f"{API}/orders"), "answer is not a list of orders")
            orders += body
            if page >= int(headers.get("x-wp-totalpages") or 1):
                break
        seen = {str(o.get("id")) for o in orders if isinstance(o, dict)}
        for ref in dict.fromkeys(refs):
            if ref.isdigit() and ref not in seen:
                body, _ = self.api.request("GET", f"{API}/orders/{ref}", ok=(200, 404))
                if isinstance(body, dict) and "id" in body:
                    orders.append(body)
        return orders, cursor

    def later_cursor(self, cursor: str, order: dict) -> str:
        modified = order.get("date_modified_gmt")
        return modified if isinstance(modified, str) and modified > cursor else cursor

    def _row(self, o: dict, pos: int) -> ShopOrderState | None:
        if not isinstance(o, dict) or not isinstance(o.get("id"), int) or not isinstance(o.get("status"), str):
            raise ValueError("order without an integer id and a status")
        meta = o.get("meta_data") if isinstance(o.get("meta_data"), list) else []
        mall = next((m.get("value") for m in meta if isinstance(m, dict) and m.get("key") == self.cfg.mall_id_meta), None)
        if mall is None:
            return None  # the shop's own order, not one from MALL
        if not str(mall).isdigit():
            raise ValueError(f"order {o['id']}: {self.cfg.mall_id_meta} {str(mall)[:40]!r} is not a MALL order id")
        number, carrier, url = self._tracking(o, meta)
        delivered_at = None
        if o["status"] in self.cfg.delivered_statuses:
            try:
                delivered_at = datetime.strptime(str(o.get("date_modified_gmt")), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
            except ValueError:
                raise ValueError(f"order {o['id']}: date_modified_gmt {str(o.get('date_modified_gmt'))[:40]!r} "
                                 "is not a time") from None
        return ShopOrderState(mall_order_id=int(mall), status=o["status"], shop_order_id=str(o.get("number") or o["id"]),
                              tracking_number=number, tracking_url=url, carrier=carrier, line=pos,
                              delivered_at=delivered_at)

    def _tracking(self, o: dict, meta: list) -> tuple[str | None, str | None, str | None]:
        """Shipment-tracking plugin meta first (the last item), then Packeta's plugin data."""
        for key in self.cfg.tracking_meta_keys:
            items = next((m.get("value") for m in meta if isinstance(m, dict) and m.get("key") == key), None)
            if isinstance(items, list) and items and isinstance(items[-1], dict) and items[-1].get("tracking_number"):
                it = items[-1]
                return (str(it["tracking_number"]), str(it.get("custom_tracking_provider") or it.get("tracking_provider") or "") or None,
                        str(it.get("custom_tracking_link") or "") or None)
        for line in o.get("shipping_lines") or []:
            pk = line.get("packeta") if isinstance(line, dict) else None
            if isinstance(pk, dict) and pk.get("packet_id"):
                return f"Z{pk['packet_id']}", "packeta", f"https://tracking.packeta.com/Z{pk['packet_id']}"
        pid = next((m.get("value") for m in meta if isinstance(m, dict) and m.get("key") == self.cfg.packeta_meta_key), None)
        if pid:
            return f"Z{pid}", "packeta", f"https://tracking.packeta.com/Z{pid}"
        return None, None, None

    # -- MALL -> shop --------------------------------------------------------------------------
    def manual_text(self, mall_order_id: int, shop: dict, what: str) -> str:
        return (f"Order {mall_order_id} (WooCommerce order {shop.get('number', '?')}): no product with SKU "
                f"for {what}; the line was added as a fee with MALL's price. Add the product to the order by hand.")

    def _product(self, sku: str) -> int | None:
        if sku not in self._products:
            body, _ = self.api.request("GET", f"{API}/products", params={"sku": sku})
            found = [p for p in body or [] if isinstance(p, dict) and p.get("sku") == sku]
            self._products[sku] = found[0]["id"] if found else None
        return self._products[sku]

    def find_order(self, mall_order_id: int, since: float) -> dict | None:
        """The shop's order carrying this MALL id in its meta, created since ``since`` (less the clock
        slack): search by the id, then compare the meta."""
        for page in range(1, self.cfg.max_pages + 1):
            body, headers = self.api.request("GET", f"{API}/orders", params={
                "after": _gmt(since - CLOCK_SLACK_S), "dates_are_gmt": "true", "search": str(mall_order_id),
                "per_page": 100, "page": page, "orderby": "date", "order": "asc"})
            for o in body or []:
                for m in o.get("meta_data") or []:
                    if m.get("key") == self.cfg.mall_id_meta and str(m.get("value")) == str(mall_order_id):
                        return {"code": str(o["id"]), "number": str(o.get("number"))}
            if page >= int(headers.get("x-wp-totalpages") or 1):
                return None
        return None

    def not_found(self, mall_order_id: int) -> str:
        return f"no WooCommerce order carries {self.cfg.mall_id_meta} = {mall_order_id}"

    def order_body(self, r: NewOrder) -> tuple[dict, list[dict]]:
        first, last = split_name(r.customer_name)
        address = {"first_name": first, "last_name": last, "company": r.company, "address_1": r.street,
                   "city": r.city, "postcode": r.zip, "country": r.country}
        lines, fees, missing = [], [], []
        for it in r.items:
            key = self.product_key(it)
            pid = self._product(key) if key else None
            meta = [{"key": "_mall_vat", "value": f"{it.vat:g}"}, {"key": "_mall_unit_price", "value": money(it.price)}]
            if pid:
                lines.append({"product_id": pid, "quantity": it.quantity, "total": money(it.price * it.quantity),
                              "subtotal": money(it.price * it.quantity), "meta_data": meta})
            else:
                missing.append({"key": key, "title": it.title})
                fees.append({"name": f"{it.title} ×{it.quantity} (MALL {self.cfg.product_key} {key})",
                             "total": money(it.price * it.quantity)})
        method = self.cfg.delivery_methods.get(r.delivery_method, self.cfg.default_shipping_method)
        body = {
            "status": r.shop_status or "processing", "currency": r.currency, "created_via": "mall",
            "payment_method": self.cfg.payment_methods.get(r.payment_type, r.payment_type),
            "payment_method_title": r.payment_type,
            "billing": {**address, "email": r.email, "phone": r.phone}, "shipping": address,
            "line_items": lines, "fee_lines": fees,
            "shipping_lines": [{"method_id": method, "method_title": r.delivery_method, "total": money(r.delivery_price),
                                "meta_data": [{"key": "_mall_branch_id", "value": str(r.branch_id)}] if r.branch_id else []}],
            "meta_data": [{"key": self.cfg.mall_id_meta, "value": str(r.mall_order_id)},
                          {"key": "_mall_purchase_id", "value": str(r.purchase_id or "")},
                          {"key": "_mall_cod", "value": money(r.cod)}],
        }
        return body, missing

    def post_order(self, r: NewOrder, body: dict) -> dict:
        created, _ = self.api.request("POST", f"{API}/orders", json_body=body, ok=(201,))
        if not isinstance(created, dict) or not isinstance(created.get("id"), int):
            raise ShopApiError(self.api.endpoint("POST", f"{API}/orders"), "answer has no integer order id")
        return {"code": str(created["id"]), "number": str(created.get("number"))}

    def set_status(self, code: str, shop_status: str) -> None:
        self.api.request("PUT", f"{API}/orders/{code}", json_body={"status": shop_status})

    def add_note(self, code: str, text: str) -> None:
        self.api.request("POST", f"{API}/orders/{code}/notes", json_body={"note": text, "customer_note": False}, ok=(201,))

    # -- webhooks ------------------------------------------------------------------------------
    @staticmethod
    def is_ping(headers, body: bytes) -> bool:
        return "X-WC-Webhook-Signature" not in headers and body.startswith(b"webhook_id=") and len(body) < 64

    @staticmethod
    def parse_webhook(headers, body: bytes) -> list[str]:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("id"), int):
            raise ValueError("body is not an order with an integer id")
        return [str(data["id"])]

    def check_webhooks(self, public_url: str, *, fix: bool = False) -> list[str]:
        """Problems with the connector's order.updated webhook (pointing at public_url, active); with fix,
        registers it or re-enables it. Returns what is (still) wrong, plus what was fixed as "fixed: …"."""
        url = self.webhook_url(public_url)
        body, _ = self.api.request("GET", f"{API}/webhooks", params={"per_page": 100})
        mine = [h for h in body or [] if h.get("topic") == WEBHOOK_TOPIC and h.get("delivery_url") == url]
        out = []
        if not mine:
            if not fix:
                return [f"no {WEBHOOK_TOPIC} webhook points at the receiver ({public_url}/webhooks/shop/woocommerce/…)"]
            self.api.request("POST", f"{API}/webhooks", json_body={
                "name": "mall-connector", "topic": WEBHOOK_TOPIC, "delivery_url": url,
                "secret": secret(self.cfg.webhook_secret), "status": "active"}, ok=(201,))
            return [f"fixed: registered the {WEBHOOK_TOPIC} webhook"]
        for h in mine:
            if h.get("status") != "active":
                if fix:
                    self.api.request("PUT", f"{API}/webhooks/{h['id']}", json_body={"status": "active"})
                    out.append(f"fixed: re-enabled webhook {h['id']} (was {h.get('status')})")
                else:
                    out.append(f"webhook {h['id']} ({WEBHOOK_TOPIC}) is {h.get('status')}, not active")
        return out
