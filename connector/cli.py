"""The ``mall-connector`` command line.

Every command's errors end as one clear line on stderr and a documented exit code, never a raw
traceback: 78 for config errors (EX_CONFIG), 1 for anything else unexpected.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Callable

import click

from connector import __version__
from connector.config import EXIT_CONFIG, Config, ConfigError, load_config
from connector.logs import redact, register_secret, setup_logging

log = logging.getLogger("mall_connector")


class Context:
    """What the group option parsing hands to every command."""

    def __init__(self, config_path: str | None, log_format: str | None, log_level: str | None):
        self.config_path = config_path
        self.log_format = log_format
        self.log_level = log_level
        self._config: Config | None = None

    def config(self) -> Config:
        """The validated config (loaded once); secrets registered for redaction."""
        if self._config is None:
            cfg = load_config(self.config_path)
            if cfg.mall.client_id is not None:
                register_secret(cfg.mall.client_id.get_secret_value())
            for t in cfg.token_values:
                register_secret(t)
            for account in cfg.accounts.values():  # issue 18
                if account.client_id is not None:
                    register_secret(account.client_id.get_secret_value())
            for secret in (*cfg.shop.adapter_secrets(), cfg.alerts.smtp_password):
                if secret is not None:
                    register_secret(secret.get_secret_value())
            setup_logging(self.log_level or cfg.logging.level, self.log_format or cfg.logging.format)
            self._config = cfg
        return self._config


pass_ctx = click.make_pass_decorator(Context)


def _terminal_safe(text: str) -> str:
    from connector.safety import terminal_safe

    return terminal_safe(text)


def friendly_errors(fn: Callable) -> Callable:
    """Turn known errors into one line and an exit code; unknown ones into one redacted line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as e:
            report_error(f"config error: {_terminal_safe(redact(str(e)))}")
            sys.exit(EXIT_CONFIG)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - the CLI promise: no raw tracebacks
            from connector.errors import describe_error

            code, message = describe_error(e)
            log.debug("unexpected error", exc_info=True)
            report_error(f"error: {_terminal_safe(redact(message))}")
            sys.exit(code)

    return wrapper


def report_error(line: str) -> None:
    """One error line on stderr, in the chosen --log-format (a JSON object for journald with json)."""
    click_ctx = click.get_current_context(silent=True)
    obj = getattr(click_ctx, "obj", None) if click_ctx else None
    fmt = getattr(obj, "log_format", None)
    if fmt is None and isinstance(obj, Context) and obj._config is not None:
        fmt = obj._config.logging.format
    if fmt == "json":
        log.error(line)
    else:
        click.echo(line, err=True)


class LazyGroup(click.Group):
    """The main group, importing a command's module only when that command is asked for.

    `run` must not load the console, the sandbox, the exports or openpyxl (idle RSS, issue 17): a name in
    ``LAZY_HINTS`` imports just its module; any other name, and ``--help``, register every command."""

    def get_command(self, ctx: click.Context, cmd_name: str):
        if cmd_name not in self.commands:
            hint = LAZY_HINTS.get(cmd_name)
            _register([entry for entry in COMMANDS if entry[0] == hint] if hint else None)
            if cmd_name not in self.commands and hint:
                _register()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        _register()
        return super().list_commands(ctx)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="Config file. Default: $MALL_CONNECTOR_CONFIG, else /etc/mall-connector/config.toml.",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None, help="Log format (overrides [logging] format).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None, help="Log level.")
@click.version_option(__version__, prog_name="mall-connector")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, log_format: str | None, log_level: str | None) -> None:
    """Keep order statuses in step between your e-shop and the MALL Marketplace.

    Shop status changes are mapped onto MALL statuses and pushed once; MALL's webhooks are
    received, the full order is pulled and handed to the shop. A SQLite ledger records what was
    synced. Start with `mall-connector demo`, then `mall-connector check` on your own config.
    """
    setup_logging(log_level or "info", log_format or "text")
    ctx.obj = Context(config_path, log_format, log_level)


_registered: set[str] = set()


def _register(entries: list[tuple[str, list[str]]] | None = None) -> None:
    """Attach the commands that live in their own modules (``entries``: only those; default: all)."""
    import importlib

    for module, names in (COMMANDS if entries is None else entries):
        if module in _registered:
            continue
        _registered.add(module)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:  # a module not written yet must not break the others
            if e.name and (e.name == module or module.startswith(e.name)):
                continue
            raise
        for name in names:
            main.add_command(getattr(mod, name))


#: (module, [click command objects]) registered on the main group.
COMMANDS: list[tuple[str, list[str]]] = [
    ("connector.sandbox.cli", ["sandbox"]),
    ("connector.commands.config_cmd", ["config_group", "mapping_group"]),
    ("connector.commands.sync_cmd", ["sync_once"]),
    ("connector.commands.ledger_cmd", ["ledger_group"]),
    ("connector.commands.run_cmd", ["run", "check", "demo"]),
    ("connector.commands.ops_cmd", ["orders_group", "export_group"]),
    ("connector.commands.init_cmd", ["init"]),
    ("connector.commands.backup_cmd", []),  # adds `ledger backup` to the ledger group
    ("connector.commands.migrate_cmd", []),  # adds `ledger migrate --to URL` (issue 18)
    ("connector.commands.labels_cmd", ["labels"]),
    ("connector.console.cli", ["console_group"]),
    ("connector.commands.stats_cmd", ["stats"]),  # issue 17: MALL calls per day by kind
]

#: Commands whose module is imported alone when they are asked for (see LazyGroup); the rest load all.
LAZY_HINTS: dict[str, str] = {
    "run": "connector.commands.run_cmd",
    "check": "connector.commands.run_cmd",
    "demo": "connector.commands.run_cmd",
    "sync-once": "connector.commands.sync_cmd",
    "sandbox": "connector.sandbox.cli",
}


if __name__ == "__main__":  # pragma: no cover
    main()
