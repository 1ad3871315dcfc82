"""`mall-connector console ...`: manage the users of the admin console."""

from __future__ import annotations

import sys

import click

from connector.cli import Context, friendly_errors, pass_ctx
from connector.console.users import ROLES, add_user, load_users, users_path


@click.group("console")
def console_group() -> None:
    """The admin console in the browser ([console] in the config; see docs/console.md).

    Users live in the file named by [console] users_file (default console-users.toml next to the
    config), with argon2 password hashes. The running console sees changes at the next login.

    \b
    Examples:
      mall-connector console adduser jana --role operator
      echo "$PASSWORD" | mall-connector console adduser ci --role viewer --password-stdin
      mall-connector console users
    """


@console_group.command("adduser")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="viewer: read only; operator: also retry, skip, done and exports; admin: also the mapping.")
@click.option("--replace", is_flag=True, help="The user exists: set a new password and role.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input (for scripts; never on the command line).")
@pass_ctx
@friendly_errors
def adduser(ctx: Context, name: str, role: str, replace: bool, password_stdin: bool) -> None:
    """Add a console user NAME with a role; asks for the password twice (at least 10 characters).

    Example: mall-connector --config /etc/mall-connector/config.toml console adduser jana --role operator
    """
    path = users_path(ctx.config())
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        existed = add_user(path, name, role, password, replace=replace)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    click.echo(f"{'updated' if existed else 'added'} console user {name} (role {role}) in {path}")


@console_group.command("users")
@pass_ctx
@friendly_errors
def users(ctx: Context) -> None:
    """List the console users and their roles (never their password hashes)."""
    path = users_path(ctx.config())
    found = load_users(path)
    if not found:
        click.echo(f"no console users in {path} (add one: mall-connector console adduser NAME --role admin)")
        return
    for u in sorted(found.values(), key=lambda u: u.name):
        click.echo(f"{u.name}\t{u.role}")
