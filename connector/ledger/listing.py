"""Ledger reads for `ledger list` (issue 14): changes since a time, old skipped changes hidden.

Skipped changes pile up forever (every unmapped or already-there row is one); after a week they are
history, not work, so `ledger list` hides them unless asked (`--all`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import func, or_, select

from connector.ledger import schema as s
from connector.ledger.repo import ChangeRow, utcnow

HIDE_SKIPPED_AFTER = timedelta(days=7)


def list_changes(ledger, *, states: Sequence[str] | None, order_id: int | None = None,
                 since: datetime | None = None, show_old_skipped: bool = False,
                 now: datetime | None = None, account: str | None = None) -> tuple[list[ChangeRow], int]:
    """Changes in ``states`` (None: all), oldest first, and how many old skipped ones were hidden.

    ``since`` (naive UTC) keeps changes updated at or after it. Unless ``show_old_skipped``, skipped
    changes last updated more than 7 days ago are left out and counted."""
    c_ = s.changes.c
    q = select(s.changes)
    if states:
        q = q.where(c_.state.in_(tuple(states)))
    if order_id is not None:
        q = q.where(c_.mall_order_id == order_id)
    if since is not None:
        q = q.where(c_.updated_at >= since)
    if account is not None:  # issue 18
        q = q.where(c_.account == account)
    hidden = 0
    if not show_old_skipped and (states is None or "skipped" in states):
        cutoff = (now or utcnow()) - HIDE_SKIPPED_AFTER
        old = (c_.state == "skipped") & (c_.updated_at < cutoff)
        with ledger.read() as c:
            hidden = c.execute(q.with_only_columns(func.count()).where(old).order_by(None)).scalar_one()
        q = q.where(or_(c_.state != "skipped", c_.updated_at >= cutoff))
    with ledger.read() as c:
        rows = [ChangeRow.from_row(r) for r in c.execute(q.order_by(c_.id))]
    return rows, hidden
