"""The generic CSV adapter's serials source: ``mall_order_id,item_id,serial_number``, one row per serial number.

Only speaks the file (docs/mdp.md): the sync layer (connector/sync/serials.py) decides what to send. Bounded in
bytes, rows, cell length and serial numbers per item; a bad row is reported with file and line and skipped.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from adapters.base import SerialsRead

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 500_000
MAX_CELL = 100
MAX_PER_ITEM = 1000
COLUMNS = ("mall_order_id", "item_id", "serial_number")


def read_serials_file(path: Path, encoding: str = "utf-8-sig", *, previous_fingerprint: str | None = None) -> SerialsRead:
    """Parse the serials CSV within bounds. A file whose size and mtime match ``previous_fingerprint`` is not
    read again (``unchanged``). Raises ValueError naming the file when it cannot be used at all."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ValueError(f"{path}: the serials file does not exist (yet)") from None
    fingerprint = f"{st.st_mtime_ns}:{st.st_size}"
    if fingerprint == previous_fingerprint:
        return SerialsRead(unchanged=True, fingerprint=fingerprint)
    out = SerialsRead(fingerprint=fingerprint)
    if st.st_size > MAX_BYTES:
        raise ValueError(f"{path}: {st.st_size} bytes is more than the {MAX_BYTES} allowed for a serials file")
    with open(path, "rb") as f:
        try:
            text = f.read(MAX_BYTES + 1).decode(encoding, errors="strict")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not {encoding} text ({e.reason} at byte {e.start})") from None
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return out
    names = [h.strip().lstrip("\ufeff").casefold() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise ValueError(f"{path}: the header has no column {', '.join(missing)} (needed: {', '.join(COLUMNS)})")
    at = {c: names.index(c) for c in COLUMNS}
    for n, row in enumerate(reader, start=2):
        if n > MAX_ROWS + 1:
            out.problems.append(f"{path}:{n}: more than {MAX_ROWS} rows; the rest is ignored")
            break
        if not any(cell.strip() for cell in row):
            continue
        try:
            oid_text, item, serial = (row[at[c]].strip() for c in COLUMNS)
        except IndexError:
            out.problems.append(f"{path}:{n}: fewer values than the header has columns")
            continue
        if not re.fullmatch(r"[0-9]{1,18}", oid_text) or int(oid_text) <= 0:
            out.problems.append(f"{path}:{n}: mall_order_id {oid_text[:20]!r} is not a positive whole number")
            continue
        if not item or len(item) > MAX_CELL or not serial or len(serial) > MAX_CELL:
            out.problems.append(f"{path}:{n}: item_id and serial_number must be 1 to {MAX_CELL} characters")
            continue
        serials = out.wanted.setdefault((int(oid_text), item), [])
        if serial not in serials:
            if len(serials) >= MAX_PER_ITEM:
                out.problems.append(f"{path}:{n}: more than {MAX_PER_ITEM} serial numbers for one item")
                continue
            serials.append(serial)
    return out
