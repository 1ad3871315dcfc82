"""`mall-connector init`: a config and a mapping of the admin's own, written next to each other.

The shipped mapping lives inside the installed package and is replaced on every upgrade, so the
admin edits a copy: DIR/mapping.toml, which DIR/config.toml points at. Existing files are never
overwritten (created with O_EXCL). Run as root, the files get the service's group and 0640, so the
service user can read them and nobody else can.
"""

from __future__ import annotations

import grp
import json
import os
import re
import sys
from importlib import resources
from pathlib import Path

import click

from connector.cli import friendly_errors

SERVICE_USER = "mall-connector"
#: The file-based adapters of the first release; every adapter in the registry can be initialised.
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


def registered_adapters() -> list[str]:
    """The adapters init can write a config for: every usable one in the registry."""
    from adapters import registry

    return list(registry.adapters())


def render_config(adapter: str, base_url: str | None = None) -> str:
    """The example config with only ``adapter``'s section, the admin's own mapping, the service's ledger
    (and, for an API shop, its ``base_url``)."""
    text = example_text()
    for other in registered_adapters():
        if other != adapter:
            text = _drop_section(text, f"shop.{other}")
    text = _set(text, r'^adapter = "[a-z_]+"', f'adapter = "{adapter}"')
    text = _set(text, r'^# mapping = "mapping.toml"', 'mapping = "mapping.toml"   # your copy, next to this file')
    text = _set(text, r'^url = "sqlite:[^"]*"', f'url = "{LEDGER_URL}"')
    text = re.sub(r'^outbox = "outbox"', f'outbox = "{OUTBOX}"', text, count=1, flags=re.M)  # file shops only
    if base_url is not None:
        head, sep, section = text.partition(f"\n[shop.{adapter}]\n")
        if not sep:
            raise click.ClickException(f"the example config has no [shop.{adapter}] section; report this")
        section = _set(section, r'^base_url = "[^"]*"', f"base_url = {json.dumps(base_url)}")
        text = head + sep + section
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


def _read_secret(path: Path, what: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise click.ClickException(f"{what}: cannot read {path}: {e.strerror}") from None
    if not value:
        raise click.ClickException(f"{what}: {path} is empty")
    return value


def shop_section(spec, base_url: str | None, secret_files: tuple[str, ...], environ) -> object:
    """The adapter's section as init reads the shop with it: the base URL from --shop-url, each secret from
    --secret-file KEY=PATH, the systemd credential or env MALL_CONNECTOR_<ADAPTER>_<KEY> (never argv)."""
    from pydantic import ValidationError

    known = {s.key: s for s in spec.secrets}
    values: dict[str, object] = {}
    for item in secret_files:
        key, sep, path = item.partition("=")
        if not sep or key not in known:
            raise click.BadParameter(f"{item!r}: expected KEY=PATH with KEY one of {', '.join(known) or '(none)'}",
                                     param_hint="--secret-file")
        values[key] = _read_secret(Path(path), f"--secret-file {key}")
    cred_dir = environ.get("CREDENTIALS_DIRECTORY")
    for key, secret in known.items():
        credential = Path(cred_dir) / secret.credential(spec.name) if cred_dir else None
        if key in values:
            continue
        if credential is not None and credential.is_file():
            values[key] = _read_secret(credential, f"the credential {secret.credential(spec.name)}")
        elif environ.get(secret.env_var(spec.name), "").strip():
            values[key] = environ[secret.env_var(spec.name)].strip()
    from connector.logs import register_secret

    for value in values.values():
        register_secret(str(value))  # a secret never shows in a log line or an error
    if base_url is not None:
        values["base_url"] = base_url
    try:
        return spec.config_model(**values)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "?"
        raise click.ClickException(f"[shop.{spec.name}] {field}: {first.get('msg')}") from None


@click.command("init")
@click.option("--dir", "folder", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for config.toml and mapping.toml, e.g. /etc/mall-connector.")
@click.option("--adapter", required=True, metavar="NAME",
              help="The shop's adapter, one of the registered ones: generic_csv, fastcentrik, shoptet, woocommerce, ….")
@click.option("--shop-url", default=None, metavar="URL",
              help="An API shop's base URL, written to [shop.<adapter>] base_url (Shoptet: read for its statuses).")
@click.option("--secret-file", "secret_files", multiple=True, metavar="KEY=PATH",
              help="A secret of the adapter from a file, e.g. api_token=/root/shoptet-token (else the env "
                   "MALL_CONNECTOR_<ADAPTER>_<KEY> or the systemd credential); never written to config.toml.")
@click.option("--service-user", default=SERVICE_USER, show_default=True,
              help="Run as root: the files get this user's group and mode 0640.")
@friendly_errors
def init(folder: Path, adapter: str, shop_url: str | None, secret_files: tuple[str, ...], service_user: str) -> None:
    """Write DIR/config.toml (from the example, with the adapter's sections) and DIR/mapping.toml (a copy
    of the shipped mapping, which is replaced on upgrade: edit yours).

    For Shoptet, whose status ids differ per shop, mapping.toml is written from the shop's own statuses
    (GET /api/orders/statuses), with the API token from env MALL_CONNECTOR_SHOPTET_API_TOKEN or
    --secret-file api_token=PATH.

    Existing files are never overwritten. As root, both files become root:<service group> 0640.

    \b
    Examples (as root, after creating the service user):
      mall-connector init --dir /etc/mall-connector --adapter generic_csv
      MALL_CONNECTOR_SHOPTET_API_TOKEN=… mall-connector init --dir /etc/mall-connector --adapter shoptet
    """
    from adapters import registry
    from mappings import default_mapping_path

    names = registered_adapters()
    if adapter not in names:
        raise click.BadParameter(f"{adapter!r} is not a registered adapter (registered: {', '.join(names)})",
                                 param_hint="--adapter")
    spec = registry.get(adapter)
    if shop_url is not None and "base_url" not in spec.config_model.model_fields:
        raise click.BadParameter(f"the {adapter} adapter has no base_url", param_hint="--shop-url")
    mapping_text = default_mapping_path(adapter).read_text(encoding="utf-8")
    if spec.init_mapping is not None and not (folder / "mapping.toml").exists():
        section = shop_section(spec, shop_url, secret_files, os.environ)
        try:
            mapping_text = spec.init_mapping(section)
        except Exception as e:  # noqa: BLE001 - one clear line, the shop named, no traceback
            raise click.ClickException(f"reading the {adapter} shop for the mapping failed: {e}") from None
        click.echo(f"read the {adapter} shop's own statuses from {getattr(section, 'base_url', adapter)}")

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
    files = [(folder / "config.toml", render_config(adapter, shop_url)),
             (folder / "mapping.toml", mapping_text)]
    for path, data in files:
        if _write_new(path, data, gid):
            owner = f"root:{service_user} 0640" if gid is not None else "0600"
            click.echo(f"wrote {path} ({owner})")
        else:
            click.echo(f"kept {path}: it exists (init never overwrites a file)")
    click.echo(f"\nNext: edit {folder / 'config.toml'} ([shop.{adapter}] source and outbox) and "
               f"{folder / 'mapping.toml'}, then: mall-connector --config {folder / 'config.toml'} config check")
