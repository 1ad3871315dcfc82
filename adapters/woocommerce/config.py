"""``[shop.woocommerce]`` (keys in config.example.toml)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from adapters.shared.sections import ApiShopSection


class WooCommerceConfig(ApiShopSection):
    """``webhook_token``, ``product_key`` (the SKU), the timeouts and the poll's bounds and
    ``delivered_statuses`` (status slugs, e.g. a plugin's "delivered"; date_modified_gmt is delivered_at)
    are ``ApiShopSection``'s."""

    #: The shop's address; the REST API is under <base_url>/wp-json/wc/v3. Use https:// (key auth needs TLS).
    base_url: str = "https://shop.example.cz"
    consumer_key: SecretStr | None = None  # WooCommerce › Settings › Advanced › REST API, read/write
    consumer_secret: SecretStr | None = None
    #: The secret of the connector's webhooks (X-WC-Webhook-Signature); the previous one keeps working
    #: while you rotate.
    webhook_secret: SecretStr | None = None
    webhook_secret_previous: SecretStr | None = None
    state_dir: Path = Path("woocommerce-state")
    mall_id_meta: str = "_mall_order_id"
    #: MALL delivery method -> WooCommerce shipping method_id; MALL payment type -> payment_method.
    delivery_methods: dict[str, str] = {}
    payment_methods: dict[str, str] = {}
    default_shipping_method: str = "flat_rate"
    tracking_meta_keys: list[str] = ["_wc_shipment_tracking_items"]
    packeta_meta_key: str = "_packetery_packet_id"
