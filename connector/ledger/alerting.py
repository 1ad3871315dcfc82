"""Ledger queries behind the alert rules (issue 14): the feed's health, unmapped shop statuses,
failed or quarantined items, orders near MALL's 24-hour limit.

Kept out of repo.py on purpose (the core is splitting it into repositories). Each function is one
short read, or one short write; none runs on a hot path (they run once per job, after it).

``failed_items`` is THE one place the "change failed / item quarantined" rule reads from: point
it at the core's quarantine query when that lands, and every alert about it follows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Sequence

from sqlalchemy import func, select

from connector.ledger import schema as s

FEED_STATE_KV = "shop_feed_state"  # JSON: the outcome of the last poll that got an answer (see FeedState)
FEED_FAILURES_KV = "shop_feed_failures"  # polls in a row the feed could not be read (outbound keeps it)
MAX_STORED_PROBLEMS = 200  # rejected rows kept for the alert's examples: a pointer, not a copy of the feed

FEED_OK, FEED_UNREADABLE, FEED_UNUSABLE = "ok", "unreadable", "unusable"


@dataclass(frozen=True)
class FeedState:
    """The feed's health. ``state`` is the verdict of the last read: ok, or unusable (read, but a required
    column is missing or no order rows while there were some: exit 65). Whether the feed is unreadable
    right now (missing, HTTP error, refused XML: exit 66) is ``feed_failures`` > 0 (the outbound engine
    counts the polls in a row); ``last_error`` is the message of the latest such failure."""

    state: str = FEED_OK
    message: str = ""
    rows: int = 0
    last_rows: int = 0  # order rows of the last read that had some ("empty when it had orders before")
    problems: tuple[dict, ...] = ()  # {"kind", "source", "line", "message"}, at most MAX_STORED_PROBLEMS
    problem_counts: dict | None = None  # kind -> how many rows of that kind were rejected
    last_error: str | None = None


def read_feed_state(ledger) -> FeedState:
    return _parse_feed_state(ledger.kv.get(FEED_STATE_KV))


def _parse_feed_state(raw: str | None) -> FeedState:
    if not raw:
        return FeedState()
    try:
        d = json.loads(raw)
        return FeedState(state=d.get("state", FEED_OK), message=d.get("message", ""), rows=int(d.get("rows", 0)),
                         last_rows=int(d.get("last_rows", 0)), problems=tuple(d.get("problems", ())),
                         problem_counts=d.get("problem_counts") or {}, last_error=d.get("last_error"))
    except (ValueError, TypeError, AttributeError):
        return FeedState()


def _dump(state: FeedState) -> str:
    return json.dumps({
        "state": state.state, "message": state.message, "rows": state.rows, "last_rows": state.last_rows,
        "problems": list(state.problems), "problem_counts": state.problem_counts or {},
        "last_error": state.last_error,
    }, ensure_ascii=False, sort_keys=True)


def _store(ledger, raw_before: str | None, state: FeedState) -> FeedState:
    """Write the state only when it changed: a poll of the same feed costs one read, no write."""
    text = _dump(state)
    if text != raw_before:
        with ledger.write() as c:
            ledger.kv.set(c, FEED_STATE_KV, text)
    return state


def store_feed_state(ledger, text: str, conn) -> None:
    """Write a state from ``judge_feed_read`` in the caller's transaction (with the feed's fingerprint)."""
    ledger.kv.set(conn, FEED_STATE_KV, text)


def record_feed_failure(ledger, status: str, message: str) -> FeedState:
    """The feed failed this poll. ``status`` unusable (a required column missing: a verdict on what was
    read) or unreadable (nothing was read: the last read's verdict and rejected rows stay)."""
    raw = ledger.kv.get(FEED_STATE_KV)
    old = _parse_feed_state(raw)
    if status == FEED_UNUSABLE:
        new = replace(old, state=FEED_UNUSABLE, message=message, rows=0, problems=(), problem_counts={},
                      last_error=None)
    else:
        new = replace(old, last_error=message)
    return _store(ledger, raw, new)


def judge_feed_read(ledger, *, rows: int, problems: Sequence[Any], label: str) -> tuple[FeedState, str | None]:
    """A feed that was read and parsed: its state, and the text to store (None: unchanged, nothing to write).

    Unusable when it has no order rows while the previous successful read had some (a half-exported or
    truncated feed must not look like "no orders")."""
    raw = ledger.kv.get(FEED_STATE_KV)
    old = _parse_feed_state(raw)
    counts: dict[str, int] = {}
    stored = []
    for p in problems:
        kind = getattr(p, "kind", "bad_row")
        counts[kind] = counts.get(kind, 0) + 1
        if len(stored) < MAX_STORED_PROBLEMS:
            stored.append({"kind": kind, "source": p.source, "line": p.line, "message": p.message})
    if rows == 0 and old.last_rows > 0:
        state = FeedState(state=FEED_UNUSABLE, rows=0, last_rows=old.last_rows, problems=tuple(stored),
                          problem_counts=counts,
                          message=f"{label}: no order rows, while the previous read had {old.last_rows}; "
                                  "an empty or cut-off export? (orders that leave the feed are not changed)")
    else:
        state = FeedState(state=FEED_OK, rows=rows, last_rows=rows or old.last_rows, problems=tuple(stored),
                          problem_counts=counts)
    text = _dump(state)
    return state, (text if text != raw else None)


def feed_failures(ledger) -> int:
    return int(ledger.kv.get(FEED_FAILURES_KV) or 0)


# -- hand-offs ----------------------------------------------------------------------------------
HANDOFF_ERROR_KV = "handoff_last_error"


def record_handoff_error(ledger, message: str) -> None:
    with ledger.write() as c:
        ledger.kv.set(c, HANDOFF_ERROR_KV, message[:1000])


def last_handoff_error(ledger) -> str | None:
    return ledger.kv.get(HANDOFF_ERROR_KV)


# -- unmapped shop statuses --------------------------------------------------------------------------
@dataclass(frozen=True)
class UnmappedStatus:
    status: str  # as the feed writes it (the most recent spelling seen)
    orders: int
    example_order: int


#: MALL statuses of orders that can still move (by index ix_orders_mall_status; NULL: not read from MALL yet).
#: Closed orders are left out: their number grows with the ledger's age, and they need nothing pushed.
ACTIVE_STATUSES = ("blocked", "open", "shipping", "shipped")


def _active(o):
    return o.mall_status.in_(ACTIVE_STATUSES) | o.mall_status.is_(None)


def shop_status_counts(ledger, *, account: str | None = None,
                       not_accounts: tuple[str, ...] = ()) -> list[tuple[str, int, int]]:
    """(shop status, active orders with it now, smallest order id) for every shop status of active orders;
    issue 18: only ``account``'s orders, or not those of ``not_accounts`` (the accounts with their own mapping)."""
    o = s.orders.c
    where = [_active(o), o.shop_status.is_not(None)]
    if account is not None:
        where.append(o.account == account)
    if not_accounts:
        where.append(o.account.not_in(list(not_accounts)))
    with ledger.read() as c:
        rows = c.execute(select(o.shop_status, func.count(), func.min(o.mall_order_id))
                         .where(*where).group_by(o.shop_status)).all()
    return [(st, n, ex) for st, n, ex in rows]


def unmapped_statuses(ledger, mapping, *, account: str | None = None,
                      not_accounts: tuple[str, ...] = ()) -> list[UnmappedStatus]:
    """Shop statuses that orders have now and that the mapping in force neither maps nor ignores.

    Read against the current mapping, so adding the line resolves the alert on the next evaluation.
    ``account`` / ``not_accounts``: as in ``shop_status_counts`` (issue 18, a mapping per account)."""
    grouped: dict[str, list] = {}
    for status, n, example in shop_status_counts(ledger, account=account, not_accounts=not_accounts):
        if mapping.lookup(status).kind != "unmapped":
            continue
        key = " ".join(status.split()).casefold()
        g = grouped.setdefault(key, [status, 0, example])
        g[1] += n
        g[2] = min(g[2], example)
    return [UnmappedStatus(st, n, ex) for st, n, ex in sorted(grouped.values(), key=lambda g: g[0])]


# -- failed or quarantined items -----------------------------------------------------------------
@dataclass(frozen=True)
class FailedItem:
    """Something the connector gave up on and a human must look at (one row of the core's quarantine)."""

    kind: str  # connector.ledger.types.ItemKind: change, inbox, handoff, confirm
    id: int
    mall_order_id: int | None
    reason: str
    detail: str  # e.g. "shop status 'Expedována' → MALL shipped", or what failed ("reading the order from MALL")
    fix: str  # the command that retries or clears it

    @property
    def alert_key(self) -> str:
        # change_failed:{id} is the key the first release used: existing open alerts keep their identity.
        return f"change_failed:{self.id}" if self.kind == "change" else f"change_failed:{self.kind}:{self.id}"


def failed_items(ledger) -> list[FailedItem]:
    """Every failed or quarantined item, read from the core's ``ledger.failed_items()`` (the one query of the
    quarantine): the one source of the "change failed / item quarantined" alert rule."""
    from connector.ledger.types import ItemKind

    out = []
    for item in ledger.failed_items():
        orders = item.mall_order_ids
        if item.kind == ItemKind.CHANGE:
            fix = f"mall-connector ledger retry {item.id} (or: ledger skip {item.id} --reason ...)"
        else:
            fix = f"mall-connector ledger retry {item.ref}"
        detail = item.what + (f", orders {', '.join(str(o) for o in orders)}" if len(orders) > 1 else "")
        out.append(FailedItem(kind=str(item.kind), id=item.id, mall_order_id=orders[0] if orders else None,
                              reason=item.reason or "failed", detail=detail, fix=fix))
    return out


# -- orders near MALL's 24-hour limit ------------------------------------------------------------
def open_deadline_items(ledger) -> list[dict]:
    """Open needs-action items of kind ``deadline``: id, mall_order_id, message and the order's snapshot
    (the alert rule reads MALL's ``open`` time from it)."""
    a, o = s.actions.c, s.orders.c
    with ledger.read() as c:
        rows = c.execute(select(a.id, a.mall_order_id, a.message, o.snapshot)
                         .select_from(s.actions.outerjoin(s.orders, o.mall_order_id == a.mall_order_id))
                         .where(a.kind == "deadline", a.done_at.is_(None)).order_by(a.id)).all()
    return [{"id": r.id, "mall_order_id": r.mall_order_id, "message": r.message, "snapshot": r.snapshot}
            for r in rows]


# -- orders held by a status the mapping did not know -------------------------------------------
FEED_FINGERPRINT_KV = "shop_feed_fingerprint"  # the outbound engine's "feed unchanged since" marker


def replay_remapped(ledger, mapping) -> list[int]:
    """Active orders whose shop status was unmapped when last seen and that the mapping in force now maps:
    forget their last-seen row (and the feed's fingerprint), so the next poll records them again and they move.

    Without this, adding the missing line resolves the alert but the orders behind it never move: the
    feed row is unchanged, so the poll never looks at it again. Each order is replayed once (its row is
    re-recorded, which makes ``shop_seen_at`` newer than the unmapped change)."""
    o, ch = s.orders.c, s.changes.c
    with ledger.read() as c:
        orders = c.execute(select(o.mall_order_id, o.shop_status, o.shop_seen_at)
                           .where(_active(o), o.shop_status.is_not(None), o.shop_fingerprint.is_not(None))).all()
        candidates = {f"shop:{oid}:unmapped:{status.strip().casefold()}": (oid, seen)
                      for oid, status, seen in orders if mapping.lookup(status).kind == "mapped"}
        replay = []
        keys = list(candidates)
        for i in range(0, len(keys), 500):
            for key, created in c.execute(select(ch.key, ch.created_at).where(
                    ch.key.in_(keys[i:i + 500]), ch.state == "skipped", ch.target_status.is_(None))):
                oid, seen = candidates[key]
                if seen is not None and seen <= created:  # not re-recorded since the status was unmapped
                    replay.append(oid)
    if not replay:
        return []
    from sqlalchemy import update

    replay.sort()
    with ledger.write() as c:
        for i in range(0, len(replay), 500):
            c.execute(update(s.orders).where(s.orders.c.mall_order_id.in_(replay[i:i + 500]))
                      .values(shop_fingerprint=None))
        ledger.kv.set(c, FEED_FINGERPRINT_KV, None)
    return replay
