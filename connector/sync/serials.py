"""Serial numbers of order items: take the shop's serial numbers and send each item's list to MALL once.

The adapter reads its shop's serials source (``read_serials``, an optional capability; the generic CSV adapter
reads ``[shop.generic_csv] serials``, docs/mdp.md). Each item's list is sent with
``PUT /v1/orders/{id}/items/{itemId}/serial-numbers`` once; when the list changes, the new list is sent. Setting a
list is idempotent, so an ambiguous failure is simply tried again. An unknown order or item (MALL's 404) fails
that item with the reason; the others go on. Items that disappear from the source are left as MALL has them.
"""

from __future__ import annotations

import logging

from connector.ledger.types import EventKind, SerialState
from connector.sync.policy import Kind, Op, after_failure, outcome_for

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
    except Exception as e:  # noqa: BLE001 - serial numbers must never stop the status sync; only a 401/403 does
        if outcome_for(Op.SERIALS, e).kind == Kind.STOP:
            raise
        log.exception("serial numbers failed; the next pass tries again")


def _note_source(engine, read) -> None:
    ledger = engine.ledger
    try:
        got = read(previous_fingerprint=ledger.kv.get(KV_FINGERPRINT))
    except ValueError as e:
        log.warning("serials source unreadable: %s", e)
        return
    if got is None or got.unchanged:
        return
    for p in got.problems:
        log.warning("serials: %s (row skipped)", p)
    with ledger.write() as c:
        ledger.mdp.record_serials(c, got.wanted)
        if got.fingerprint is not None:
            ledger.kv.set(c, KV_FINGERPRINT, got.fingerprint)


def send_pending(ledger, client, config) -> int:
    """PUT each pending item's list; the number MALL accepted. What a failure means is the policy's (Op.SERIALS)."""
    sent = 0
    for row in ledger.mdp.serials_in((SerialState.PENDING,), limit=PER_PASS):
        oid, item = row.mall_order_id, row.item_id
        try:
            client.set_serial_numbers(oid, item, row.wanted)
        except Exception as e:  # noqa: BLE001 - contained per item
            outcome = outcome_for(Op.SERIALS, e)
            if outcome.kind == Kind.STOP:
                raise
            if outcome.kind == Kind.FAIL:
                _fail(ledger, row, f"order {oid} item {item!r}: {outcome.reason}")
                continue
            _later(ledger, row, outcome, config)  # a PUT of the whole list is safe to repeat
            if outcome.end_pass:
                break
            continue
        with ledger.write() as c:
            ledger.mdp.update_serial(c, oid, item, state=SerialState.DONE, sent=row.wanted, reason=None)
            ledger.orders.add_event(c, oid, EventKind.SERIALS,
                                    f"serial numbers of item {item} sent: {', '.join(row.wanted)}")
        sent += 1
    return sent


def _fail(ledger, row, reason: str) -> None:
    with ledger.write() as c:
        ledger.mdp.update_serial(c, row.mall_order_id, row.item_id, state=SerialState.FAILED, reason=reason)
        ledger.orders.add_event(c, row.mall_order_id, EventKind.FAILED, reason)
    log.warning("order %s: %s", row.mall_order_id, reason, extra={"order_id": row.mall_order_id, "reason": reason})


def _later(ledger, row, outcome, config) -> None:
    sync = config.sync
    d = after_failure(outcome, row.attempts + 1, max_attempts=sync.max_attempts, retry_base_s=sync.retry_base_s,
                      retry_max_s=sync.retry_max_s)
    if d.quarantine:
        _fail(ledger, row, d.reason)
        return
    with ledger.write() as c:
        ledger.mdp.update_serial(c, row.mall_order_id, row.item_id, attempts=d.attempts, reason=d.reason)
