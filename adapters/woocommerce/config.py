"""``[shop.woocommerce]`` (keys in config.example.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from adapters.shared.sections import AdapterSection


class WooCommerceConfig(AdapterSection):
    #: The shop's address; the REST API is under <base_url>/wp-json/wc/v3. Use https:// (key auth needs TLS).
    base_url: str = "https://shop.example.cz"
    consumer_key: SecretStr | None = None  # WooCommerce › Settings › Advanced › REST API, read/write
    consumer_secret: SecretStr | None = None
    #: The secret of the connector's webhooks (X-WC-Webhook-Signature); the previous one keeps working
    #: while you rotate.
    webhook_secret: SecretStr | None = None
    webhook_secret_previous: SecretStr | None = None
    #: The last part of /webhooks/shop/woocommerce/<token> on the receiver.
    webhook_token: SecretStr | None = None
    state_dir: Path = Path("woocommerce-state")
    mall_id_meta: str = "_mall_order_id"
    #: Which MALL value is the WooCommerce product SKU.
    product_key: Literal["item_id", "article_id"] = "item_id"
    #: MALL delivery method -> WooCommerce shipping method_id; MALL payment type -> payment_method.
    delivery_methods: dict[str, str] = {}
    payment_methods: dict[str, str] = {}
    default_shipping_method: str = "flat_rate"
    tracking_meta_keys: list[str] = ["_wc_shipment_tracking_items"]
    packeta_meta_key: str = "_packetery_packet_id"
    timeout_s: float = Field(30.0, gt=0, le=300)
    retries: int = Field(3, ge=0, le=10)
    max_retry_wait_s: float = Field(30.0, ge=0, le=600)
    #: On the very first poll, read orders changed in the last N hours (never the whole history).
    initial_lookback_h: float = Field(24.0, gt=0, le=24 * 30)
    max_pages: int = Field(50, ge=1, le=10_000)
    #: Order status slugs meaning "the customer has it" (e.g. a plugin's "delivered"; map them to "delivered"
    #: in the mapping): their orders carry date_modified_gmt as delivered_at, which MALL requires with delivered.
    delivered_statuses: list[str] = []
