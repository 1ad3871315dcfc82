"""The base of the adapters that speak a shop's HTTP API (shoptet, woocommerce).

What is the same for every such shop lives here, once: the core's hand-off (stage, publish, manual
steps) over the adapter's state folder (``adapters.shared.shopapi.StateDir``); creating each MALL
order in the shop at most once across a kill -9 (a create attempt is written down before the POST,
so the next publish looks the order up before anything is created again); applying MALL's changes;
the poll that reads the orders changed since a cursor plus those a verified webhook named, and
forgets those deliveries once the core stored the read; the webhook hooks the receiver calls.

A subclass speaks its platform only: the client (endpoints, auth), the payload shapes, how an order
is found by its MALL id, the status ids or slugs, the webhook signature.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from adapters.base import AdapterContext, FeedProblem, FeedRead, FeedUnavailable, MallChange, NewOrder, NewOrderItem
from adapters.base import ShopOrderState
from adapters.shared.shopapi import JsonApi, ShopApiError, StateDir, signature_ok


def secret(value) -> str:
    """The text of an optional SecretStr ("" when unset)."""
    return value.get_secret_value() if value is not None else ""


class ApiShopAdapter:
    """``adapters.base.ShopAdapter`` for a shop with an API; ``cfg`` is its ``[shop.<name>]`` section."""

    name: ClassVar[str]
    #: The header that carries a webhook's signature, and how the shop computes it.
    signature_header: ClassVar[str]
    sign: ClassVar[Callable[[str, bytes], str]]
    #: The section's keys holding the webhook signing key and the previous one (rotation).
    webhook_key_fields: ClassVar[tuple[str, str]]
    #: How far back a lookup by MALL id reads when no create attempt says when (days).
    lookup_days: ClassVar[int]

    def __init__(self, section: Any, state_root: Path):
        self.cfg = section
        self.state = StateDir(state_root)
        self._api: JsonApi | None = None
        self._products: dict[str, Any] = {}

    @classmethod
    def build(cls, section: Any, context: AdapterContext) -> "ApiShopAdapter":
        """The registry's ``AdapterSpec.build``: ``state_dir`` relative to the config file's folder."""
        root = section.state_dir
        if not root.is_absolute() and context.config_path is not None:
            root = context.config_path.parent / root
        return cls(section, root)

    @property
    def api(self) -> JsonApi:
        if self._api is None:
            self._api = self.connect()
        return self._api

    def connect(self) -> JsonApi:
        """The shop's JSON client: ``base_url``, this shop's credentials, the section's bounds."""
        return JsonApi(self.cfg.base_url, timeout_s=self.cfg.timeout_s, retries=self.cfg.retries,
                       max_wait_s=self.cfg.max_retry_wait_s, label=self.name, **self.credentials())

    # -- what a subclass gives ----------------------------------------------------------------
    def credentials(self) -> dict[str, Any]:
        """How the shop knows the connector: ``headers`` and/or ``auth`` for the JSON client."""
        raise NotImplementedError

    def first_cursor(self, since: float) -> str:
        """The feed cursor for the very first poll (``initial_lookback_h`` ago)."""
        raise NotImplementedError

    def changed_orders(self, cursor: str, refs: list[str]) -> tuple[list[dict], str]:
        """The orders changed since ``cursor`` and those the spooled webhooks named (``refs``), and the
        cursor the next poll starts from. Raises ShopApiError."""
        raise NotImplementedError

    def later_cursor(self, cursor: str, order: dict) -> str:
        """The cursor after a well-formed ``order`` was read (default: what changed_orders said)."""
        return cursor

    def _row(self, order: dict, pos: int) -> ShopOrderState | None:
        """The feed row of an order; None for an order that is not MALL's. ValueError for a bad one."""
        raise NotImplementedError

    def find_order(self, mall_order_id: int, since: float) -> dict | None:
        """The map record (``{"code": …}`` plus what messages need) of the shop's order for this MALL id
        created since ``since``, or None."""
        raise NotImplementedError

    def order_body(self, r: NewOrder) -> tuple[Any, list[dict]]:
        """The create request's body, and the items whose product the shop does not have."""
        raise NotImplementedError

    def post_order(self, r: NewOrder, body: Any) -> dict:
        """Create the order; the map record of the shop's order."""
        raise NotImplementedError

    def set_status(self, code: str, shop_status: str) -> None:
        raise NotImplementedError

    def add_note(self, code: str, text: str) -> None:
        raise NotImplementedError

    def manual_text(self, mall_order_id: int, shop: dict, what: str) -> str:
        """What a person must do about the products listed in ``what`` (``shop``: the map record)."""
        raise NotImplementedError

    # -- shop -> MALL --------------------------------------------------------------------------
    def read_feed(self, *, previous_fingerprint: str | None = None, wait_for_settle: bool = False) -> FeedRead:
        prev = json.loads(previous_fingerprint) if previous_fingerprint else {}
        self.state.drop_webhooks(prev.get("spool", []))  # the core stored that read: those deliveries are in
        cursor = prev.get("cursor") or self.first_cursor(time.time() - self.cfg.initial_lookback_h * 3600)
        refs, files = self.state.webhook_refs()
        try:
            orders, newest = self.changed_orders(cursor, refs)
        except ShopApiError as e:
            raise FeedUnavailable(f"{self.source}: {e}") from None
        feed = FeedRead()
        for pos, o in enumerate(orders, 1):
            try:
                row = self._row(o, pos)
            except ValueError as e:
                feed.problems.append(FeedProblem(self.source, pos, str(e)))
                continue
            newest = self.later_cursor(newest, o)
            if row is not None:
                feed.rows.append(row)
        feed.fingerprint = json.dumps({"cursor": newest, "spool": files}, sort_keys=True)
        feed.unchanged = previous_fingerprint is not None and newest == prev.get("cursor") and not files
        return feed

    # -- MALL -> shop --------------------------------------------------------------------------
    def stage_handoff(self, name: str, kind: str, records: Sequence[NewOrder] | Sequence[MallChange]) -> None:
        self.state.stage(name, kind, records)

    def publish_handoff(self, name: str) -> bool:
        """Each staged record into the shop, in order. After each one the count done is written down, so
        a publish killed halfway goes on from there: a MALL change's note is not added twice (an order
        would be found in the map anyway)."""
        records = self.state.staged(name)
        if records is None:
            return False
        start = self.state.progress(name)
        for count, r in enumerate(records[start:], start + 1):
            if isinstance(r, NewOrder):
                self.create_order(r)
            else:
                self.apply_change(r)
            self.state.note_progress(name, count)
        self.state.done(name)
        return True

    def manual_steps(self, record: NewOrder | MallChange) -> str | None:
        missing = self.state.missing(record.mall_order_id) if isinstance(record, NewOrder) else []
        if not missing:
            return None
        shop = self.state.shop_order(record.mall_order_id) or {}
        what = ", ".join(f"{m['title']} ({self.cfg.product_key} {m['key']})" for m in missing)
        return self.manual_text(record.mall_order_id, shop, what)

    def product_key(self, item: NewOrderItem) -> str:
        """The MALL value the shop knows the product by (``product_key``)."""
        return item.item_id if self.cfg.product_key == "item_id" else str(item.article_id or "")

    def create_order(self, r: NewOrder) -> str:
        """The shop's order for ``r``, created at most once. The attempt is written down (fsynced) before
        the POST and the shop's code right after it: a kill -9 in between leaves the attempt, and the
        next publish finds the order in the shop instead of creating it again."""
        known = self.state.shop_order(r.mall_order_id)
        if known:
            return known["code"]
        attempt = self.state.attempt(r.mall_order_id)
        if attempt is not None:
            found = self.find_order(r.mall_order_id, attempt)
            if found:
                self.state.record_shop_order(r.mall_order_id, **found)
                return found["code"]
        body, missing = self.order_body(r)
        self.state.note_attempt(r.mall_order_id, time.time())
        self.state.note_missing(r.mall_order_id, missing)  # before the POST: a crash after it keeps the list
        created = self.post_order(r, body)
        self.state.record_shop_order(r.mall_order_id, **created)
        return created["code"]

    def shop_code(self, mall_order_id: int) -> str:
        """The shop's code of the order for this MALL id: from the map, else looked up in the shop."""
        known = self.state.shop_order(mall_order_id)
        if known:
            return known["code"]
        found = self.find_order(mall_order_id, time.time() - self.lookup_days * 86400)
        if not found:
            raise ShopApiError(self.source, self.not_found(mall_order_id))
        self.state.record_shop_order(mall_order_id, **found)
        return found["code"]

    def not_found(self, mall_order_id: int) -> str:
        """The error when the shop has no order for this MALL id."""
        return f"no {self.name} order for MALL order {mall_order_id}"

    def apply_change(self, c: MallChange) -> None:
        code = self.shop_code(c.mall_order_id)
        if c.shop_status:
            self.set_status(code, c.shop_status)
        self.add_note(code, f"MALL: {c.note or c.mall_status}" + (f" (branch {c.branch_id})" if c.branch_id else ""))

    # -- webhooks (adapters/shared/shop_webhooks.py calls these) -------------------------------
    def webhook_keys(self) -> list[str]:
        return [k for k in (secret(getattr(self.cfg, f)) for f in self.webhook_key_fields) if k]

    def verify_webhook(self, headers, body: bytes) -> bool:
        return signature_ok(headers.get(self.signature_header), body, self.webhook_keys(), self.sign)

    @staticmethod
    def is_ping(headers, body: bytes) -> bool:
        """A delivery that only tests the URL (answered 200, nothing noted)."""
        return False

    def webhook_token(self) -> str:
        return secret(self.cfg.webhook_token)

    def webhook_url(self, public_url: str) -> str:
        """Where the shop must deliver its webhooks: this adapter's route on the receiver."""
        return f"{public_url.rstrip('/')}/webhooks/shop/{self.name}/{self.webhook_token()}"
