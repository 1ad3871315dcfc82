"""Reading a table feed (CSV or XLSX) within its limits: the readers of adapters/generic_csv/records.py
behind the bounds of adapters/shared/limits.py.

records.py is imported inside the functions: importing it loads the generic_csv package, whose adapter
imports this module. When records.py moves into adapters/shared/ (with the outbox), import it here at
the top.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from adapters.shared.limits import capped_rows, check_xlsx, limited_stream
from adapters.shared.sections import FeedLimits

if TYPE_CHECKING:
    from adapters.generic_csv.records import Records


def read_csv(stream: IO[bytes], *, source: str, encoding: str, limits: FeedLimits) -> "Records":
    """``csv_records`` within the limits: no line longer than max_line_bytes, at most max_rows rows."""
    from adapters.generic_csv.records import csv_records

    bounded = limited_stream(stream, source, max_bytes=limits.max_feed_bytes, max_line_bytes=limits.max_line_bytes)
    return capped_rows(csv_records(bounded, source=source, encoding=encoding), source, limits.max_rows)


def read_xlsx(stream: IO[bytes], *, source: str, limits: FeedLimits) -> "Records":
    """``xlsx_records`` within the limits: unpacked size checked first, then cells and rows while reading."""
    from adapters.generic_csv.records import xlsx_records

    check_xlsx(stream, source=source, limits=limits)
    records = xlsx_records(stream, source=source, max_cells=limits.max_xlsx_cells)
    return capped_rows(records, source, limits.max_rows)
