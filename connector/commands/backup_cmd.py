"""`mall-connector ledger backup FILE`: a consistent copy of a SQLite ledger while the service runs.

SQLite's online backup API copies the database page by page under its own locking, so the daemon
keeps working meanwhile and the copy is a single consistent snapshot (a plain `cp` of a WAL
database can miss the -wal file's committed changes). The copy is written to a private temp file
next to FILE (0600: the ledger holds customer data), checked with `PRAGMA integrity_check`, and
renamed to FILE. An existing FILE is never overwritten.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
from pathlib import Path

import click

from connector.cli import Context, friendly_errors, pass_ctx
from connector.commands.ledger_cmd import ledger_group


def backup_sqlite(source: Path, target: Path) -> int:
    """Copy the SQLite database ``source`` to ``target`` (must not exist). Returns the size in bytes."""
    if os.path.lexists(target):
        raise click.ClickException(f"{target} exists: choose a new file name (a backup never overwrites)")
    folder = target.resolve().parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.fchmod(fd, 0o600)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        src = sqlite3.connect(source, timeout=30)  # exists (checked): never created here
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst, pages=1024)
            (result,) = dst.execute("PRAGMA integrity_check").fetchone()
            if result != "ok":
                raise click.ClickException(f"the copy failed its integrity check: {result}")
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dst.close()
            src.close()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target.stat().st_size


@ledger_group.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
@friendly_errors
def ledger_backup(ctx: Context, file: Path) -> None:
    """Write a consistent copy of the ledger to FILE while the service keeps running.

    FILE must not exist; it is created 0600. Restore: stop the service, copy FILE over the ledger
    (keep its owner: chown mall-connector:mall-connector), start the service.

    \b
    Example:
      mall-connector --config /etc/mall-connector/config.toml ledger backup /var/backups/mall-ledger-$(date +%F).db
    """
    from connector.preflight import require_existing_ledger, sqlite_path

    config = ctx.config()
    source = sqlite_path(config.ledger.url)
    if source is None:
        click.echo("error: [ledger] url is not a SQLite file: back the database up with its own tools (pg_dump)",
                   err=True)
        sys.exit(1)
    require_existing_ledger(config)
    size = backup_sqlite(source, file)
    click.echo(f"wrote {file}: a consistent copy of {source} ({size} bytes)")
