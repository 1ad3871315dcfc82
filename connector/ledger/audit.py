"""The audit log: who did what, when, in the console or with a steering ledger command.

The steering actions themselves (retry, skip, done) are connector/ledger/steering.py; they call ``record``
inside their own transaction, so the history never shows an action that did not happen, nor misses one
that did. Logins, mapping saves and exports are logged with ``log_action``.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from connector.ledger import schema as s
from connector.ledger.rows import utcnow

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


def record(c: Connection, actor: Actor, action: str, *, order_id: int | None = None, target: str | None = None,
           detail: str | None = None) -> None:
    """Add one audit row in the caller's transaction."""
    c.execute(insert(s.audit_log).values(
        at=utcnow(), actor=actor.name[:ACTOR_MAX], role=actor.role, source=actor.source, action=action[:32],
        mall_order_id=order_id, target=(target or None) and target[:200],
        detail=(detail or None) and detail[:DETAIL_MAX]))


def log_action(ledger, actor: Actor, action: str, **kw) -> None:
    """An audit row in its own transaction (logins, mapping saves, exports)."""
    with ledger.write() as c:
        record(c, actor, action, **kw)


def _entries(rows) -> list[AuditEntry]:
    return [AuditEntry(**{f: r._mapping[f] for f in AuditEntry.__dataclass_fields__}) for r in rows]


def for_order(ledger, order_id: int) -> list[AuditEntry]:
    with ledger.read() as c:
        q = select(s.audit_log).where(s.audit_log.c.mall_order_id == order_id).order_by(s.audit_log.c.id)
        return _entries(c.execute(q))


def recent(ledger, limit: int = 50) -> list[AuditEntry]:
    with ledger.read() as c:
        q = select(s.audit_log).order_by(s.audit_log.c.id.desc()).limit(limit)
        return _entries(c.execute(q))
