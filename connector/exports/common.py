"""Shared bits of the partner exports: output files, XLSX sheets, sorting, money.

The exports are read by people in Excel (warehouse staff, whoever sends MALL the billing file), so
every sheet gets a bold, frozen header row and sensible column widths, and money is an exact number.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence
from zoneinfo import ZoneInfo

from connector.safety import cell_value, write_replacing

PRAGUE = ZoneInfo("Europe/Prague")  # MALL's timestamps are Prague local time
CENT = Decimal("0.01")
MONEY_FORMAT = "#,##0.00"


class OutputError(ValueError):
    """The output path cannot be used; the message says why (shown as a bad -o value)."""


def money(value: Decimal | int | str | None) -> Decimal:
    """An exact amount rounded to cents (half up, as invoices do). None counts as 0."""
    return Decimal(value if value is not None else 0).quantize(CENT, rounding=ROUND_HALF_UP)


def natural_key(text: str | None) -> tuple:
    """Sort key that puts "A-2" before "A-10" (warehouse locations and product codes mix digits and text)."""
    parts = re.split(r"(\d+)", (text or "").strip().casefold())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


def output_kind(path: Path, allowed: Sequence[str]) -> str:
    """The file type ("xlsx", "csv") from the suffix, after checking the file can be written there.

    Checked before any work is done, so a typo in -o fails in a second rather than after reading
    the whole ledger.
    """
    if path.is_dir():
        raise OutputError(f"{str(path)!r} is a folder; give a file name")
    kind = path.suffix.lower().lstrip(".")
    if kind not in allowed:
        wanted = " or ".join(f".{a}" for a in allowed)
        raise OutputError(f"{str(path)!r} must end in {wanted} (the suffix decides the file type)")
    folder = path.parent if str(path.parent) else Path(".")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{str(folder)!r} is a file, not a folder")
    if not folder.is_dir():
        raise OutputError(f"folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"{str(path)!r} is not writable (check the folder's permissions)")
    return kind


#: Exports hold customer names and addresses: private unless the partner asks (``--mode``).
EXPORT_MODE = 0o600


def write_atomically(path: Path, write: Callable[[BinaryIO], None], *, mode: int = EXPORT_MODE) -> None:
    """Write through a temp file in the same folder and rename it: a crash never leaves half a file
    where someone (or a mail script) would pick it up. ``write`` gets the open temp file (binary);
    it is created symlink-safe with ``mode`` whatever the umask (``connector.safety.write_replacing``)."""
    write_replacing(path, write, mode=mode)


def prague_date(dt: datetime | None) -> date | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        return dt.date()
    return dt.astimezone(PRAGUE).date()


@dataclass(frozen=True)
class Column:
    """One XLSX column: header, width in characters, and a number format for its cells (or None)."""

    header: str
    width: float = 14
    number_format: str | None = None


def add_sheet(wb: Any, title: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]],
              *, tail: Sequence[Sequence[Any]] = ()) -> None:
    """A write-only sheet: bold frozen header, widths, number formats; ``tail`` rows follow after a
    blank row (totals, warnings), with their first cell in bold."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    for i, col in enumerate(columns, 1):  # write-only sheets take widths and panes before the first row
        ws.column_dimensions[get_column_letter(i)].width = col.width
    ws.freeze_panes = "A2"
    bold = Font(bold=True)

    def cell(value: Any, fmt: str | None, font: Any = None) -> Any:
        value = cell_value(value)
        c = WriteOnlyCell(ws, value=value)
        if isinstance(value, str):
            c.data_type = "s"  # text is a string cell, never a formula (openpyxl makes "=..." a formula)
        if fmt and isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            c.number_format = fmt
        if font is not None:
            c.font = font
        return c

    ws.append([cell(col.header, None, bold) for col in columns])
    for row in rows:
        ws.append([cell(v, col.number_format) for v, col in zip(row, columns)])
    if tail:
        ws.append([])
        for row in tail:
            ws.append([cell(v, col.number_format, bold if i == 0 else None)
                       for i, (v, col) in enumerate(zip(row, columns))])
