"""Generic CSV adapter, and the table-feed machinery other adapters reuse.

Reusable pieces (import from here):
* ``FeedSource`` / ``Fetched`` / ``redact_url``: fetch a path or http(s) URL (settle, fingerprint, auth);
  they live in adapters/shared/source.py now and are re-exported here.
* ``csv_records`` / ``xlsx_records`` -> ``Records(header, rows)``; ``records_to_feed`` with a ``ColumnMap``.
* ``parse_shop_datetime``: the shop date formats -> aware datetimes.
* ``Outbox`` (``stage`` / ``publish``), ``ORDER_COLUMNS``, ``CHANGE_COLUMNS``, ``safe_cell``: they live in
  adapters/shared/outbox.py now and are re-exported here.
"""

from adapters.base import AdapterSpec, Secret
from adapters.generic_csv.adapter import GenericCsvAdapter
from adapters.generic_csv.config import GenericCsvConfig
from adapters.shared.outbox import CHANGE_COLUMNS, ORDER_COLUMNS, Outbox, safe_cell
from adapters.generic_csv.records import ColumnMap, Records, csv_records, parse_shop_datetime, records_to_feed, xlsx_records
from adapters.shared.source import FeedSource, Fetched, redact_url
from mappings import default_mapping_path


#: The registry entry (pyproject.toml: [project.entry-points."mall_connector.adapters"]).
ADAPTER = AdapterSpec(
    name="generic_csv",
    description="any shop that exports a CSV of order states and imports CSV files from a folder",
    config_model=GenericCsvConfig,
    build=GenericCsvAdapter.build,
    secrets=(Secret("auth_password"),),
    paths=("source", "outbox", "serials"),
    default_mapping=default_mapping_path("generic_csv"),
    contract_kit="adapters.generic_csv.contract_kit:GenericCsvKit",
)

__all__ = [
    "ADAPTER", "GenericCsvConfig", "GenericCsvAdapter", "Outbox", "ORDER_COLUMNS", "CHANGE_COLUMNS", "safe_cell",
    "ColumnMap", "Records", "csv_records", "xlsx_records", "records_to_feed", "parse_shop_datetime", "FeedSource", "Fetched", "redact_url",
]
