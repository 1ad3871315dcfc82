"""Serial numbers of order items: take the shop's serial numbers and send each item's list to MALL once.

The adapter reads its shop's serials source (``read_serials``, an optional capability; the generic CSV adapter
reads ``[shop.generic_csv] serials``, docs/mdp.md). Each item's list is sent with
``PUT /v1/orders/{id}/items/{itemId}/serial-numbers`` once; when the list changes, the new list is sent. Setting a
list is idempotent, so an ambiguous failure is simply tried again. An unknown order or item (MALL's 404) fails
that item with the reason; the others go on. Items that disappear from the source are left as MALL has them.
"""

from __future__ import annotations

import logging

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
PER_PASS = 1000  # PUTs per pass at most; the rest waits for the next pass


def after_push(engine, result) -> None:
    """Read the serials source when it changed and send what is pending; contained like the labels."""
    read = getattr(engine.adapter, "read_serials", None)
    try:
        if read is not None:
            _note_source(engine, read)
        result.serials_sent = getattr(result, "serials_sent", 0) + send_pending(engine.ledger, engine.client,
                                                                               engine.config)
    except MallUnauthorized:
        raise
    except Exception:  # noqa: BLE001 - serial numbers must never stop the status sync
        log.exception("serial numbers failed; the next pass tries again")


def _note_source(engine, read) -> None:
    try:
        got = read(previous_fingerprint=engine.ledger.get_kv(KV_FINGERPRINT))
    except ValueError as e:
        log.warning("serials source unreadable: %s", e)
        return
    if got is None or got.unchanged:
        return
    for p in got.problems:
        log.warning("serials: %s (row skipped)", p)
    q.record_serials(engine.ledger, got.wanted)
    if got.fingerprint is not None:
        engine.ledger.set_kv(KV_FINGERPRINT, got.fingerprint)

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
