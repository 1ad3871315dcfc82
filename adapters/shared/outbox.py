"""Handing MALL's data to the shop as CSV files in an outbox folder, exactly once.

The two steps match the ledger's handoff states (docs/architecture.md):

1. ``stage`` writes ``<outbox>/.<name>.csv.tmp`` completely, fsyncs it and the folder. A hidden
   name, so the shop's importer (which takes ``*.csv``) never sees a half-written file.
2. ``publish`` renames it to ``<outbox>/<name>.csv`` with ``os.replace`` (atomic) and fsyncs the
   folder. No temp file means the rename already happened: it answers False.
3. The published file is checked: a regular file of ours with ``outbox_mode`` and ``outbox_group``.
   A mismatch is a HandoffError (the core then does not confirm on MALL and retries later).

The shop's import user can write the outbox folder, so it can plant symlinks at any name we use.
No file is ever opened by name: the content goes into a ``mkstemp`` file (O_EXCL, random name),
gets its group and mode by ``fchown``/``fchmod`` whatever the umask, and is renamed onto the
hidden name; ``rename`` replaces a planted link instead of writing through it (connector/files.py).

Files are comma-separated UTF-8 with a header. Spreadsheet formula injection: a text cell that
starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return is written with a leading apostrophe
(``'=HYPERLINK(...)``), so a spreadsheet shows it as text instead of running it. Customer names,
addresses and item titles come from MALL's customers, so they are untrusted. Exception: a value
that is only a signed number with spaces (phone ``+420 777 123 456``) cannot be a harmful formula
and is written unchanged, so shops import phone numbers intact. Numeric columns are written from
numbers and never guarded.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from adapters.base import HandoffError, HandoffKind, MallChange, NewOrder
from connector.files import FileMode, FilePermissionError, check_published, fsync_dir, write_new_file
from connector.safety import formula_safe

ORDER_COLUMNS = (
    "mall_order_id", "purchase_id", "status", "shop_status", "created_at", "ship_date", "delivery_date",
    "customer_name", "company", "street", "city", "zip", "country", "phone", "email", "delivery_method",
    "branch_id", "payment_type", "cod", "delivery_price", "currency",
    "item_id", "article_id", "title", "quantity", "price", "vat",
)
CHANGE_COLUMNS = ("mall_order_id", "mall_status", "shop_status", "changed_at", "branch_id", "note")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# One formula guard for every CSV and XLSX the connector writes (issue 16): the outbox uses it too.
safe_cell = formula_safe


def _num(value: int | float | None) -> str:
    """Numbers as plain text: 3, 1299.9 (no 3.0, no exponent for prices)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return format(value, "f").rstrip("0").rstrip(".")
    return str(value)


def order_rows(order: NewOrder) -> Iterable[list[str]]:
    """One row per item; an order without items still gets one row (empty item columns)."""
    t = safe_cell
    head = [
        _num(order.mall_order_id), _num(order.purchase_id), t(order.status), t(order.shop_status),
        t(order.created_at), t(order.ship_date), t(order.delivery_date),
        t(order.customer_name), t(order.company), t(order.street), t(order.city), t(order.zip), t(order.country),
        t(order.phone), t(order.email), t(order.delivery_method), _num(order.branch_id), t(order.payment_type),
        _num(order.cod), _num(order.delivery_price), t(order.currency),
    ]
    if not order.items:
        yield head + [""] * 6
    for item in order.items:
        yield head + [t(item.item_id), _num(item.article_id), t(item.title), _num(item.quantity),
                      _num(item.price), _num(item.vat)]


def change_row(change: MallChange) -> list[str]:
    t = safe_cell
    return [_num(change.mall_order_id), t(change.mall_status), t(change.shop_status), t(change.changed_at),
            _num(change.branch_id), t(change.note)]


class Outbox:
    """The shop's inbox folder, written in two steps (stage, publish). Created when missing.

    ``mode`` / ``group``: what every published file gets ("0640" and the folder's group by default,
    so a setgid folder shared with the shop's import user works)."""

    def __init__(self, folder: str | os.PathLike, *, mode: int = 0o640, group: str | int | None = None):
        self.folder = Path(folder)
        self.file_mode = FileMode(mode, group)

    def temp_path(self, name: str) -> Path:
        return self.folder / f".{_check_name(name)}.csv.tmp"

    def final_path(self, name: str) -> Path:
        return self.folder / f"{_check_name(name)}.csv"

    def stage(self, name: str, kind: HandoffKind, records: Sequence[NewOrder] | Sequence[MallChange]) -> Path:
        """Write the batch under its hidden temp name, complete and fsynced. Rewrites it if present.

        Raises HandoffError when the folder or file cannot be written (retried later by the core)."""
        if kind == "orders":
            columns, expected = ORDER_COLUMNS, NewOrder
        elif kind == "changes":
            columns, expected = CHANGE_COLUMNS, MallChange
        else:
            raise ValueError(f"unknown handoff kind {kind!r} (orders or changes)")
        for r in records:
            if not isinstance(r, expected):
                raise ValueError(f"a {kind} handoff takes {expected.__name__} records, got {type(r).__name__}")
        temp = self.temp_path(name)

        def write(binary) -> None:
            import io

            text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
            writer = csv.writer(text)
            writer.writerow(columns)
            for r in records:
                if kind == "orders":
                    writer.writerows(order_rows(r))
                else:
                    writer.writerow(change_row(r))
            text.flush()
            text.detach()

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fresh = write_new_file(self.folder, write, self.file_mode, prefix=f".{name}.", suffix=".new")
            os.replace(fresh, temp)  # replaces whatever sits at the temp name (a planted symlink too)
            # The ledger says "staged" next; the temp file's directory entry must survive a crash,
            # or a restart would take its absence for "already published".
            fsync_dir(self.folder)
        except KeyError as e:
            raise HandoffError(f"cannot write {temp}: outbox_group {e.args[0]!r} does not exist") from None
        except OSError as e:
            raise HandoffError(f"cannot write {temp}: {e.strerror or e}") from None
        return temp

    def publish(self, name: str) -> bool:
        """Rename the staged batch to its final name (atomic). False when nothing is staged under
        ``name`` (it was already published). Raises HandoffError."""
        temp, final = self.temp_path(name), self.final_path(name)
        try:
            os.replace(temp, final)
        except FileNotFoundError:
            # Renamed before a crash or a failed check: a file still there must pass the check now.
            if os.path.lexists(final):
                self._check(final)
            return False
        except OSError as e:
            raise HandoffError(f"cannot rename {temp} to {final.name}: {e.strerror or e}") from None
        try:
            fsync_dir(self.folder)
        except OSError as e:
            raise HandoffError(f"cannot sync folder {self.folder}: {e.strerror or e}") from None
        self._check(final)
        return True

    def _check(self, final: Path) -> None:
        try:
            check_published(final, self.file_mode, self.folder)
        except KeyError as e:
            raise HandoffError(f"cannot check {final}: outbox_group {e.args[0]!r} does not exist") from None
        except FilePermissionError as e:
            raise HandoffError(str(e)) from None
        except OSError as e:
            raise HandoffError(f"cannot check {final}: {e.strerror or e}") from None


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"handoff name {name!r} must be a plain file name (letters, digits, . _ -)")
    return name

