"""FastCentrik adapter: its XML (or CSV/XLSX) order export in, outbox files and instructions out."""

from adapters.base import AdapterSpec, Secret
from adapters.fastcentrik.adapter import FastCentrikAdapter, detect_format
from adapters.fastcentrik.config import FastCentrikConfig, FastCentrikFields
from adapters.fastcentrik.feed import ParsedFeed, column_map, parse_orders_table, parse_orders_xml
from mappings import default_mapping_path


#: The registry entry (pyproject.toml: [project.entry-points."mall_connector.adapters"]).
ADAPTER = AdapterSpec(
    name="fastcentrik",
    description="FastCentrik: its order export (XML, CSV or XLSX) in, outbox files and instructions out",
    config_model=FastCentrikConfig,
    build=FastCentrikAdapter.build,
    secrets=(Secret("auth_password"),),
    paths=("source", "outbox"),
    default_mapping=default_mapping_path("fastcentrik"),
    contract_kit="adapters.fastcentrik.contract_kit:FastCentrikKit",
)

__all__ = ["ADAPTER", "FastCentrikConfig", "FastCentrikFields", "FastCentrikAdapter", "detect_format", "ParsedFeed", "column_map", "parse_orders_table", "parse_orders_xml"]
