"""``[shop.shoptet]`` (keys in config.example.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from adapters.shared.sections import AdapterSection


class ShoptetConfig(AdapterSection):
    base_url: str = "https://api.myshoptet.com"
    #: Admin › Propojení › Private API (Shoptet Premium); sent as Shoptet-Private-API-Token.
    api_token: SecretStr | None = None
    #: The key from POST /api/webhooks/renew-signature-key (Shoptet-Webhook-Signature); the previous one
    #: keeps working while you rotate.
    webhook_key: SecretStr | None = None
    webhook_key_previous: SecretStr | None = None
    webhook_token: SecretStr | None = None  # the last part of /webhooks/shop/shoptet/<token>
    state_dir: Path = Path("shoptet-state")
    #: externalCode = prefix + MALL order id; orders without the prefix are the shop's own.
    external_code_prefix: str = "MALL-"
    product_key: Literal["item_id", "article_id"] = "item_id"
    #: MALL delivery method -> shipping GUID; MALL payment type -> payment method GUID
    #: (GET /api/eshop?include=shippingMethods,paymentMethods).
    delivery_methods: dict[str, str] = {}
    payment_methods: dict[str, str] = {}
    timeout_s: float = Field(30.0, gt=0, le=300)
    retries: int = Field(3, ge=0, le=10)
    max_retry_wait_s: float = Field(30.0, ge=0, le=600)
    initial_lookback_h: float = Field(24.0, gt=0, le=24 * 30)
    max_pages: int = Field(50, ge=1, le=10_000)
    #: Shop statuses meaning "the customer has it" (map them to "delivered" in the mapping): their orders
    #: carry the order's last change time as delivered_at, which MALL requires with delivered.
    delivered_statuses: list[str] = []
