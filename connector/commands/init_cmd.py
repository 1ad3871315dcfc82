"""`mall-connector init`: a config and a mapping of the admin's own, written next to each other.

The shipped mapping lives inside the installed package and is replaced on every upgrade, so the
admin edits a copy: DIR/mapping.toml, which DIR/config.toml points at. Existing files are never
overwritten (created with O_EXCL). Run as root, the files get the service's group and 0640, so the
service user can read them and nobody else can.
"""

from __future__ import annotations

import grp
import os
import re
import sys
from importlib import resources
from pathlib import Path

import click

from connector.cli import friendly_errors

SERVICE_USER = "mall-connector"
ADAPTERS = ("generic_csv", "fastcentrik")
#: Where the service (docs/service.md) keeps its ledger and where the docs create the outbox folder.
LEDGER_URL = "sqlite:////var/lib/mall-connector/ledger.db"
OUTBOX = "/srv/mall-connector/outbox"


def example_text() -> str:
    return resources.files("connector.data").joinpath("config.example.toml").read_text(encoding="utf-8")


def _drop_section(text: str, name: str) -> str:
    """Remove ``[name]`` and its sub-tables (and the comment block right above it)."""
    out: list[str] = []
    skipping = False
    header = re.compile(r"^\[([^\]]+)\]")
    for line in text.splitlines(keepends=True):
        m = header.match(line)
        if m:
            skipping = m.group(1) == name or m.group(1).startswith(name + ".")
            if skipping:
                while out and out[-1].startswith("#"):
                    out.pop()
        if not skipping:
            out.append(line)
    return "".join(out)


def _set(text: str, pattern: str, replacement: str) -> str:
    new, n = re.subn(pattern, replacement, text, count=1, flags=re.M)
    if n != 1:
        raise click.ClickException(f"the example config has changed shape (no match for {pattern!r}); report this")
    return new


def render_config(adapter: str) -> str:
    """The example config with only ``adapter``'s section, the admin's own mapping, the service's ledger."""
    other = [a for a in ADAPTERS if a != adapter][0]
    text = _drop_section(example_text(), f"shop.{other}")
    text = _set(text, r'^adapter = "[a-z_]+"', f'adapter = "{adapter}"')
    text = _set(text, r'^# mapping = "mapping.toml"', 'mapping = "mapping.toml"   # your copy, next to this file')
    text = _set(text, r'^url = "sqlite:[^"]*"', f'url = "{LEDGER_URL}"')
    text = _set(text, r'^outbox = "outbox"', f'outbox = "{OUTBOX}"')
    header = (f"# Written by `mall-connector init --adapter {adapter}` from config.example.toml.\n"
              "# Check it with: mall-connector --config THIS_FILE config check\n")
    return header + text


def _write_new(path: Path, data: str, gid: int | None) -> bool:
    """Create ``path`` with ``data``; False (untouched) when it exists. Never follows a planted link."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        if gid is not None:
            os.fchown(f.fileno(), 0, gid)
            os.fchmod(f.fileno(), 0o640)
        else:
            os.fchmod(f.fileno(), 0o600)
        f.write(data)
    return True


@click.command("init")
@click.option("--dir", "folder", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for config.toml and mapping.toml, e.g. /etc/mall-connector.")
@click.option("--adapter", required=True, type=click.Choice(ADAPTERS), help="The shop's adapter.")
@click.option("--service-user", default=SERVICE_USER, show_default=True,
              help="Run as root: the files get this user's group and mode 0640.")
@friendly_errors
def init(folder: Path, adapter: str, service_user: str) -> None:
    """Write DIR/config.toml (from the example, with the adapter's sections) and DIR/mapping.toml (a copy
    of the shipped mapping, which is replaced on upgrade: edit yours).

    Existing files are never overwritten. As root, both files become root:<service group> 0640.

    \b
    Example (as root, after creating the service user):
      mall-connector init --dir /etc/mall-connector --adapter generic_csv
    """
    from mappings import default_mapping_path

    gid = None
    if os.geteuid() == 0:
        try:
            gid = grp.getgrnam(service_user).gr_gid
        except KeyError:
            click.echo(f"error: there is no group {service_user!r}: create the service user first "
                       f"(adduser --system --group --no-create-home --home /var/lib/{service_user} {service_user})",
                       err=True)
            sys.exit(1)
    folder.mkdir(parents=True, exist_ok=True)
    files = [(folder / "config.toml", render_config(adapter)),
             (folder / "mapping.toml", default_mapping_path(adapter).read_text(encoding="utf-8"))]
    for path, data in files:
        if _write_new(path, data, gid):
            owner = f"root:{service_user} 0640" if gid is not None else "0600"
            click.echo(f"wrote {path} ({owner})")
        else:
            click.echo(f"kept {path}: it exists (init never overwrites a file)")
    click.echo(f"\nNext: edit {folder / 'config.toml'} ([shop.{adapter}] source and outbox) and "
               f"{folder / 'mapping.toml'}, then: mall-connector --config {folder / 'config.toml'} config check")
