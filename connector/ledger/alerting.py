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
from connector.ledger.repo import utcnow

FEED_STATE_KV = "shop_feed_state"  # JSON: the outcome of the last poll that got an answer (see FeedState)
FEED_ROWS_KV = "shop_feed_rows"  # order rows of the last successful read that had some
FEED_FAILURES_KV = "shop_feed_failures"  # polls in a row the feed could not be read (outbound keeps it)
MAX_STORED_PROBLEMS = 200  # rejected rows kept for the alert's examples: a pointer, not a copy of the feed

FEED_OK, FEED_UNREADABLE, FEED_UNUSABLE = "ok", "unreadable", "unusable"


@dataclass(frozen=True)
class FeedState:
    """The feed's health. ``state`` is the verdict of the last read: ok, or unusable (read, but a required
    column is missing or no order rows while there were some: exit 65). ``unreadable`` is set while the
    feed cannot be fetched or parsed at all (missing, HTTP error, refused XML: exit 66)."""

    state: str = FEED_OK
    message: str = ""
    rows: int = 0
    problems: tuple[dict, ...] = ()  # {"kind", "source", "line", "message"}, at most MAX_STORED_PROBLEMS
    problem_counts: dict | None = None  # kind -> how many rows of that kind were rejected
    unreadable: str | None = None
    at: str | None = None  # ISO time (UTC) of the last read that got an answer


def read_feed_state(ledger) -> FeedState:
    raw = ledger.get_kv(FEED_STATE_KV)
    if not raw:
        return FeedState()
    try:
        d = json.loads(raw)
        return FeedState(state=d.get("state", FEED_OK), message=d.get("message", ""), rows=int(d.get("rows", 0)),
                         problems=tuple(d.get("problems", ())), problem_counts=d.get("problem_counts") or {},
                         unreadable=d.get("unreadable"), at=d.get("at"))
    except (ValueError, TypeError, AttributeError):
        return FeedState()


def _write_feed_state(ledger, state: FeedState) -> None:
    ledger.set_kv(FEED_STATE_KV, json.dumps({
        "state": state.state, "message": state.message, "rows": state.rows, "problems": list(state.problems),
        "problem_counts": state.problem_counts or {}, "unreadable": state.unreadable, "at": state.at,
    }, ensure_ascii=False))


def record_feed_failure(ledger, status: str, message: str) -> FeedState:
    """The feed failed this poll. ``status`` unusable (a required column missing: a verdict on what was
    read) or unreadable (nothing was read: the last read's verdict and rejected rows stay)."""
    old = read_feed_state(ledger)
    if status == FEED_UNUSABLE:
        new = FeedState(state=FEED_UNUSABLE, message=message, rows=0, at=utcnow().isoformat())
    else:
        new = replace(old, unreadable=message)
    _write_feed_state(ledger, new)
    return new


def feed_reachable(ledger) -> None:
    """The feed answered (unchanged, or still being written): it is not unreadable any more."""
    old = read_feed_state(ledger)
    if old.unreadable is not None:
        _write_feed_state(ledger, replace(old, unreadable=None))


def record_feed_read(ledger, *, rows: int, problems: Sequence[Any], label: str) -> FeedState:
    """A feed that was read and parsed. Returns its state: unusable when it has no order rows while the
    previous successful read had some (a half-exported or truncated feed must not look like "no orders")."""
    previous_rows = int(ledger.get_kv(FEED_ROWS_KV) or 0)
    counts: dict[str, int] = {}
    stored = []
    for p in problems:
        kind = getattr(p, "kind", "bad_row")
        counts[kind] = counts.get(kind, 0) + 1
        if len(stored) < MAX_STORED_PROBLEMS:
            stored.append({"kind": kind, "source": p.source, "line": p.line, "message": p.message})
    if rows == 0 and previous_rows > 0:
        state = FeedState(state=FEED_UNUSABLE, rows=0, problems=tuple(stored), problem_counts=counts,
                          message=f"{label}: no order rows, while the previous read had {previous_rows}; "
                                  "an empty or cut-off export? (orders that leave the feed are not changed)",
                          at=utcnow().isoformat())
    else:
        state = FeedState(state=FEED_OK, rows=rows, problems=tuple(stored), problem_counts=counts,
                          at=utcnow().isoformat())
        if rows > 0:
            ledger.set_kv(FEED_ROWS_KV, str(rows))
    _write_feed_state(ledger, state)
    return state


def feed_failures(ledger) -> int:
    return int(ledger.get_kv(FEED_FAILURES_KV) or 0)


# -- unmapped shop statuses --------------------------------------------------------------------------
@dataclass(frozen=True)
class UnmappedStatus:
    status: str  # as the feed writes it (the most recent spelling seen)
    orders: int
    example_order: int


def shop_status_counts(ledger) -> list[tuple[str, int, int]]:
    """(shop status, orders with it now, smallest order id) for every shop status in the ledger."""
    o = s.orders.c
    with ledger.read() as c:
        rows = c.execute(select(o.shop_status, func.count(), func.min(o.mall_order_id))
                         .where(o.shop_status.is_not(None)).group_by(o.shop_status)).all()
    return [(st, n, ex) for st, n, ex in rows]


def unmapped_statuses(ledger, mapping) -> list[UnmappedStatus]:
    """Shop statuses that orders have now and that the mapping in force neither maps nor ignores.

    Read against the current mapping, so adding the line resolves the alert on the next evaluation."""
    grouped: dict[str, list] = {}
    for status, n, example in shop_status_counts(ledger):
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
    """Something the connector gave up on and a human must look at."""

    kind: str  # "change" today; the core's quarantine adds "inbox", "handoff", "confirm"
    id: int
    mall_order_id: int | None
    reason: str
    detail: str  # e.g. "shop status 'Expedována' → MALL shipped"
    fix: str  # the command that retries or clears it

    @property
    def alert_key(self) -> str:
        # change_failed:{id} is the key the first release used: existing open alerts keep their identity.
        return f"change_failed:{self.id}" if self.kind == "change" else f"change_failed:{self.kind}:{self.id}"


def failed_items(ledger) -> list[FailedItem]:
    """Every failed or quarantined item. The one source of the "change failed / item quarantined" rule:
    the integrator points this at the core's quarantine query (inbox ids, changes, hand-offs, confirms)."""
    out = []
    for ch in ledger.list_changes(states=("failed",)):
        out.append(FailedItem(
            kind="change", id=ch.id, mall_order_id=ch.mall_order_id, reason=ch.reason or ch.last_error or "failed",
            detail=f"shop status {ch.shop_status!r} → MALL {ch.target_status}" if ch.origin == "shop"
            else f"MALL {ch.target_status} → the shop",
            fix=f"mall-connector ledger retry {ch.id} (or: ledger skip {ch.id} --reason ...)",
        ))
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
    """Orders whose shop status was unmapped when last seen and that the mapping in force now maps: forget
    their last-seen row (and the feed's fingerprint), so the next poll records them again and they move.

    Without this, adding the missing line resolves the alert but the orders behind it never move: the
    feed row is unchanged, so the poll never looks at it again. Each order is replayed once (its row is
    re-recorded, which makes ``shop_seen_at`` newer than the unmapped change)."""
    o, ch = s.orders.c, s.changes.c
    with ledger.read() as c:
        rows = c.execute(select(o.mall_order_id, o.shop_status, ch.key).select_from(
            s.orders.join(s.changes, ch.mall_order_id == o.mall_order_id))
            .where(ch.origin == "shop", ch.state == "skipped", ch.target_status.is_(None),
                   ch.key.like("shop:%:unmapped:%"), o.shop_status.is_not(None), o.shop_fingerprint.is_not(None),
                   o.shop_seen_at <= ch.created_at)).all()
    replay = sorted({oid for oid, status, key in rows
                     if key == f"shop:{oid}:unmapped:{status.strip().casefold()}"
                     and mapping.lookup(status).kind == "mapped"})
    if not replay:
        return []
    from sqlalchemy import update

    with ledger.write() as c:
        for i in range(0, len(replay), 500):
            c.execute(update(s.orders).where(s.orders.c.mall_order_id.in_(replay[i:i + 500]))
                      .values(shop_fingerprint=None))
        ledger.set_kv(FEED_FINGERPRINT_KV, None, conn=c)
    return replay
