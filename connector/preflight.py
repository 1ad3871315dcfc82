"""What `run` checks before it starts: problems a restart cannot fix are config errors (exit 78).

systemd restarts the service on failure (``Restart=on-failure``) but not on 78
(``RestartPreventExitStatus=78``). A missing or unwritable ledger folder, a missing outbox folder
and a receiver address another program holds all need a human, so they end as a ConfigError that
names the key and says what to do, instead of a restart loop until start-limit-hit.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from connector.config import Config, ConfigError

# `ledger …` read-only commands point here when there is no ledger yet.
STATE_DIRECTORY_HINT = ("the service keeps its ledger in its StateDirectory, /var/lib/mall-connector: set [ledger] url "
                        "= \"sqlite:////var/lib/mall-connector/ledger.db\" and run this command as root or as "
                        "mall-connector (runuser -u mall-connector -- mall-connector …)")


def section_key(dotted: str) -> str:
    """``receiver.listen`` -> ``[receiver] listen`` (how the config file shows it)."""
    section, _, key = dotted.rpartition(".")
    return f"[{section}] {key}" if section else dotted


def whoami() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, ImportError):
        return f"uid {os.geteuid()}"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite ledger URL; None for other databases and in-memory ones."""
    from connector.ledger.location import sqlite_path as path_of

    return path_of(url)


EXIT_NO_LEDGER = 66  # EX_NOINPUT from sysexits.h: the input (the ledger) does not exist


class LedgerMissing(Exception):
    """A command that only reads found no ledger; it must not create an empty one."""

    exit_code = EXIT_NO_LEDGER


def require_existing_ledger(config: Config) -> None:
    """For read-only commands: a SQLite ledger that does not exist is an error, never created."""
    path = sqlite_path(config.ledger.url)
    if path is not None and not path.exists():
        raise LedgerMissing(f"no ledger at {path} ([ledger] url in {config.source_path}); nothing was created. "
                            f"If the service runs, {STATE_DIRECTORY_HINT}")


def folder_problem(folder: Path) -> str | None:
    """Why the connector's user cannot create files in ``folder``, or None."""
    if not folder.exists():
        return f"the folder {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable by {whoami()}"
    return None


def check_ledger_folder(config: Config) -> None:
    path = sqlite_path(config.ledger.url)
    if path is None:
        return
    problem = folder_problem(path.parent)
    if problem:
        raise ConfigError(config.source_path, "ledger.url",
                          f"{section_key('ledger.url')}: {problem}; create it for the service user or point the "
                          "url at a writable folder (the service's is /var/lib/mall-connector, its StateDirectory)")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(config.source_path, "ledger.url",
                          f"{section_key('ledger.url')}: the ledger {path} is not readable and writable by {whoami()}: "
                          f"chown it to the service user")


def outbox_key(config: Config) -> str:
    return f"shop.{config.shop.adapter}.outbox"


def outbox_settings(config: Config):
    """The adapter's section when it has an outbox folder (a FeedSection); None for an adapter without one."""
    sub = getattr(config.shop, config.shop.adapter)
    return sub if hasattr(sub, "outbox") and hasattr(sub, "outbox_mode") else None


def check_outbox_folder(config: Config) -> None:
    """The outbox folder must exist (it is shared with the shop, so we never guess its owner and mode)."""
    sub = outbox_settings(config)
    if sub is None:
        return
    folder = Path(sub.outbox)
    key = outbox_key(config)
    if not folder.is_dir():
        raise ConfigError(config.source_path, key,
                          f"{section_key(key)}: the outbox folder {folder} does not exist: create it (docs/service.md, "
                          "\"The outbox\": a setgid folder of a group the shop's import user is in)")
    group = getattr(sub, "outbox_group", None)
    if group is not None:
        from connector.files import resolve_gid

        try:
            resolve_gid(group)
        except KeyError:
            gkey = f"shop.{config.shop.adapter}.outbox_group"
            raise ConfigError(config.source_path, gkey, f"{section_key(gkey)}: there is no group {group!r} on this "
                                                        "machine (create it with: addgroup --system NAME)") from None


def receiver_in_use(error: OSError, config: Config) -> ConfigError | None:
    """The ConfigError for a receiver bind failure a restart cannot fix (in use, not an address of ours)."""
    if error.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
        what = {errno.EADDRINUSE: "is already in use by another program (another mall-connector?)",
                errno.EADDRNOTAVAIL: "is not an address of this machine",
                errno.EACCES: "needs privileges (ports below 1024)"}[error.errno]
        return ConfigError(config.source_path, "receiver.listen",
                           f"{section_key('receiver.listen')} = \"{config.receiver.listen}\": the address {what}; "
                           "stop that program or choose another address")
    return None


def check_receiver_free(config: Config) -> None:
    rc = config.receiver
    family = socket.AF_INET6 if ":" in rc.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress does
        try:
            s.bind((rc.host, rc.port))
        except OSError as e:
            err = receiver_in_use(e, config)
            if err:
                raise err from None
            raise


def preflight(config: Config) -> None:
    """Everything `run` needs that a restart cannot fix. Raises ConfigError (exit 78)."""
    if not config.accounts:  # issue 18: each [accounts.<name>] has its client_id (checked when loaded)
        config.client_id  # noqa: B018 - raises ConfigError when no source has one
    check_ledger_folder(config)
    check_outbox_folder(config)
    check_receiver_free(config)
