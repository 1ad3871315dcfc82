"""`--account NAME` (issue 18): the commands that list, show, export or act take one MALL account or all."""

from __future__ import annotations

import difflib

import click


def account_option(f):
    return click.option("--account", "account", default=None, metavar="NAME",
                        help="Only this MALL account (the NAME of [accounts.NAME]; 'default' for the single "
                             "[mall] client_id). Default: all accounts.")(f)


def chosen_account(config, name: str | None) -> str | None:
    """``name`` checked against the config's accounts (a usage error with did-you-mean otherwise)."""
    if name is None:
        return None
    from connector.accounts import account_names

    known = account_names(config)
    if name not in known:
        guess = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"; did you mean {guess[0]!r}?" if guess else ""
        raise click.BadParameter(f"{name!r} is not an account of this config (accounts: {', '.join(known)}){hint}",
                                 param_hint="'--account'")
    return name


def several(config) -> bool:
    """Tables show an account column when the config has more than one account."""
    return len(config.accounts) > 1
