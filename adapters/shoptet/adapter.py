"""The Shoptet adapter: MALL orders created through ``POST /api/orders`` (the MALL id in ``externalCode``),
statuses (by the shop's own names) and tracking read back through ``GET /api/orders/changes?from=…``
and the ``order:update`` webhook."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

from adapters.base import NewOrder, ShopOrderState
from adapters.shared.api_shop import ApiShopAdapter, secret
from adapters.shared.shopapi import ShopApiError, hmac_hex_sha1, money

WEBHOOK_EVENT = "order:update"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")


class ShoptetAdapter(ApiShopAdapter):
    name = "shoptet"
    signature_header = "Shoptet-Webhook-Signature"
    sign = staticmethod(hmac_hex_sha1)
    webhook_key_fields = ("webhook_key", "webhook_key_previous")
    lookup_days = 30
    _statuses: dict[str, int] | None = None

    def credentials(self) -> dict:
        return {"headers": {"Shoptet-Private-API-Token": secret(self.cfg.api_token), "Content-Type": "application/json"}}

    @property
    def source(self) -> str:
        return f"shoptet {self.cfg.base_url.rstrip('/')}/api/orders/changes"

    def call(self, method: str, path: str, **kw) -> dict:
        body, _ = self.api.request(method, path, **kw)
        if body is None and kw.get("ok") and 201 in kw["ok"]:
            return {}
        if not isinstance(body, dict) or "data" not in body:
            raise ShopApiError(self.api.endpoint(method, path), "answer is not Shoptet's {data, errors} envelope")
        return body["data"] or {}

    def statuses(self) -> dict[str, int]:
        """This shop's status names -> ids (GET /api/orders/statuses; ids differ per shop)."""
        if self._statuses is None:
            data = self.call("GET", "/api/orders/statuses")
            items = data.get("statuses")
            if not isinstance(items, list):
                raise ShopApiError(self.api.endpoint("GET", "/api/orders/statuses"), "answer has no list 'statuses'")
            self._statuses = {str(s["name"]): int(s["id"]) for s in items if isinstance(s, dict) and "id" in s}
        return self._statuses

    def status_id(self, name_or_id: str) -> int:
        known = self.statuses()
        if name_or_id in known:
            return known[name_or_id]
        if name_or_id.lstrip("-").isdigit() and int(name_or_id) in known.values():
            return int(name_or_id)
        raise ShopApiError(self.api.endpoint("GET", "/api/orders/statuses"),
                           f"the shop has no order status {name_or_id!r} (mapping [from_mall])")

    # -- shop -> MALL --------------------------------------------------------------------------
    def first_cursor(self, since: float) -> str:
        return _iso(since)

    def changed_orders(self, cursor: str, refs: list[str]) -> tuple[list[dict], str]:
        """GET /api/orders/changes since the cursor (5 s of overlap), then each order's detail."""
        since = (datetime.strptime(cursor, "%Y-%m-%dT%H:%M:%S%z") - timedelta(seconds=5)).isoformat()
        codes: list[str] = []
        newest = datetime.strptime(cursor, "%Y-%m-%dT%H:%M:%S%z")
        for page in range(1, self.cfg.max_pages + 1):
            data = self.call("GET", "/api/orders/changes", params={"from": since, "page": page, "itemsPerPage": 1000})
            changes, pag = data.get("changes"), data.get("paginator") or {}
            if not isinstance(changes, list):
                raise ShopApiError(self.api.endpoint("GET", "/api/orders/changes"), "answer has no list 'changes'")
            for ch in changes:
                if isinstance(ch, dict) and ch.get("changeType") != "delete" and isinstance(ch.get("code"), str):
                    codes.append(ch["code"])
                    try:
                        newest = max(newest, datetime.strptime(ch["changeTime"], "%Y-%m-%dT%H:%M:%S%z"))
                    except (KeyError, TypeError, ValueError):
                        pass
            if page >= int(pag.get("pageCount") or 1):
                break
        details: list[dict] = []
        for code in dict.fromkeys(codes + [r for r in refs if r not in codes]):
            body, _ = self.api.request("GET", f"/api/orders/{code}", params={"include": "notes,shippingDetails"},
                                       ok=(200, 404))
            order = ((body or {}).get("data") or {}).get("order") if isinstance(body, dict) else None
            if isinstance(order, dict):
                details.append(order)
        return details, newest.strftime("%Y-%m-%dT%H:%M:%S%z")

    def _row(self, o: dict, pos: int) -> ShopOrderState | None:
        ext = o.get("externalCode")
        if not isinstance(ext, str) or not ext.startswith(self.cfg.external_code_prefix):
            return None  # the shop's own order, or another marketplace's
        mall = ext[len(self.cfg.external_code_prefix):]
        if not mall.isdigit():
            raise ValueError(f"order {o.get('code')}: externalCode {ext[:40]!r} is not a MALL order id")
        status = o.get("status")
        if not isinstance(status, dict) or not isinstance(status.get("name"), str):
            raise ValueError(f"order {o.get('code')}: no status")
        notes = o.get("notes") if isinstance(o.get("notes"), dict) else {}
        sd = o.get("shippingDetails") if isinstance(o.get("shippingDetails"), dict) else {}
        delivered_at = None
        if status["name"] in self.cfg.delivered_statuses:
            try:
                delivered_at = datetime.strptime(str(o.get("changeTime")), "%Y-%m-%dT%H:%M:%S%z")
            except ValueError:
                raise ValueError(f"order {o.get('code')}: changeTime {str(o.get('changeTime'))[:40]!r} is not a time") from None
        return ShopOrderState(mall_order_id=int(mall), status=status["name"], shop_order_id=str(o.get("code")),
                              tracking_number=notes.get("trackingNumber") or None,
                              tracking_url=notes.get("trackingUrl") or None,
                              carrier=sd.get("shippingCompanyCode") or None, line=pos, delivered_at=delivered_at)

    # -- MALL -> shop --------------------------------------------------------------------------
    def manual_text(self, mall_order_id: int, shop: dict, what: str) -> str:
        return (f"Order {mall_order_id} (Shoptet order {shop.get('code', '?')}): no product with code for "
                f"{what}; the line was added without a product code, with MALL's price. Pair it by hand.")

    def _has_product(self, code: str) -> bool:
        if code not in self._products:
            body, _ = self.api.request("GET", f"/api/products/code/{code}", ok=(200, 404))
            self._products[code] = isinstance(body, dict) and bool(body.get("data"))
        return self._products[code]

    def external_code(self, mall_order_id: int) -> str:
        return f"{self.cfg.external_code_prefix}{mall_order_id}"

    def find_order(self, mall_order_id: int, since: float) -> dict | None:
        """The order created since ``since`` whose externalCode is this MALL id (no filter by
        externalCode exists: list by creation time, then read each detail)."""
        want = self.external_code(mall_order_id)
        for page in range(1, self.cfg.max_pages + 1):
            data = self.call("GET", "/api/orders", params={"creationTimeFrom": _iso(since - 600), "page": page,
                                                            "itemsPerPage": 50})
            for item in data.get("orders") or []:
                detail = self.call("GET", f"/api/orders/{item['code']}")
                if (detail.get("order") or {}).get("externalCode") == want:
                    return {"code": item["code"]}
            if page >= int((data.get("paginator") or {}).get("pageCount") or 1):
                return None
        return None

    def not_found(self, mall_order_id: int) -> str:
        return f"no Shoptet order has externalCode {self.external_code(mall_order_id)}"

    def order_body(self, r: NewOrder) -> tuple[dict, list[dict]]:
        address = {"fullName": r.customer_name, "company": r.company or None, "streetWithNr": r.street,
                   "city": r.city, "zip": r.zip, "countryCode": r.country}
        items, missing = [], []
        for it in r.items:
            key = self.product_key(it)
            item = {"itemType": "product", "name": it.title, "amount": f"{it.quantity:.3f}", "vatRate": f"{it.vat:.2f}",
                    "unitPriceWithVat": money(it.price)}
            if key and self._has_product(key):
                item["code"] = key
            else:
                missing.append({"key": key, "title": it.title})
            items.append(item)
        shipping = self.cfg.delivery_methods.get(r.delivery_method)
        if shipping:
            items.append({"itemType": "shipping", "name": r.delivery_method, "shippingGuid": shipping,
                          "vatRate": "21.00", "unitPriceWithVat": money(r.delivery_price), "amount": "1.000"})
        payment = self.cfg.payment_methods.get(r.payment_type)
        if payment:
            items.append({"itemType": "billing", "name": r.payment_type, "paymentMethodGuid": payment,
                          "vatRate": "21.00", "unitPriceWithVat": "0.00", "amount": "1.000"})
        data = {"externalCode": self.external_code(r.mall_order_id), "currency": {"code": r.currency},
                "email": r.email, "phone": r.phone, "billingAddress": address, "deliveryAddress": address,
                "items": items, "notes": {"eshopRemark": f"MALL order {r.mall_order_id}"}}
        if r.branch_id:
            data["shippingDetails"] = {"branchId": str(r.branch_id)}
        if r.shop_status:
            data["statusId"] = self.status_id(r.shop_status)
        return {"data": data}, missing

    def post_order(self, r: NewOrder, body: dict) -> dict:
        """POST /api/orders. externalCode is unique in the shop: a 409 means an earlier try created it (the
        attempt marker was lost, or the shop's clock is off), so the order is looked up, not created."""
        try:
            created = self.call("POST", "/api/orders", json_body=body, params={"suppressEmailSending": "true"},
                                ok=(201,))
        except ShopApiError as e:
            if e.status != 409:
                raise
            found = self.find_order(r.mall_order_id, time.time() - self.lookup_days * 86400)
            if not found:
                raise
            return found
        code = (created.get("order") or {}).get("code")
        if not isinstance(code, str):
            raise ShopApiError(self.api.endpoint("POST", "/api/orders"), "answer has no order code")
        return {"code": code}

    def set_status(self, code: str, shop_status: str) -> None:
        self.call("PATCH", f"/api/orders/{code}/status", json_body={"data": {"statusId": self.status_id(shop_status)}},
                  params={"suppressEmailSending": "true"})

    def add_note(self, code: str, text: str) -> None:
        self.call("POST", f"/api/orders/{code}/history", json_body={"data": {"text": text, "type": "comment"}}, ok=(201,))

    # -- webhooks ------------------------------------------------------------------------------
    @staticmethod
    def parse_webhook(headers, body: bytes) -> list[str]:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("eventInstance"), str):
            raise ValueError("body has no eventInstance")
        if data.get("event") not in ("order:update", "order:create", "order:cancel", "order:paid"):
            return []
        return [data["eventInstance"]]

    def check_webhooks(self, public_url: str, *, fix: bool = False) -> list[str]:
        url = self.webhook_url(public_url)
        hooks = self.call("GET", "/api/webhooks").get("webhooks") or []
        mine = [h for h in hooks if h.get("event") == WEBHOOK_EVENT]
        if mine and mine[0].get("url") == url:
            return []
        if not fix:
            where = f"points at {mine[0].get('url', '')[:60]}…" if mine else "is not registered"
            return [f"the {WEBHOOK_EVENT} webhook {where}; it must point at {public_url}/webhooks/shop/shoptet/…"]
        if mine:
            self.call("PATCH", f"/api/webhooks/{mine[0]['id']}", json_body={"data": {"url": url}})
            return [f"fixed: pointed the {WEBHOOK_EVENT} webhook at the receiver"]
        self.call("POST", "/api/webhooks", json_body={"data": [{"event": WEBHOOK_EVENT, "url": url}]}, ok=(201,))
        return [f"fixed: registered the {WEBHOOK_EVENT} webhook"]

    def mapping_problems(self, mapping) -> list[str]:
        """Shop statuses in the mapping this shop does not have (``mapping check``)."""
        known = self.statuses()
        out = []
        for shop in list(mapping.to_mall) + [v for v in mapping.from_mall.values()]:
            if shop not in known and not (shop.lstrip("-").isdigit() and int(shop) in known.values()):
                out.append(f"status {shop!r} does not exist in this Shoptet shop (has: {', '.join(known)})")
        return out


def init_mapping(adapter: ShoptetAdapter) -> str:
    """A mapping file with this shop's own status names (``init --adapter shoptet``), from
    GET /api/orders/statuses; the MALL side is guessed from the usual names and must be checked."""
    guesses = {"vyřizuje se": "shipping", "balí se": "shipping", "vyřízena": "shipped", "odeslána": "shipped",
               "stornována": "cancelled", "zrušena": "cancelled"}
    lines = ["# Written by mall-connector init from GET /api/orders/statuses of this shop. Check every line.",
             "[to_mall]"]
    names = list(adapter.statuses())
    for name in names:
        guess = guesses.get(name.lower())
        lines.append(f'{json.dumps(name, ensure_ascii=False)} = "{guess}"' if guess else
                     f"# {json.dumps(name, ensure_ascii=False)} = \"\"   # not mapped")
    lines += ["", "[from_mall]"]
    first = names[0] if names else ""
    cancel = next((n for n in names if guesses.get(n.lower()) == "cancelled"), "")
    lines.append(f"open = {json.dumps(first, ensure_ascii=False)}")
    if cancel:
        lines.append(f"cancelled = {json.dumps(cancel, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"
