"""WooCommerce adapter: MALL orders created through the REST API (wc/v3), statuses and tracking back by
``modified_after`` polling and the ``order.updated`` webhook."""

from adapters.base import AdapterSpec, Secret
from adapters.woocommerce.adapter import WooCommerceAdapter
from adapters.woocommerce.config import WooCommerceConfig
from mappings import default_mapping_path

#: The registry entry (pyproject.toml: [project.entry-points."mall_connector.adapters"]).
ADAPTER = AdapterSpec(
    name="woocommerce",
    description="WooCommerce: orders created through its REST API, statuses and tracking read back",
    config_model=WooCommerceConfig,
    build=WooCommerceAdapter.build,
    secrets=(Secret("consumer_key"), Secret("consumer_secret"), Secret("webhook_secret"),
             Secret("webhook_secret_previous"), Secret("webhook_token")),
    paths=("state_dir",),
    default_mapping=default_mapping_path("woocommerce"),
    contract_kit="adapters.woocommerce.contract_kit:WooCommerceKit",
)

__all__ = ["ADAPTER", "WooCommerceAdapter", "WooCommerceConfig"]
