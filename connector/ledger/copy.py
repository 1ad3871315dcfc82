"""Copy a whole ledger into another database: `mall-connector ledger migrate --to URL` (docs/scaling.md).

The target gets the newest schema, then every table of the schema is copied in ONE write transaction,
the row counts are compared table by table inside it, and only then is it committed: an interruption or a
mismatch leaves the target as it was. Columns are taken from the schema, so tables and columns added by
later migrations are copied without a change here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, text

from connector.ledger import dialect
from connector.ledger import schema as s
from connector.ledger.db import LedgerError, make_engine, migrate

CHUNK = 1000


class TargetNotEmpty(LedgerError):
    """The target ledger already has rows (``replace`` not given)."""


@dataclass(frozen=True)
class CopyResult:
    counts: dict[str, int]  # table -> rows copied (equal in source and target)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def copy_ledger(source, target_url: str, *, replace: bool = False) -> CopyResult:
    """Copy the open ledger ``source`` into ``target_url`` (migrated first). Raises TargetNotEmpty, LedgerError."""
    engine = make_engine(target_url)
    try:
        migrate(engine)
        tables = list(s.metadata.sorted_tables)  # parents before children
        with source.read() as rc, engine.begin() as wc:
            busy = {t.name: n for t in tables if (n := wc.execute(select(func.count()).select_from(t)).scalar_one())}
            if busy and not replace:
                listed = ", ".join(f"{name} ({n} rows)" for name, n in sorted(busy.items()))
                raise TargetNotEmpty(f"the target ledger {dialect.describe(target_url)} is not empty: {listed}; "
                                     "nothing was copied (--replace empties it first)")
            for t in reversed(tables):
                if t.name in busy:
                    wc.execute(delete(t))
            counts: dict[str, int] = {}
            for t in tables:
                result = rc.execute(select(t).order_by(*t.primary_key.columns))
                n = 0
                while rows := result.fetchmany(CHUNK):
                    wc.execute(insert(t), [dict(r._mapping) for r in rows])
                    n += len(rows)
                counts[t.name] = n
                _reset_sequence(wc, t)
            for t in tables:  # verify inside the transaction: a mismatch rolls everything back
                there = wc.execute(select(func.count()).select_from(t)).scalar_one()
                here = rc.execute(select(func.count()).select_from(t)).scalar_one()
                if there != here or there != counts[t.name]:
                    raise LedgerError(f"table {t.name}: {here} rows in the source, {there} in the target; "
                                      "nothing was committed")
        return CopyResult(counts)
    finally:
        engine.dispose()


def _reset_sequence(conn, table) -> None:
    """PostgreSQL: the next generated id follows the copied ones (rows were inserted with their ids)."""
    if conn.dialect.name != "postgresql":
        return
    for col in table.primary_key.columns:  # only serial (identity) columns have a sequence
        seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": col.name}).scalar()
        if seq:
            conn.execute(text(f'SELECT setval(:seq, COALESCE((SELECT MAX("{col.name}") FROM "{table.name}"), 0) + 1, '
                              "false)"), {"seq": seq})
