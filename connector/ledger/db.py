"""Engine set-up and migrations, for SQLite and PostgreSQL alike; what differs between them
(PRAGMAs, BEGIN IMMEDIATE, isolation, locks) is in dialect.py.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url

from connector.ledger import dialect

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
READ_ONLY = "mall_connector_read"  # execution option: open a deferred (read) transaction
#: The newest migration. Known here so a daemon whose ledger is current never imports alembic
#: (about 12 MB of resident memory); tests check it equals alembic's head.
HEAD_REVISION = "0010"  # the newest migration (versions/): 0001 → 0002 → 0004 → 0005 → 0007 → 0006 → 0008 → 0009 → 0010


class LedgerError(Exception):
    """The ledger cannot be opened or written; the message says which file and why."""


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """What a ledger whose server went away raises (wrapped or not yet): for callers outside connector/ledger."""
    from sqlalchemy.exc import OperationalError

    return (LedgerError, OperationalError)


def make_engine(url: str, *, busy_timeout_ms: int = 15000) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        db = u.database
        if db and db != ":memory:" and not db.startswith("file:"):
            folder = Path(db).resolve().parent
            if not folder.is_dir():
                raise LedgerError(f"ledger folder {folder} does not exist (from [ledger] url)")
            create_private_sqlite_file(db)
        engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000}, pool_pre_ping=False)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            dialect.sqlite_on_connect(dbapi_conn, in_memory=db == ":memory:", busy_timeout_ms=busy_timeout_ms)

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            dialect.sqlite_begin(conn, read_only=bool(conn.get_execution_options().get(READ_ONLY)))

        return engine
    if u.get_backend_name() == "postgresql":
        if u.get_driver_name() != "psycopg":
            raise LedgerError(f"ledger {dialect.describe(u)}: use the driver psycopg (postgresql+psycopg://...), "
                              f"not {u.get_driver_name()}")
        try:
            engine = create_engine(u, pool_pre_ping=True, connect_args=dialect.postgres_connect_args(busy_timeout_ms))
        except ImportError as e:  # psycopg missing from this installation
            raise LedgerError(f"ledger {dialect.describe(u)}: the PostgreSQL driver is not installed ({e})") from None

        @event.listens_for(engine, "begin")
        def _on_begin_pg(conn):
            dialect.postgres_begin(conn, read_only=bool(conn.get_execution_options().get(READ_ONLY)),
                                   busy_timeout_ms=busy_timeout_ms)

        return engine
    return create_engine(url, pool_pre_ping=True)


def create_private_sqlite_file(db: str) -> None:
    """Create a new SQLite ledger file as 0600 before SQLite opens it, whatever the caller's umask.

    The ledger holds customer names and addresses. SQLite gives its -wal and -shm files the main
    file's permissions, so they are private too. Never follows a symlink planted at the name. An
    existing file (or link) is left as its admin made it."""
    from connector.safety import ensure_private_file

    try:
        ensure_private_file(db)
    except OSError as e:
        raise LedgerError(f"cannot create the ledger file {db}: {e.strerror or e}") from None


def _alembic_config(connection):
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The ledger's schema revision (alembic's own table), or None for a new ledger."""
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        with conn.begin():
            try:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except Exception:  # noqa: BLE001 - no table yet: a new ledger
                return None


def migrate(engine: Engine) -> bool:
    """Bring the schema to the newest revision. True when something was applied."""
    if current_revision(engine) == HEAD_REVISION:
        return False
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
    return True
