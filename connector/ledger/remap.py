"""After a mapping change: let the next poll re-evaluate the orders whose shop status now means something else.

A feed row is evaluated when it differs from the row last seen (its fingerprint). A row that did not change
in the shop would keep the decision of the old mapping for ever, e.g. an order left "unmapped" by a typo
in the mapping. Forgetting those rows' fingerprints (and the feed's) makes the next poll read the feed and
decide them again, with the new mapping; rows whose meaning did not change are left alone. Orders MALL has
in a final status are left alone too (nothing can be pushed to them).
"""

from __future__ import annotations

from sqlalchemy import or_, select, update

from connector.ledger import Ledger
from connector.ledger import schema as s
from connector.mall.statuses import FINAL_STATUSES

IN_CHUNK = 500


def _meaning(mapping, shop_status: str) -> str:
    found = mapping.lookup(shop_status)
    return str(found.target) if found.kind == "mapped" else found.kind


def forget_rows_whose_meaning_changed(ledger: Ledger, old, new, *, feed_kv: str) -> int:
    """Clear the fingerprints of open orders whose shop status means something else under ``new``.

    Returns how many orders the next poll will re-evaluate (0: nothing changed, nothing is touched)."""
    o = s.orders.c
    open_order = or_(o.mall_status.is_(None), o.mall_status.not_in([st.value for st in FINAL_STATUSES]))
    with ledger.read() as c:
        statuses = list(c.execute(select(o.shop_status).distinct()
                                  .where(o.shop_status.is_not(None), o.shop_fingerprint.is_not(None), open_order))
                        .scalars())
    changed = [st for st in statuses if _meaning(old, st) != _meaning(new, st)]
    if not changed:
        return 0
    n = 0
    with ledger.write() as c:
        for i in range(0, len(changed), IN_CHUNK):
            n += c.execute(update(s.orders).where(o.shop_status.in_(changed[i:i + IN_CHUNK]), open_order)
                           .values(shop_fingerprint=None)).rowcount
        ledger.kv.set(c, feed_kv, None)
    return n
