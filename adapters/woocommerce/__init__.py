"""WooCommerce adapter: MALL orders created through the REST API (wc/v3), statuses and tracking back by
``modified_after`` polling and the ``order.updated`` webhook."""

from adapters.base import AdapterContext, AdapterSpec, Secret
from adapters.woocommerce.adapter import WooCommerceAdapter
from adapters.woocommerce.config import WooCommerceConfig


def _build(section: WooCommerceConfig, context: AdapterContext) -> WooCommerceAdapter:
    root = section.state_dir
    if not root.is_absolute() and context.config_path is not None:
        root = context.config_path.parent / root
    return WooCommerceAdapter(section, root)


def _default_mapping():
    from mappings import default_mapping_path

    return default_mapping_path("woocommerce")


#: The registry entry (pyproject.toml: [project.entry-points."mall_connector.adapters"]).
ADAPTER = AdapterSpec(
    name="woocommerce",
    description="WooCommerce: orders created through its REST API, statuses and tracking read back",
    config_model=WooCommerceConfig,
    build=_build,
    secrets=(Secret("consumer_key"), Secret("consumer_secret"), Secret("webhook_secret"),
             Secret("webhook_secret_previous"), Secret("webhook_token")),
    paths=("state_dir",),
    default_mapping=_default_mapping(),
    contract_kit="adapters.woocommerce.contract_kit:WooCommerceKit",
)

__all__ = ["ADAPTER", "WooCommerceAdapter", "WooCommerceConfig"]
