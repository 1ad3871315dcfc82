"""``[shop.shoptet]`` (keys in config.example.toml)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from adapters.shared.sections import ApiShopSection


class ShoptetConfig(ApiShopSection):
    """``webhook_token``, ``product_key`` (the product code), the timeouts and the poll's bounds and
    ``delivered_statuses`` (matched against the status name; changeTime is delivered_at) are
    ``ApiShopSection``'s."""

    base_url: str = "https://api.myshoptet.com"
    #: Admin › Propojení › Private API (Shoptet Premium); sent as Shoptet-Private-API-Token.
    api_token: SecretStr | None = None
    #: The key from POST /api/webhooks/renew-signature-key (Shoptet-Webhook-Signature); the previous one
    #: keeps working while you rotate.
    webhook_key: SecretStr | None = None
    webhook_key_previous: SecretStr | None = None
    state_dir: Path = Path("shoptet-state")
    #: externalCode = prefix + MALL order id; orders without the prefix are the shop's own.
    external_code_prefix: str = "MALL-"
    #: MALL delivery method -> shipping GUID; MALL payment type -> payment method GUID
    #: (GET /api/eshop?include=shippingMethods,paymentMethods).
    delivery_methods: dict[str, str] = {}
    payment_methods: dict[str, str] = {}
