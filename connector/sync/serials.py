"""Serial numbers of order items: read the shop's serials source and send each item's list to MALL once.

``[shop.generic_csv] serials`` is a CSV of ``mall_order_id,item_id,serial_number`` (one row per serial number). Each
item's list is sent with ``PUT /v1/orders/{id}/items/{itemId}/serial-numbers`` once; when the list in the file
changes, the new list is sent. Setting a list is idempotent, so an ambiguous failure is simply tried again. An
unknown order or item (MALL's 404) fails that item with the reason; the others go on. Items that disappear from
the file are left as MALL has them.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from connector.ledger import labels as q
from connector.mall.errors import (
    MallError,
    MallNotFound,
    MallRateLimited,
    MallUnauthorized,
    MallValidationError,
)

log = logging.getLogger("mall_connector.serials")

KV_FINGERPRINT = "serials_fingerprint"
MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 500_000
MAX_CELL = 100
MAX_PER_ITEM = 1000
PER_PASS = 1000  # PUTs per pass at most; the rest waits for the next pass
COLUMNS = ("mall_order_id", "item_id", "serial_number")


@dataclass
class SerialsRead:
    wanted: dict[tuple[int, str], list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_serials(path: Path, encoding: str = "utf-8-sig") -> SerialsRead:
    """Parse the serials CSV within bounds; a bad row is reported with file and line and skipped."""
    out = SerialsRead()
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"{path}: {size} bytes is more than the {MAX_BYTES} allowed for a serials file")
    with open(path, "rb") as f:
        text = f.read(MAX_BYTES + 1).decode(encoding, errors="strict")
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


def after_push(engine, result) -> None:
    """Read the serials source when it changed and send what is pending; contained like the labels."""
    source = getattr(engine.config.shop.generic_csv, "serials", None)
    if not source or engine.config.shop.adapter != "generic_csv":
        return
    try:
        _note_source(engine, Path(source))
        result.serials_sent = getattr(result, "serials_sent", 0) + send_pending(engine.ledger, engine.client,
                                                                               engine.config)
    except MallUnauthorized:
        raise
    except Exception:  # noqa: BLE001 - serial numbers must never stop the status sync
        log.exception("serial numbers failed; the next pass tries again")


def _note_source(engine, path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        log.warning("serials file %s does not exist (yet)", path)
        return
    fingerprint = f"{st.st_mtime_ns}:{st.st_size}"
    if engine.ledger.get_kv(KV_FINGERPRINT) == fingerprint:
        return
    try:
        read = read_serials(path, engine.config.shop.generic_csv.encoding)
    except (ValueError, UnicodeDecodeError, OSError) as e:
        log.warning("serials file unreadable: %s", e)
        return
    for p in read.problems:
        log.warning("serials: %s (row skipped)", p)
    q.record_serials(engine.ledger, read.wanted)
    engine.ledger.set_kv(KV_FINGERPRINT, fingerprint)


def send_pending(ledger, client, config) -> int:
    """PUT each pending item's list; the number MALL accepted."""
    sent = 0
    for row in q.serials_in(ledger, ("pending",), limit=PER_PASS):
        oid, item = row.mall_order_id, row.item_id
        try:
            client.set_serial_numbers(oid, item, row.wanted)
        except MallNotFound as e:
            _fail(ledger, row, f"MALL does not know order {oid} item {item!r} (404): {e.message or 'not found'}; "
                               "check the serials file")
            continue
        except MallValidationError as e:
            _fail(ledger, row, f"MALL refused the serial numbers: {e.message or e}")
            continue
        except MallUnauthorized:
            raise
        except MallRateLimited as e:
            _later(ledger, row, str(e), config)
            break
        except MallError as e:  # a PUT of the whole list is safe to repeat, even after an ambiguous failure
            _later(ledger, row, str(e), config)
            continue
        with ledger.write() as c:
            q.update_serial(c, oid, item, state="done", sent=row.wanted, reason=None)
            ledger.add_event(c, oid, "serials", f"serial numbers of item {item} sent: {', '.join(row.wanted)}")
        sent += 1
    return sent


def _fail(ledger, row, reason: str) -> None:
    with ledger.write() as c:
        q.update_serial(c, row.mall_order_id, row.item_id, state="failed", reason=reason)
        ledger.add_event(c, row.mall_order_id, "failed", reason)
    log.warning("order %s: %s", row.mall_order_id, reason, extra={"order_id": row.mall_order_id, "reason": reason})


def _later(ledger, row, error: str, config) -> None:
    attempts = row.attempts + 1
    if attempts >= config.sync.max_attempts:
        _fail(ledger, row, f"gave up after {attempts} attempts: {error}")
        return
    with ledger.write() as c:
        q.update_serial(c, row.mall_order_id, row.item_id, attempts=attempts, reason=error[:2000])
