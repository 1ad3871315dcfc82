"""Generic CSV adapter, and the table-feed machinery other adapters reuse.

Reusable pieces (import from here):
* ``FeedSource`` / ``Fetched`` / ``redact_url``: fetch a path or http(s) URL (settle, fingerprint, auth).
* ``csv_records`` / ``xlsx_records`` -> ``Records(header, rows)``; ``records_to_feed`` with a ``ColumnMap``.
* ``parse_shop_datetime``: the shop date formats -> aware datetimes.
* ``Outbox`` (``stage`` / ``publish``), ``ORDER_COLUMNS``, ``CHANGE_COLUMNS``, ``safe_cell``.
"""

from adapters.generic_csv.adapter import GenericCsvAdapter
from adapters.generic_csv.outbox import CHANGE_COLUMNS, ORDER_COLUMNS, Outbox, safe_cell
from adapters.generic_csv.records import ColumnMap, Records, csv_records, parse_shop_datetime, records_to_feed, xlsx_records
from adapters.generic_csv.source import FeedSource, Fetched, redact_url

__all__ = [
    "GenericCsvAdapter", "Outbox", "ORDER_COLUMNS", "CHANGE_COLUMNS", "safe_cell", "ColumnMap", "Records",
    "csv_records", "xlsx_records", "records_to_feed", "parse_shop_datetime", "FeedSource", "Fetched", "redact_url",
]
