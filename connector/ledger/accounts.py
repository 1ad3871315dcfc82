"""Which MALL account owns each order (issue 18; docs/accounts.md).

An order's account is learned once: from the token of the webhook that named it (the inbox row), from
the account's own sweep, or, for an order the shop's feed names and the ledger never saw, by asking each
account once (``record`` / ``record_not_found``: the answer is kept, nobody re-asks every pass). The
``account`` column of every per-order row is then filled in by ``stamp``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import and_, distinct, exists, insert, select, update
from sqlalchemy.engine import Connection

from connector.ledger import schema as s
from connector.ledger.rows import chunks, utcnow

log = logging.getLogger("mall_connector.accounts")

DEFAULT = s.DEFAULT_ACCOUNT


@dataclass(frozen=True)
class Lookup:
    """What the ledger knows of an order's account: ``account`` None means every account in ``asked`` said 404."""

    account: str | None
    source: str
    asked: frozenset[str]


class AccountsRepo:
    def __init__(self, ledger):
        self._ledger = ledger

    # -- reads ------------------------------------------------------------------------------------
    def owners(self, ids: Iterable[int]) -> dict[int, str]:
        """The account of each order id whose account is known: recorded, from the inbox row (the webhook's
        token), or stamped on the order row. Ids of no known account are left out."""
        wanted = sorted({int(i) for i in ids})
        out: dict[int, str] = {}
        oa, ib, o = s.order_accounts, s.inbox, s.orders
        with self._ledger.read() as c:
            for chunk in chunks(wanted):
                out.update(c.execute(select(oa.c.mall_order_id, oa.c.account).where(
                    oa.c.mall_order_id.in_(chunk), oa.c.account.is_not(None))).all())
                rest = [i for i in chunk if i not in out]
                for t in (ib, o):
                    if not rest:
                        break
                    out.update(c.execute(select(t.c.mall_order_id, t.c.account).where(
                        t.c.mall_order_id.in_(rest), t.c.account != DEFAULT)).all())
                    rest = [i for i in rest if i not in out]
        return out

    def owner(self, oid: int) -> str | None:
        return self.owners([oid]).get(int(oid))

    def lookup(self, oid: int) -> Lookup | None:
        oa = s.order_accounts
        with self._ledger.read() as c:
            row = c.execute(select(oa.c.account, oa.c.source, oa.c.asked).where(oa.c.mall_order_id == oid)).first()
        if row is None:
            return None
        return Lookup(row.account, row.source, frozenset(a for a in (row.asked or "").split(",") if a))

    def of_orders(self, ids: Iterable[int]) -> dict[int, str]:
        """The ``account`` column of each order row among ``ids`` ("default" until its account is known)."""
        out: dict[int, str] = {}
        with self._ledger.read() as c:
            for chunk in chunks(sorted({int(i) for i in ids})):
                out.update(c.execute(select(s.orders.c.mall_order_id, s.orders.c.account).where(
                    s.orders.c.mall_order_id.in_(chunk))).all())
        return out

    def in_use(self) -> list[str]:
        """The accounts the ledger's orders belong to (sorted)."""
        with self._ledger.read() as c:
            return sorted(c.execute(select(distinct(s.orders.c.account))).scalars())

    # -- writes (the caller's transaction) ----------------------------------------------------------
    def record(self, c: Connection, owners: dict[int, str], source: str) -> int:
        """Remember the account of each order id. An id already owned by another account keeps its first owner
        (MALL's order ids are global: two accounts naming one id is logged, never merged). Returns ids recorded."""
        oa = s.order_accounts
        now = utcnow()
        added = 0
        ids = sorted(owners)
        for chunk in chunks(ids):
            known = dict(c.execute(select(oa.c.mall_order_id, oa.c.account).where(oa.c.mall_order_id.in_(chunk))).all())
            rows = []
            for oid in chunk:
                account = owners[oid]
                if oid not in known:
                    rows.append({"mall_order_id": oid, "account": account, "source": source, "asked": None,
                                 "updated_at": now})
                elif known[oid] is None:
                    c.execute(update(oa).where(oa.c.mall_order_id == oid).values(account=account, source=source,
                                                                                 updated_at=now))
                    added += 1
                elif known[oid] != account:
                    log.warning("order %s is named by account %r but belongs to account %r: kept with %r", oid,
                                account, known[oid], known[oid], extra={"order_id": oid})
            if rows:
                c.execute(insert(oa), rows)
                added += len(rows)
        return added

    def record_not_found(self, c: Connection, oid: int, asked: Iterable[str]) -> None:
        """Every account in ``asked`` answered 404 for this order: remember it, so no pass asks them again."""
        oa = s.order_accounts
        text = ",".join(sorted(set(asked)))
        n = c.execute(update(oa).where(oa.c.mall_order_id == oid, oa.c.account.is_(None)).values(
            asked=text, source="lookup", updated_at=utcnow())).rowcount
        if not n and c.execute(select(oa.c.mall_order_id).where(oa.c.mall_order_id == oid)).first() is None:
            c.execute(insert(oa).values(mall_order_id=oid, account=None, source="lookup", asked=text,
                                        updated_at=utcnow()))

    def forget_not_found(self, c: Connection, oid: int) -> None:
        """``ledger retry`` of such an order's change: ask every account again."""
        oa = s.order_accounts
        c.execute(oa.delete().where(oa.c.mall_order_id == oid, oa.c.account.is_(None)))

    def stamp(self, c: Connection) -> int:
        """Fill in the account of every per-order row still in "default" whose order's account is known now.
        One statement per table; a no-op in a ledger of one account. Returns the rows updated."""
        oa = s.order_accounts
        total = 0
        for t in s.ACCOUNT_TABLES:
            owned = and_(oa.c.mall_order_id == t.c.mall_order_id, oa.c.account.is_not(None))
            total += c.execute(update(t).where(t.c.account == DEFAULT, exists(select(oa.c.mall_order_id).where(owned)))
                               .values(account=select(oa.c.account).where(owned).scalar_subquery())).rowcount or 0
        return total
