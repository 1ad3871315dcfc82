"""The audit log, and the steering actions every front end shares (`ledger retry/skip/done`, the console).

Each action changes the ledger, writes the order's history event and the audit row (who, what, when) in
one transaction, so the history never shows an action that did not happen, nor misses one that did.
Kept apart from repo.py so the console's ledger access is one small module.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from connector.ledger import schema as s
from connector.ledger.repo import ChangeRow, Ledger, utcnow

ACTOR_MAX = 64
DETAIL_MAX = 2000


@dataclass(frozen=True)
class Actor:
    """Who acts: a console user with a role, or the unix user running a ledger command."""

    name: str
    role: str | None = None
    source: str = "console"

    @classmethod
    def cli(cls) -> "Actor":
        try:
            who = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (containers)
            who = "unknown"
        return cls(f"cli:{who}"[:ACTOR_MAX], None, "cli")

    @property
    def by(self) -> str:
        """How history events name the actor."""
        if self.source == "cli":
            return "an admin"  # the wording `ledger retry/skip` always used
        return f"console user {self.name} ({self.role})"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    role: str | None
    source: str
    action: str
    mall_order_id: int | None
    target: str | None
    detail: str | None


@dataclass(frozen=True)
class Outcome:
    """What a steering action did: ``ok`` and a sentence for the user (CLI line or console flash).

    ``text`` is the English sentence with ``%(id)s`` placeholders (the console translates it), ``message`` the
    sentence itself."""

    ok: bool
    text: str
    id: int
    mall_order_id: int | None = None

    @property
    def message(self) -> str:
        return self.text % {"id": self.id}


def record(c: Connection, actor: Actor, action: str, *, order_id: int | None = None, target: str | None = None,
           detail: str | None = None) -> None:
    """Add one audit row in the caller's transaction."""
    c.execute(insert(s.audit_log).values(
        at=utcnow(), actor=actor.name[:ACTOR_MAX], role=actor.role, source=actor.source, action=action[:32],
        mall_order_id=order_id, target=(target or None) and target[:200],
        detail=(detail or None) and detail[:DETAIL_MAX]))


def log_action(ledger: Ledger, actor: Actor, action: str, **kw) -> None:
    """An audit row in its own transaction (logins, mapping saves, exports)."""
    with ledger.write() as c:
        record(c, actor, action, **kw)


def _entries(rows) -> list[AuditEntry]:
    return [AuditEntry(**{f: r._mapping[f] for f in AuditEntry.__dataclass_fields__}) for r in rows]


def for_order(ledger: Ledger, order_id: int) -> list[AuditEntry]:
    with ledger.read() as c:
        q = select(s.audit_log).where(s.audit_log.c.mall_order_id == order_id).order_by(s.audit_log.c.id)
        return _entries(c.execute(q))


def recent(ledger: Ledger, limit: int = 50) -> list[AuditEntry]:
    with ledger.read() as c:
        q = select(s.audit_log).order_by(s.audit_log.c.id.desc()).limit(limit)
        return _entries(c.execute(q))


# -- steering ---------------------------------------------------------------------------------------------


def retry_change(ledger: Ledger, change: ChangeRow, actor: Actor) -> Outcome:
    """Put a change back to pending; the next pass re-reads MALL before anything is sent again."""
    if change.state == "done":
        return Outcome(False, "change %(id)s is done; nothing to retry", change.id, change.mall_order_id)
    with ledger.write() as c:
        now_state = c.execute(select(s.changes.c.state).where(s.changes.c.id == change.id)).scalar()
        if now_state == "done":  # it landed meanwhile
            return Outcome(False, "change %(id)s is done; nothing to retry", change.id, change.mall_order_id)
        # A human retry is a new budget of attempts (a change that failed after max_attempts would otherwise
        # give up again at once, without a call). The order's MALL state is marked stale, so the next pass
        # re-reads it from MALL before anything is sent again (an earlier PUT may have landed).
        ledger.update_change(change.id, conn=c, state="pending", attempts=0, next_attempt_at=None, reason=None,
                             done_at=None)
        ledger.set_order(change.mall_order_id, conn=c, mall_read_at=None)
        ledger.add_event(c, change.mall_order_id, "retry", f"change {change.id} put back to pending by {actor.by}")
        record(c, actor, "retry", order_id=change.mall_order_id, target=f"change {change.id}",
               detail=f"was {change.state}: {change.reason or change.last_error or ''}".rstrip(": "))
    return Outcome(True, "change %(id)s will be retried on the next pass", change.id, change.mall_order_id)


def skip_change(ledger: Ledger, change: ChangeRow, reason: str, actor: Actor) -> Outcome:
    """Mark a change skipped: it will never be sent."""
    reason = " ".join(reason.split())[:500]
    if not reason:
        return Outcome(False, "a reason is required", change.id, change.mall_order_id)
    if change.state == "done":
        return Outcome(False, "change %(id)s is already done", change.id, change.mall_order_id)
    with ledger.write() as c:
        now_state = c.execute(select(s.changes.c.state).where(s.changes.c.id == change.id)).scalar()
        if now_state == "done":
            return Outcome(False, "change %(id)s is already done", change.id, change.mall_order_id)
        ledger.update_change(change.id, conn=c, state="skipped", reason=f"skipped by {actor.by}: {reason}")
        ledger.add_event(c, change.mall_order_id, "skipped", f"change {change.id} skipped by {actor.by}: {reason}")
        record(c, actor, "skip", order_id=change.mall_order_id, target=f"change {change.id}", detail=reason)
    return Outcome(True, "change %(id)s skipped", change.id, change.mall_order_id)


def mark_done(ledger: Ledger, item_id: int, note: str | None, actor: Actor) -> Outcome:
    """Clear an open needs-action item once a human has handled it."""
    note = " ".join((note or "").split())[:500] or None
    with ledger.write() as c:
        order_id = c.execute(select(s.actions.c.mall_order_id).where(s.actions.c.id == item_id)).scalar()
        n = c.execute(update(s.actions).where(s.actions.c.id == item_id, s.actions.c.done_at.is_(None))
                      .values(done_at=utcnow(), done_note=note)).rowcount
        if n != 1:
            return Outcome(False, "no open needs-action item %(id)s", item_id)
        if order_id is not None:
            ledger.add_event(c, order_id, "done", f"needs-action item {item_id} done by {actor.by}"
                             + (f": {note}" if note else ""))
        record(c, actor, "done", order_id=order_id, target=f"item {item_id}", detail=note)
    return Outcome(True, "item %(id)s done", item_id, order_id)
