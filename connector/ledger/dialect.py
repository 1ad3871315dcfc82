"""What differs between the ledger's two databases, in one place: SQLite (one process, a file) and
PostgreSQL (a server, possibly several replicas; docs/scaling.md).

Both give the same guarantee to the repositories: **one writer at a time, readers never block it**.

* SQLite: WAL (readers never block the writer), ``busy_timeout`` (a second writer waits instead of
  failing), foreign keys on, ``synchronous=FULL`` (a committed change survives a crash and a power cut),
  and ``BEGIN IMMEDIATE`` for every transaction that writes: a deferred BEGIN that reads and then writes
  fails at once with "database is locked" when another process writes meanwhile.
* PostgreSQL: every write transaction first takes one transaction-scoped advisory lock
  (``pg_advisory_xact_lock``), waiting at most ``lock_timeout`` (the busy timeout): the equivalent of
  ``BEGIN IMMEDIATE``, so a read-then-write in one transaction sees no other writer's commit in between,
  whichever replica or CLI command that writer is. Read transactions are ``REPEATABLE READ, READ ONLY``:
  one snapshot, like a SQLite read transaction in WAL mode. Work queues are claimed with
  ``FOR UPDATE SKIP LOCKED`` (``for_claim``) and jobs with session advisory locks (``leases.py``).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.sql import Select

#: Advisory-lock class of the ledger (the first of the two int4 keys); the second names the lock.
LOCK_CLASS = 0x4D434C  # "MCL"
WRITE_LOCK = 1  # the one-writer-at-a-time lock of every write transaction


def backend(url_or_engine: str | URL | Engine | Connection) -> str:
    """'sqlite' or 'postgresql' (or whatever SQLAlchemy calls another backend)."""
    if isinstance(url_or_engine, (Engine, Connection)):
        return url_or_engine.dialect.name
    return make_url(url_or_engine).get_backend_name()


def is_postgres(x) -> bool:
    return backend(x) == "postgresql"


def describe(url: str | URL) -> str:
    """The ledger's address for people: the file for SQLite, ``host:port/database`` (never the password)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return u.database or ":memory:"
    host = u.host or (u.query.get("host") if u.query else None) or "localhost"
    name = {"postgresql": "PostgreSQL"}.get(u.get_backend_name(), u.get_backend_name())
    return f"{name} {host}{':' + str(u.port) if u.port else ''}/{u.database or ''}"


# -- SQLite ------------------------------------------------------------------------------------------
def sqlite_on_connect(dbapi_conn, *, in_memory: bool, busy_timeout_ms: int) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (sqlite_begin)
    cur = dbapi_conn.cursor()
    if not in_memory:
        cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


def sqlite_begin(conn: Connection, *, read_only: bool) -> None:
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


# -- PostgreSQL ----------------------------------------------------------------------------------------
def postgres_begin(conn: Connection, *, read_only: bool, busy_timeout_ms: int) -> None:
    """Runs first in each transaction (psycopg has opened it implicitly)."""
    if read_only:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(busy_timeout_ms)}")
    conn.execute(text("SELECT pg_advisory_xact_lock(:k1, :k2)"), {"k1": LOCK_CLASS, "k2": WRITE_LOCK})


def postgres_connect_args(busy_timeout_ms: int) -> dict:
    # A server that is gone is noticed within seconds (TCP keepalives), not after the kernel's two hours.
    return {"connect_timeout": max(2, int(busy_timeout_ms / 1000)), "keepalives": 1, "keepalives_idle": 10,
            "keepalives_interval": 5, "keepalives_count": 3, "application_name": "mall-connector"}


# -- portable statements -------------------------------------------------------------------------------
def for_claim(q: Select, conn: Connection) -> Select:
    """A queue read that claims its rows: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (two replicas never take
    the same row); on SQLite the write transaction (BEGIN IMMEDIATE) already excludes every other writer."""
    if conn.dialect.name == "postgresql":
        return q.with_for_update(skip_locked=True)
    return q


def insert_ignoring_duplicates(table, conn: Connection):
    """``INSERT`` that skips rows whose primary key exists (two receivers racing for one id)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    from sqlalchemy import insert

    return insert(table)


def url_password(url: str) -> str | None:
    """The password in a database URL (None without one). ValueError for something that is no URL."""
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password
    except ArgumentError as e:
        raise ValueError(str(e)) from None


def with_password(url: str, password: str) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def without_password(url: str) -> str:
    return make_url(url)._replace(password=None).render_as_string(hide_password=False)
