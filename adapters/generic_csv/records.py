"""Turning a shop's tabular feed (CSV or XLSX) into ShopOrderState rows.

Shared by every adapter whose feed is a table of orders (generic CSV, FastCentrik CSV/XLSX/XML):

* ``csv_records`` / ``xlsx_records`` read a stream into ``Records``: the header and an iterator of
  ``(line_no, {column: text})``. They stream (one row in memory at a time), so a 100k-row feed is fine.
* ``records_to_feed`` turns any such records into a ``FeedRead`` given a ``ColumnMap`` (the shop's
  column names). A bad row becomes a ``FeedProblem`` and is skipped; the rest still counts.
* ``parse_shop_datetime`` reads the date formats shops write into aware datetimes.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from dataclasses import dataclass, fields
from datetime import date, datetime, time, tzinfo
from typing import IO, Iterable, Iterator, Mapping, NamedTuple, Sequence

from adapters.base import FeedProblem, FeedRead, FeedRefused, FeedUnavailable, ShopOrderState

# csv refuses fields above 128 KiB by default; a feed cell is never that big, but a broken quote
# can swallow the rest of the file into one field, and we want that reported, not a crash.
csv.field_size_limit(16 * 1024 * 1024)


class Records(NamedTuple):
    """A table: its header (as written) and its rows as ``(line_no, {header: text})``.

    A row with more values than the header has them as a list under the key ``None``; a row with
    fewer has ``None`` values (the ``csv.DictReader`` convention); ``records_to_feed`` reports both.
    """

    header: list[str]
    rows: Iterator[tuple[int, dict[str | None, object]]]


@dataclass(frozen=True)
class ColumnMap:
    """The feed's column (or element) name for each ShopOrderState field. Matched ignoring case and
    surrounding spaces. The generic CSV defaults are the field names themselves."""

    mall_order_id: str = "mall_order_id"
    status: str = "status"
    shop_order_id: str = "shop_order_id"
    tracking_number: str = "tracking_number"
    tracking_url: str = "tracking_url"
    carrier: str = "carrier"
    delivered_at: str = "delivered_at"
    first_delivery_attempt: str = "first_delivery_attempt"
    location: str = "location"

    REQUIRED = ("mall_order_id", "status")
    DATES = ("delivered_at", "first_delivery_attempt")


# ---------------------------------------------------------------------------------------------
# Dates

_CZECH = re.compile(
    r"^(?P<d>\d{1,2})\.\s*(?P<m>\d{1,2})\.\s*(?P<y>\d{4})"
    r"(?:\s+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?)?$"
)
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")


def parse_shop_datetime(text: str, tz: tzinfo) -> datetime:
    """An aware datetime from a shop's date text; ValueError when it is none of the known formats.

    Accepted: ``YYYY-MM-DD HH:MM:SS`` (also ``HH:MM``), ISO 8601 with ``T`` and an optional offset
    or ``Z``, ``YYYY-MM-DD``, and Czech ``DD.MM.YYYY HH:MM[:SS]`` / ``D.M.YYYY``. Times without an
    offset are in ``tz`` (the shop's ``[shop] timezone``); a date alone means midnight there.
    """
    s = text.strip()
    try:
        m = _CZECH.match(s)
        if m:
            d = date(int(m["y"]), int(m["m"]), int(m["d"]))
            t = time(int(m["H"] or 0), int(m["M"] or 0), int(m["S"] or 0))
            return datetime.combine(d, t, tzinfo=tz)
        if _ISO.match(s):
            value = datetime.fromisoformat(s.replace(",", ".").replace("Z", "+00:00"))
            return value if value.tzinfo else value.replace(tzinfo=tz)
    except ValueError as e:  # right shape, impossible value (31.02., 25:00)
        raise ValueError(f"{text!r} is not a valid date: {e}") from None
    raise ValueError(f"{text!r} is not a date (use YYYY-MM-DD HH:MM:SS, ISO 8601 or DD.MM.YYYY HH:MM)")


# ---------------------------------------------------------------------------------------------
# Readers


def csv_records(stream: IO[bytes], *, source: str, encoding: str = "utf-8-sig") -> Records:
    """Read CSV from a binary stream. The header line is required; the delimiter (``,`` or ``;``)
    is taken from it. UTF-8 with or without a BOM by default; other encodings (cp1250) by name.
    Raises FeedUnavailable for an empty file or text that is not in ``encoding``."""
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    try:
        first = text.readline()
    except UnicodeDecodeError:
        raise _decode_error(stream, source, encoding) from None
    first = first.lstrip("\ufeff")  # a BOM even when the encoding is plain utf-8
    if not first.strip():
        raise FeedUnavailable(f"{source}: the file is empty; a header line naming the columns is required")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(itertools.chain([first], text), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as e:
        raise FeedUnavailable(f"{source}:1: cannot read the header line: {e}") from None
    return Records(header, _csv_rows(reader, header, source, lambda: _decode_error(stream, source, encoding)))


def _csv_rows(reader, header: list[str], source: str, decode_error) -> Iterator[tuple[int, dict]]:
    width = len(header)
    last = reader.line_num
    while True:
        start = last + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise decode_error() from None
        except csv.Error as e:
            raise FeedUnavailable(f"{source}:{start}: not valid CSV: {e}") from None
        last = reader.line_num
        if not any(v.strip() for v in values):  # blank lines, or ";;;" rows spreadsheets leave behind
            continue
        row: dict[str | None, object] = dict(zip(header, values))
        if len(values) > width:
            row[None] = values[width:]
        for name in header[len(values):]:
            row[name] = None
        yield start, row


def _decode_error(stream: IO[bytes], source: str, encoding: str) -> FeedUnavailable:
    """The error for text that is not in ``encoding``, naming the first bad line when the stream
    can be re-read (the text layer decodes in 8 KiB blocks, so it cannot tell the line itself)."""
    where = ""
    if stream.seekable():
        stream.seek(0)
        decoder = codecs.getincrementaldecoder(encoding)()
        for n, raw in enumerate(stream, 1):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError:
                where = f"{n}:"
                break
    hint = ""
    if codecs.lookup(encoding).name.startswith("utf"):
        hint = ' (Czech Windows files are usually cp1250: set encoding = "cp1250")'
    return FeedUnavailable(f"{source}:{where} the text is not {encoding}{hint}")


def xlsx_records(stream: IO[bytes], *, source: str, max_cells: int | None = None) -> Records:
    """Read the first sheet of an XLSX workbook (header in row 1) in openpyxl's streaming mode.

    Cells become text: whole numbers without ``.0`` (ids), dates as ``YYYY-MM-DD HH:MM:SS``.
    Raises FeedUnavailable when the file is not a readable workbook, FeedRefused past ``max_cells``
    cells (empty ones included: openpyxl pads every row to the sheet's width)."""
    import openpyxl  # only needed by XLSX feeds

    try:
        wb = openpyxl.load_workbook(stream, read_only=True, data_only=True)
        sheet = wb.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        first = next(rows, None)
    except Exception as e:  # noqa: BLE001 - zip, XML and openpyxl errors all mean "not a workbook"
        raise FeedUnavailable(f"{source}: not a readable XLSX workbook: {e.__class__.__name__}: {e}") from None
    if first is None or not any(_cell_text(c) for c in first):
        wb.close()
        raise FeedUnavailable(f"{source}: the first sheet is empty; row 1 must name the columns")
    header = [_cell_text(c) for c in first]
    return Records(header, _xlsx_rows(wb, rows, header, source, max_cells, len(first)))


def _xlsx_rows(wb, rows, header: list[str], source: str = "", max_cells: int | None = None,
               cells_read: int = 0) -> Iterator[tuple[int, dict]]:
    try:
        for line, values in enumerate(rows, start=2):
            cells_read += len(values)
            if max_cells is not None and cells_read > max_cells:
                raise FeedRefused(source, "max_xlsx_cells", max_cells, f"the sheet has more than {max_cells} cells")
            cells = [_cell_text(c) for c in values]
            if not any(c.strip() for c in cells):
                continue
            cells += [""] * (len(header) - len(cells))
            yield line, {name: cells[i] for i, name in enumerate(header) if name}
    finally:
        wb.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


# ---------------------------------------------------------------------------------------------
# Records -> FeedRead


def records_to_feed(
    records: Iterable[tuple[int, Mapping[str | None, object]]],
    *,
    columns: ColumnMap,
    tz: tzinfo,
    source: str,
    header: Sequence[str] | None = None,
) -> FeedRead:
    """Build the FeedRead from records ``(line_no, {column: text})``.

    ``header``, when given, is checked first: a missing required column (``mall_order_id``,
    ``status``) makes the whole feed unavailable. Unknown columns are ignored. A bad row (bad or
    missing id, missing status, unparsable date, wrong number of values) is reported and skipped.
    When an order appears twice the last row wins, and that is reported too.
    """
    wanted = {f.name: getattr(columns, f.name) for f in fields(columns)}
    if header is not None:
        lookup = _resolve(header, wanted, source)
    else:
        lookup = None
    by_id: dict[int, ShopOrderState] = {}
    problems: list[FeedProblem] = []
    for line, record in records:
        keys = lookup if lookup is not None else _resolve(list(k for k in record if k is not None), wanted, source, strict=False)
        try:
            state = _row_to_state(line, record, keys, tz)
        except ValueError as e:
            problems.append(FeedProblem(source, line, str(e)))
            continue
        previous = by_id.pop(state.mall_order_id, None)
        if previous is not None:
            problems.append(FeedProblem(source, line, f"order {state.mall_order_id} appears again (first at line "
                                                      f"{previous.line}); the last row counts"))
        by_id[state.mall_order_id] = state
    return FeedRead(rows=list(by_id.values()), problems=problems)


def _resolve(header: Sequence[str], wanted: dict[str, str], source: str, strict: bool = True) -> dict[str, str]:
    """field -> the header name actually used in the feed (case and spaces ignored)."""
    by_norm: dict[str, str] = {}
    for h in header:
        by_norm.setdefault(h.strip().lstrip("\ufeff").casefold(), h)
    out = {}
    for field_name, column in wanted.items():
        actual = by_norm.get(column.strip().casefold())
        if actual is not None:
            out[field_name] = actual
        elif strict and field_name in ColumnMap.REQUIRED:
            found = ", ".join(h for h in header if h) or "nothing"
            raise FeedUnavailable(f"{source}: the header has no column {column!r} (it is required; found: {found})")
    return out


def _row_to_state(line: int, record: Mapping[str | None, object], keys: dict[str, str], tz: tzinfo) -> ShopOrderState:
    extra = record.get(None)
    if extra:
        raise ValueError(f"{len(extra)} value(s) more than the header has columns (a stray delimiter or quote?)")
    if any(v is None for k, v in record.items() if k is not None):
        raise ValueError("fewer values than the header has columns (a missing delimiter or quote?)")

    def text(field_name: str) -> str | None:
        column = keys.get(field_name)
        value = record.get(column) if column is not None else None
        value = str(value).strip() if value is not None else ""
        return value or None

    raw_id = text("mall_order_id")
    if raw_id is None:
        raise ValueError("mall_order_id is empty")
    if not re.fullmatch(r"[0-9]+", raw_id) or int(raw_id) <= 0:
        raise ValueError(f"mall_order_id {raw_id!r} is not a positive whole number")
    status = text("status")
    if status is None:
        raise ValueError(f"order {raw_id}: status is empty")
    dates = {}
    for name in ColumnMap.DATES:
        raw = text(name)
        try:
            dates[name] = parse_shop_datetime(raw, tz) if raw else None
        except ValueError as e:
            raise ValueError(f"order {raw_id}: {name}: {e}") from None
    return ShopOrderState(
        mall_order_id=int(raw_id),
        status=status,
        shop_order_id=text("shop_order_id"),
        tracking_number=text("tracking_number"),
        tracking_url=text("tracking_url"),
        carrier=text("carrier"),
        location=text("location"),
        line=line,
        **dates,
    )
