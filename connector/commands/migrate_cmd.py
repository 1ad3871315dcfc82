"""`mall-connector ledger migrate --to URL`: move the ledger (SQLite) to another database (PostgreSQL)."""

from __future__ import annotations

import click

from connector.cli import Context, friendly_errors, pass_ctx
from connector.commands.ledger_cmd import ledger_group


@ledger_group.command("migrate")
@click.option("--to", "target", required=True, metavar="URL",
              help="The new ledger, e.g. postgresql+psycopg://mall@db.example:5432/mall (no password in it: "
                   "argv is visible to every user; see --password-file).")
@click.option("--password-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="File with the target's password. Default: env MALL_CONNECTOR_LEDGER_PASSWORD, if set.")
@click.option("--replace", is_flag=True, help="Empty a target that already has rows first (default: refuse).")
@pass_ctx
@friendly_errors
def ledger_migrate(ctx: Context, target: str, password_file: str | None, replace: bool) -> None:
    """Copy every table of this ledger ([ledger] url) into the database at URL in one transaction, then
    compare the row counts of every table; a mismatch or an interruption leaves the target unchanged.
    Stop the service first; afterwards set [ledger] url to URL (docs/scaling.md).

    Example: MALL_CONNECTOR_LEDGER_PASSWORD=... mall-connector ledger migrate --to postgresql+psycopg://mall@db/mall
    """
    import os
    from pathlib import Path

    from connector.config import ENV_LEDGER_PASSWORD
    from connector.ledger import open_ledger
    from connector.ledger.copy import copy_ledger
    from connector.ledger.dialect import describe, url_password, with_password, without_password
    from connector.logs import register_secret
    from connector.preflight import require_existing_ledger

    try:
        inline = url_password(target)
    except ValueError:
        raise click.BadParameter("not a database URL (postgresql+psycopg://user@host:port/database)",
                                 param_hint="--to") from None
    if inline:
        register_secret(inline)
        raise click.BadParameter("the URL carries a password, and argv is visible to every user of this machine: "
                                 f"leave it out and give it in env {ENV_LEDGER_PASSWORD} or --password-file",
                                 param_hint="--to")
    password = (Path(password_file).read_text(encoding="utf-8").strip() if password_file
                else os.environ.get(ENV_LEDGER_PASSWORD))
    if password:
        register_secret(password)
        target = with_password(target, password)
    config = ctx.config()
    require_existing_ledger(config)
    source = open_ledger(config.ledger.url)
    try:
        result = copy_ledger(source, target, replace=replace)
    finally:
        source.close()
    click.echo(f"copied {result.total} rows in {len(result.counts)} tables from {describe(config.ledger.url)} to "
               f"{describe(target)}; every table's row count matches")
    for name, n in result.counts.items():
        if n:
            click.echo(f"  {name}: {n}")
    click.echo(f"now set [ledger] url = \"{without_password(target)}\" and start the service")
