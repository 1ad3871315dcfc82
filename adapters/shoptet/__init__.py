"""Shoptet adapter: MALL orders created through the Shoptet API (MALL id in externalCode), statuses and
tracking back by ``GET /api/orders/changes`` polling and the ``order:update`` webhook."""

import tempfile
from pathlib import Path

from adapters.base import AdapterSpec, Secret
from adapters.shoptet.adapter import ShoptetAdapter, init_mapping
from adapters.shoptet.config import ShoptetConfig
from mappings import default_mapping_path


def _init_mapping(section: ShoptetConfig) -> str:
    """``init --adapter shoptet``: the mapping with this shop's own status names (GET /api/orders/statuses)."""
    with tempfile.TemporaryDirectory(prefix="shoptet-init-") as root:  # init records nothing
        return init_mapping(ShoptetAdapter(section, Path(root)))


#: The registry entry (pyproject.toml: [project.entry-points."mall_connector.adapters"]).
ADAPTER = AdapterSpec(
    name="shoptet",
    description="Shoptet: orders created through its API, statuses and tracking read back",
    config_model=ShoptetConfig,
    build=ShoptetAdapter.build,
    secrets=(Secret("api_token"), Secret("webhook_key"), Secret("webhook_key_previous"), Secret("webhook_token")),
    paths=("state_dir",),
    default_mapping=default_mapping_path("shoptet"),
    contract_kit="adapters.shoptet.contract_kit:ShoptetKit",
    init_mapping=_init_mapping,
)

__all__ = ["ADAPTER", "ShoptetAdapter", "ShoptetConfig", "init_mapping"]
