"""``mall-connector config check`` and ``mall-connector mapping check``: validate before you run.

Both exit 0 when everything is valid and 78 (EX_CONFIG) with one line naming file:line, key and
reason when not, so they fit in a deploy script or a systemd ``ExecStartPre=``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from connector.cli import Context, friendly_errors, pass_ctx
from connector.config import EXIT_CONFIG
from connector.logs import redact
from connector.mapping import Mapping, MappingError, load_mapping


def _load_or_exit(path: Path) -> Mapping:
    try:
        return load_mapping(path)
    except MappingError as e:
        click.echo(f"mapping error: {redact(str(e))}", err=True)
        sys.exit(EXIT_CONFIG)


def _summary(mapping: Mapping) -> str:
    return (f"{len(mapping.to_mall)} shop status(es) mapped, {len(mapping.ignored)} ignored, "
            f"{len(mapping.from_mall)} MALL status(es) mapped back")


def format_mapping(mapping: Mapping) -> str:
    """The mapping as a readable table (shop status -> MALL status, ignored, from MALL)."""
    rows = mapping.rows()
    width = max([len(r.shop_status) for r in rows] + [len("shop status")])
    case = "case-sensitive" if mapping.case_sensitive else "case-insensitive"
    out = [f"Mapping {mapping.path} ({case})", ""]
    out.append("Shop status -> MALL status   [to_mall: pushed to MALL]")
    pushed = [r for r in rows if r.section == "to_mall"]
    out += [f"  {r.shop_status:<{width}}  -> {r.mall_status}" for r in pushed] or ["  (none: nothing is pushed)"]
    out += ["", "Ignored shop statuses       [ignore: never pushed]"]
    out += [f"  {r.shop_status}" for r in rows if r.section == "ignore"] or ["  (none)"]
    out += ["", "MALL status -> shop status  [from_mall: written to the outbox]"]
    back = [r for r in rows if r.section == "from_mall"]
    out += [f"  {r.mall_status:<{width}}  -> {r.shop_status}" for r in back] or ["  (none: shop_status is left empty)"]
    return "\n".join(out)


def secret_source_lines(cfg) -> list[str]:
    """Where each secret came from, never its value (the order of precedence is in config.example.toml)."""
    sources = cfg.secret_sources
    out = []
    if cfg.accounts:  # issue 18: each account's client_id and tokens
        for name, account in cfg.accounts.items():
            tokens = (f"{len(account.tokens)} webhook token(s) from {sources.get(f'accounts.{name}.tokens')}"
                      if account.tokens else "no webhook token (only the sweep finds its new orders)")
            out.append(f"✓ account {name}: client_id from {sources.get(f'accounts.{name}.client_id')}; {tokens}")
    elif "mall.client_id" in sources:
        out.append(f"✓ client_id: from {sources['mall.client_id']}")
    else:
        out.append("– client_id: not found from here: provide it as the systemd credential mall_client_id (visible "
                   "only inside the service), env MALL_CLIENT_ID, [mall] client_id_file or [mall] client_id")
    if cfg.accounts:
        pass  # each account's line names its tokens
    elif cfg.token_values:
        out.append(f"✓ webhook tokens: {len(cfg.token_values)} from {sources.get('receiver.tokens', 'the config file')}")
    else:
        out.append("– webhook tokens: none (set [receiver] tokens, env MALL_CONNECTOR_TOKENS or the systemd credential "
                   "webhook_tokens; until then only the unconfirmed sweep finds new orders)")
    from adapters import registry

    for name, spec in registry.adapters().items():
        for s in spec.secrets:
            if getattr(getattr(cfg.shop, name), s.key, None) is not None:
                out.append(f"✓ [shop.{name}] {s.key}: from {sources.get(f'shop.{name}.{s.key}', 'the config file')}")
    if cfg.alerts.smtp_password is not None:
        out.append("✓ [alerts] smtp_password: from the config file")
    return out


@click.group("mapping")
def mapping_group() -> None:
    """Check the status mapping file (shop statuses <-> MALL statuses).

    \b
    Examples:
      mall-connector mapping check
      mall-connector mapping check /etc/mall-connector/mapping.toml
    """


@mapping_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
@friendly_errors
def mapping_check(ctx: Context, file: Path | None) -> None:
    """Validate a mapping file and print it as a table.

    FILE defaults to the mapping the config uses ([shop] mapping, else the shipped one for the
    adapter). Exit code 0 when valid, 78 when not (the message names file:line, key and reason).

    \b
    Examples:
      mall-connector mapping check
      mall-connector mapping check my-mapping.toml
      mall-connector --config /etc/mall-connector/config.toml mapping check
    """
    path = file if file is not None else ctx.config().mapping_path
    _check_one(ctx, path, shop_problems=file is None)
    if file is None:  # issue 18: each [accounts.<name>] mapping too
        cfg = ctx.config()
        own = cfg.account_mapping_paths()
        for name in cfg.accounts:
            if name not in own:
                click.echo(f"\n– account {name}: uses [shop] mapping {path}")
                continue
            click.echo(f"\nAccount {name} ([accounts.{name}] mapping):")
            _check_one(ctx, own[name], shop_problems=True)


def _check_one(ctx: Context, path: Path, *, shop_problems: bool) -> None:
    """Print one mapping as a table and validate it; exit 78 naming file:line and key when it is not valid."""
    mapping = _load_or_exit(path)
    click.echo(format_mapping(mapping))
    if shop_problems:  # the config's own mapping: an API shop also says which statuses it does not have
        from adapters.shared.wiring import mapping_problems

        try:
            problems = mapping_problems(ctx.config(), mapping)
        except Exception as e:  # noqa: BLE001 - the shop unreachable is not a mapping error
            from connector.logs import redact

            problems = []
            click.echo(f"– cannot ask the shop for its statuses: {redact(str(e))}")
        for p in problems:
            click.echo(f"✗ {path}: {p}")
        if problems:
            sys.exit(EXIT_CONFIG)
    click.echo(f"\n✓ {path}: valid ({_summary(mapping)})")


@click.group("config")
def config_group() -> None:
    """Check the config file.

    \b
    Examples:
      mall-connector config check
      mall-connector --config /etc/mall-connector/config.toml config check
    """


@config_group.command("check")
@pass_ctx
@friendly_errors
def config_check(ctx: Context) -> None:
    """Validate the config file and its mapping file (nothing is contacted).

    Exit code 0 when both are valid, 78 when not (the message names file:line, key and reason).
    To also test MALL and the shop feed, use `mall-connector check`.

    \b
    Examples:
      mall-connector config check
      MALL_CONNECTOR_CONFIG=./config.toml mall-connector config check
    """
    cfg = ctx.config()
    click.echo(f"✓ config {cfg.source_path}: valid (adapter {cfg.shop.adapter}, time zone {cfg.shop.timezone})")
    for line in secret_source_lines(cfg):
        click.echo(line)
    path = cfg.mapping_path
    mapping = _load_or_exit(path)
    click.echo(f"✓ mapping {path}: valid ({_summary(mapping)})")
    own = cfg.account_mapping_paths()  # issue 18: each account's mapping
    for name in cfg.accounts:
        if name in own:
            mapping = _load_or_exit(own[name])
            click.echo(f"✓ account {name}: mapping {own[name]}: valid ({_summary(mapping)})")
        else:
            click.echo(f"– account {name}: uses [shop] mapping {path}")
