"""The WooCommerce adapter: MALL orders created through the REST API, statuses and tracking read back with
``modified_after`` (WooCommerce never retries a webhook, so the poll is the safety net)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import httpx

from adapters.base import FeedProblem, FeedRead, FeedUnavailable, MallChange, NewOrder, ShopOrderState
from adapters.shared.shopapi import JsonApi, ShopApiError, StateDir, hmac_b64_sha256, money, signature_ok, split_name
from adapters.woocommerce.config import WooCommerceConfig

API = "/wp-json/wc/v3"
WEBHOOK_TOPIC = "order.updated"


def _secret(v) -> str:
    return v.get_secret_value() if v is not None else ""


def _gmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


class WooCommerceAdapter:
    name = "woocommerce"

    def __init__(self, section: WooCommerceConfig, state_root: Path):
        self.cfg = section
        self.state = StateDir(state_root)
        self._api: JsonApi | None = None
        self._products: dict[str, int | None] = {}

    @property
    def api(self) -> JsonApi:
        if self._api is None:
            auth = httpx.BasicAuth(_secret(self.cfg.consumer_key), _secret(self.cfg.consumer_secret))
            self._api = JsonApi(self.cfg.base_url, auth=auth, timeout_s=self.cfg.timeout_s, retries=self.cfg.retries,
                                max_wait_s=self.cfg.max_retry_wait_s, label="woocommerce")
        return self._api

    @property
    def source(self) -> str:
        return f"woocommerce {self.cfg.base_url.rstrip('/')}{API}/orders"

    # -- shop -> MALL --------------------------------------------------------------------------
    def read_feed(self, *, previous_fingerprint: str | None = None, wait_for_settle: bool = False) -> FeedRead:
        prev = json.loads(previous_fingerprint) if previous_fingerprint else {}
        self.state.drop_webhooks(prev.get("spool", []))  # the core stored that read: those deliveries are in
        cursor = prev.get("cursor") or _gmt(time.time() - self.cfg.initial_lookback_h * 3600)
        since = (datetime.fromisoformat(cursor) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")
        refs, files = self.state.webhook_refs()
        orders: list[dict] = []
        try:
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
            for ref in dict.fromkeys(refs):  # orders a verified webhook named that the list did not bring
                if ref.isdigit() and ref not in seen:
                    body, _ = self.api.request("GET", f"{API}/orders/{ref}", ok=(200, 404))
                    if isinstance(body, dict) and "id" in body:
                        orders.append(body)
        except ShopApiError as e:
            raise FeedUnavailable(f"{self.source}: {e}") from None
        feed = FeedRead()
        newest = cursor
        for pos, o in enumerate(orders, 1):
            try:
                row = self._row(o, pos)
            except ValueError as e:
                feed.problems.append(FeedProblem(self.source, pos, str(e)))
                continue
            modified = o.get("date_modified_gmt")
            if isinstance(modified, str) and modified > newest:
                newest = modified
            if row is not None:
                feed.rows.append(row)
        fp = json.dumps({"cursor": newest, "spool": files}, sort_keys=True)
        feed.fingerprint = fp
        feed.unchanged = previous_fingerprint is not None and newest == prev.get("cursor") and not files
        return feed

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
    def stage_handoff(self, name: str, kind: str, records: Sequence[NewOrder] | Sequence[MallChange]) -> None:
        self.state.stage(name, kind, records)

    def publish_handoff(self, name: str) -> bool:
        records = self.state.staged(name)
        if records is None:
            return False
        for r in records:
            if isinstance(r, NewOrder):
                self.create_order(r)
            else:
                self.apply_change(r)
        self.state.done(name)
        return True

    def manual_steps(self, record: NewOrder | MallChange) -> str | None:
        missing = self.state.missing(record.mall_order_id) if isinstance(record, NewOrder) else []
        if not missing:
            return None
        shop = self.state.shop_order(record.mall_order_id) or {}
        what = ", ".join(f"{m['title']} ({self.cfg.product_key} {m['key']})" for m in missing)
        return (f"Order {record.mall_order_id} (WooCommerce order {shop.get('number', '?')}): no product with SKU "
                f"for {what}; the line was added as a fee with MALL's price. Add the product to the order by hand.")

    def _product(self, sku: str) -> int | None:
        if sku not in self._products:
            body, _ = self.api.request("GET", f"{API}/products", params={"sku": sku})
            found = [p for p in body or [] if isinstance(p, dict) and p.get("sku") == sku]
            self._products[sku] = found[0]["id"] if found else None
        return self._products[sku]

    def find_order(self, mall_order_id: int, since: float) -> dict | None:
        """The shop's order carrying this MALL id, created since ``since`` (after a crash before recording)."""
        for page in range(1, self.cfg.max_pages + 1):
            body, headers = self.api.request("GET", f"{API}/orders", params={
                "after": _gmt(since - 600), "dates_are_gmt": "true", "search": str(mall_order_id),
                "per_page": 100, "page": page, "orderby": "date", "order": "asc"})
            for o in body or []:
                for m in o.get("meta_data") or []:
                    if m.get("key") == self.cfg.mall_id_meta and str(m.get("value")) == str(mall_order_id):
                        return o
            if page >= int(headers.get("x-wp-totalpages") or 1):
                return None
        return None

    def create_order(self, r: NewOrder) -> str:
        known = self.state.shop_order(r.mall_order_id)
        if known:
            return known["code"]
        attempt = self.state.attempt(r.mall_order_id)
        if attempt is not None:
            found = self.find_order(r.mall_order_id, attempt)
            if found:
                self.state.record_shop_order(r.mall_order_id, str(found["id"]), number=str(found.get("number")))
                return str(found["id"])
        first, last = split_name(r.customer_name)
        address = {"first_name": first, "last_name": last, "company": r.company, "address_1": r.street,
                   "city": r.city, "postcode": r.zip, "country": r.country}
        lines, fees, missing = [], [], []
        for it in r.items:
            key = it.item_id if self.cfg.product_key == "item_id" else str(it.article_id or "")
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
        self.state.note_attempt(r.mall_order_id, time.time())
        created, _ = self.api.request("POST", f"{API}/orders", json_body=body, ok=(201,))
        if not isinstance(created, dict) or not isinstance(created.get("id"), int):
            raise ShopApiError(self.api.endpoint("POST", f"{API}/orders"), "answer has no integer order id")
        self.state.record_shop_order(r.mall_order_id, str(created["id"]), number=str(created.get("number")))
        self.state.note_missing(r.mall_order_id, missing)
        return str(created["id"])

    def _shop_id(self, mall_order_id: int) -> str:
        known = self.state.shop_order(mall_order_id)
        if known:
            return known["code"]
        found = self.find_order(mall_order_id, time.time() - 90 * 86400)
        if not found:
            raise ShopApiError(self.source, f"no WooCommerce order carries {self.cfg.mall_id_meta} = {mall_order_id}")
        self.state.record_shop_order(mall_order_id, str(found["id"]), number=str(found.get("number")))
        return str(found["id"])

    def apply_change(self, c: MallChange) -> None:
        oid = self._shop_id(c.mall_order_id)
        if c.shop_status:
            self.api.request("PUT", f"{API}/orders/{oid}", json_body={"status": c.shop_status})
        note = f"MALL: {c.note or c.mall_status}" + (f" (branch {c.branch_id})" if c.branch_id else "")
        self.api.request("POST", f"{API}/orders/{oid}/notes", json_body={"note": note, "customer_note": False}, ok=(201,))

    # -- webhooks ------------------------------------------------------------------------------
    def webhook_keys(self) -> list[str]:
        return [k for k in (_secret(self.cfg.webhook_secret), _secret(self.cfg.webhook_secret_previous)) if k]

    def verify_webhook(self, headers, body: bytes) -> bool:
        return signature_ok(headers.get("X-WC-Webhook-Signature"), body, self.webhook_keys(), hmac_b64_sha256)

    @staticmethod
    def is_ping(headers, body: bytes) -> bool:
        return "X-WC-Webhook-Signature" not in headers and body.startswith(b"webhook_id=") and len(body) < 64

    @staticmethod
    def parse_webhook(headers, body: bytes) -> list[str]:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("id"), int):
            raise ValueError("body is not an order with an integer id")
        return [str(data["id"])]

    def webhook_token(self) -> str:
        return _secret(self.cfg.webhook_token)

    def check_webhooks(self, public_url: str, *, fix: bool = False) -> list[str]:
        """Problems with the connector's order.updated webhook (pointing at public_url, active); with fix,
        registers it or re-enables it. Returns what is (still) wrong, plus what was fixed as "fixed: …"."""
        url = f"{public_url.rstrip('/')}/webhooks/shop/woocommerce/{self.webhook_token()}"
        body, _ = self.api.request("GET", f"{API}/webhooks", params={"per_page": 100})
        mine = [h for h in body or [] if h.get("topic") == WEBHOOK_TOPIC and h.get("delivery_url") == url]
        out = []
        if not mine:
            if not fix:
                return [f"no {WEBHOOK_TOPIC} webhook points at the receiver ({public_url}/webhooks/shop/woocommerce/…)"]
            self.api.request("POST", f"{API}/webhooks", json_body={
                "name": "mall-connector", "topic": WEBHOOK_TOPIC, "delivery_url": url,
                "secret": _secret(self.cfg.webhook_secret), "status": "active"}, ok=(201,))
            return [f"fixed: registered the {WEBHOOK_TOPIC} webhook"]
        for h in mine:
            if h.get("status") != "active":
                if fix:
                    self.api.request("PUT", f"{API}/webhooks/{h['id']}", json_body={"status": "active"})
                    out.append(f"fixed: re-enabled webhook {h['id']} (was {h.get('status')})")
                else:
                    out.append(f"webhook {h['id']} ({WEBHOOK_TOPIC}) is {h.get('status')}, not active")
        return out
