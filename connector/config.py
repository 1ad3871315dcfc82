"""The config file: TOML read with tomllib into frozen pydantic models that reject unknown keys.

Every error names the file, the key (dotted, e.g. ``sync.poll_interval_s``), its line when we can
find it, and what is wrong. Secrets are ``SecretStr`` so they never show in a repr or a log line.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, create_model, field_validator

DEFAULT_CONFIG_PATH = Path("/etc/mall-connector/config.toml")
ENV_CONFIG = "MALL_CONNECTOR_CONFIG"
ENV_CLIENT_ID = "MALL_CLIENT_ID"
ENV_TOKENS = "MALL_CONNECTOR_TOKENS"
CREDENTIAL_CLIENT_ID = "mall_client_id"  # file name under $CREDENTIALS_DIRECTORY (systemd LoadCredential=)
CREDENTIAL_TOKENS = "webhook_tokens"

EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h; systemd's RestartPreventExitStatus=78 stops restart loops


class ConfigError(Exception):
    """A config problem a human must fix; the message names file, key, line and reason."""

    def __init__(self, path: Path | str | None, key: str | None, message: str, line: int | None = None):
        self.path = str(path) if path else None
        self.key = key
        self.line = line
        self.reason = message
        where = self.path or "<config>"
        if line:
            where += f":{line}"
        super().__init__(f"{where}: {key + ': ' if key else ''}{message}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MallConfig(_Section):
    base_url: str = "https://mpapi.mallgroup.com"
    client_id: SecretStr | None = None
    client_id_file: Path | None = None
    include_test_orders: bool = False
    timeout_s: float = Field(10.0, gt=0, le=300)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http(s) URL such as https://mpapi.mallgroup.com")
        return v.rstrip("/")


class LedgerConfig(_Section):
    url: str = "sqlite:///ledger.db"


class ReceiverConfig(_Section):
    listen: str = "127.0.0.1:8080"
    tokens: tuple[SecretStr, ...] = ()
    public_url: str | None = None
    threads: int = Field(8, ge=1, le=64)
    max_body_bytes: int = Field(65536, ge=1024, le=10 * 1024 * 1024)
    wrong_token_limit_per_minute: int = Field(30, ge=1)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('must be "host:port", e.g. "127.0.0.1:8080"')
        return v

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, v: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for t in v:
            s = t.get_secret_value()
            if len(s) < 16 or not re.match(r"^[A-Za-z0-9._~-]+$", s):
                raise ValueError(
                    "each token must be at least 16 URL-safe characters (letters, digits, . _ ~ -); "
                    "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
        return v

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class SyncConfig(_Section):
    poll_interval_s: int = Field(30, ge=1)
    sweep_interval_s: int = Field(600, ge=1)
    drain_interval_s: int = Field(5, ge=1)
    max_attempts: int = Field(8, ge=1, le=1000)
    retry_base_s: float = Field(30.0, gt=0)
    retry_max_s: float = Field(3600.0, gt=0)
    refresh_age_s: int = Field(300, ge=0)
    batch_size: int = Field(200, ge=1, le=10000)
    confirm_deadline_warn_h: float = Field(20.0, gt=0, le=24)


class ShopConfig(_Section):
    """[shop]: the core's keys. Each registered adapter adds its own ``[shop.<name>]`` section
    (its ``AdapterSpec.config_model``): see ``config_model``."""

    adapter: str = "generic_csv"
    mapping: Path | None = None
    timezone: str = "Europe/Prague"
    unreadable_polls_alert: int = Field(3, ge=1)
    carrier_urls: dict[str, str] = {}

    @field_validator("adapter")
    @classmethod
    def _adapter(cls, v: str) -> str:
        from adapters import registry

        if v not in registry.adapters():
            raise ValueError(registry.describe_unknown(v))
        return v

    def adapter_secrets(self) -> list[SecretStr]:
        """The secret values of every adapter section (for redaction)."""
        from adapters import registry

        out = []
        for name, spec in registry.adapters().items():
            section = getattr(self, name, None)
            for secret in spec.secrets:
                value = getattr(section, secret.key, None)
                if isinstance(value, SecretStr):
                    out.append(value)
        return out

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (e.g. Europe/Prague, Europe/Bratislava)") from None
        return v

    @field_validator("carrier_urls")
    @classmethod
    def _carrier_urls(cls, v: dict[str, str]) -> dict[str, str]:
        for name, template in v.items():
            if "{number}" not in template:
                raise ValueError(f"template for carrier {name!r} must contain {{number}}")
        return v

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class AlertsConfig(_Section):
    email_to: tuple[str, ...] = ()
    email_from: str = "mall-connector@localhost"
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    webhook_url: str | None = None
    repeat_after_s: int = Field(3600, ge=60)
    rate_limit_alert_after_s: int = Field(900, ge=1)


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


class ConsoleConfig(_Section):
    """[console]: the admin console in the browser (see docs/console.md). Off unless enabled."""

    enabled: bool = False
    listen: str = "127.0.0.1:8081"
    language: Literal["cs", "en"] = "cs"  # the default; each user can switch
    users_file: Path = Path("console-users.toml")  # relative to the config file's folder
    secure_cookies: bool = True  # browsers also keep Secure cookies on http://127.0.0.1 and localhost
    session_max_age_s: int = Field(8 * 3600, ge=300, le=7 * 86400)
    login_attempts_per_minute: int = Field(5, ge=1, le=1000)  # failed logins per address and per user name
    threads: int = Field(4, ge=1, le=32)
    trusted_proxy: str | None = None  # e.g. "127.0.0.1" when nginx is in front (X-Forwarded-For)
    url_prefix: str = Field("", pattern=r"^(/[A-Za-z0-9._-]+)*$")  # e.g. "/console" behind nginx's location

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        return ReceiverConfig._listen(v)

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class CoreConfig(_Section):
    """The core's sections. ``Config`` (``config_model()``) is this plus the adapters' sections."""

    mall: MallConfig = MallConfig()
    ledger: LedgerConfig = LedgerConfig()
    receiver: ReceiverConfig = ReceiverConfig()
    sync: SyncConfig = SyncConfig()
    shop: ShopConfig = ShopConfig()
    alerts: AlertsConfig = AlertsConfig()
    logging: LoggingConfig = LoggingConfig()
    console: ConsoleConfig = ConsoleConfig()
    # Where the file was read from; not a TOML key.
    source_path: Path | None = Field(None, exclude=True)

    @property
    def client_id(self) -> str:
        if self.mall.client_id is None:
            raise ConfigError(
                self.source_path, "mall.client_id",
                f"no MALL client_id: set it in [mall], in env {ENV_CLIENT_ID}, or as the systemd credential "
                f"{CREDENTIAL_CLIENT_ID}",
            )
        return self.mall.client_id.get_secret_value()

    @property
    def token_values(self) -> tuple[str, ...]:
        return tuple(t.get_secret_value() for t in self.receiver.tokens)

    @property
    def mapping_path(self) -> Path:
        from adapters import registry

        return self.shop.mapping or registry.get(self.shop.adapter).default_mapping


def config_model() -> type[CoreConfig]:
    """The Config model: the core's sections, and ``[shop.<name>]`` for every registered adapter
    (adapters/registry.py). Built from the registry, so a new adapter changes no line here."""
    from adapters import registry

    return _config_model(tuple((name, spec.config_model) for name, spec in registry.adapters().items()))


@functools.cache
def _config_model(sections: tuple[tuple[str, type[BaseModel]], ...]) -> type[CoreConfig]:
    shop = create_model("ShopConfig", __base__=ShopConfig, __module__=__name__,
                        **{name: (model, Field(default_factory=model)) for name, model in sections})
    return create_model("Config", __base__=CoreConfig, __module__=__name__,
                        shop=(shop, Field(default_factory=shop)))


# Moved to the adapter packages; kept importable from here for older code.
_MOVED = {
    "GenericCsvConfig": "adapters.generic_csv.config",
    "FastCentrikConfig": "adapters.fastcentrik.config",
    "FastCentrikFields": "adapters.fastcentrik.config",
}


def __getattr__(name: str):
    if name == "Config":
        return config_model()
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_config_path(explicit: str | os.PathLike | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_CONFIG)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def find_key_line(text: str, dotted: str) -> int | None:
    """Best-effort line number of a dotted key in TOML text (for error messages)."""
    parts = dotted.split(".")
    key = parts[-1]
    section = ".".join(parts[:-1])
    current = ""
    header = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+")
    keyline = re.compile(r'^\s*"?' + re.escape(key) + r'"?\s*=')
    for i, line in enumerate(text.splitlines(), 1):
        m = header.match(line)
        if m:
            current = m.group(1).replace('"', "")
            continue
        if current == section and keyline.match(line):
            return i
    if section:  # the whole section may be the problem
        for i, line in enumerate(text.splitlines(), 1):
            m = header.match(line)
            if m and m.group(1).replace('"', "") == dotted:
                return i
    return None


def _read_secret_file(path: Path, key: str, source: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(source, key, f"cannot read secret file {path}: {e.strerror}") from None
    if not value:
        raise ConfigError(source, key, f"secret file {path} is empty")
    return value


def _resolve_path(base: Path, value: Any) -> Any:
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _resolve_sqlite_url(base: Path, url: str) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        rest = url[len(prefix):]
        if rest and not rest.startswith(":"):
            return prefix + str((base / rest).resolve())
    return url


def load_config(path: str | os.PathLike | None = None, *, environ: dict[str, str] | None = None) -> Config:
    """Read, validate and resolve the config file. Raises ConfigError."""
    env = os.environ if environ is None else environ
    cfg_path = resolve_config_path(path)
    try:
        raw_text = cfg_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(cfg_path, None, "config file not found (use --config PATH or MALL_CONNECTOR_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(cfg_path, None, f"cannot read config file: {e}") from None
    try:
        data = tomllib.loads(raw_text)
    except tomllib.TOMLDecodeError as e:
        line = getattr(e, "lineno", None)
        msg = str(e)
        m = re.search(r"\(at line (\d+)", msg)
        if line is None and m:
            line = int(m.group(1))
        raise ConfigError(cfg_path, None, f"not valid TOML: {msg}", line) from None
    return config_from_dict(data, cfg_path, raw_text, env)


def config_from_dict(data: dict, cfg_path: Path, raw_text: str = "", env: dict[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    base = cfg_path.resolve().parent
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    mall = data.setdefault("mall", {})
    receiver = data.setdefault("receiver", {})
    ledger = data.setdefault("ledger", {})
    shop = data.setdefault("shop", {})
    for section in (mall, receiver, ledger, shop):
        if not isinstance(section, dict):
            raise ConfigError(cfg_path, None, "every top-level key must be a [section] table")

    # Secrets: config value, then env, then systemd credentials.
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if not mall.get("client_id"):
        if env.get(ENV_CLIENT_ID):
            mall["client_id"] = env[ENV_CLIENT_ID]
        elif mall.get("client_id_file"):
            mall["client_id"] = _read_secret_file(_resolve_path(base, mall["client_id_file"]), "mall.client_id_file", cfg_path)
        elif cred_dir and (Path(cred_dir) / CREDENTIAL_CLIENT_ID).is_file():
            mall["client_id"] = _read_secret_file(Path(cred_dir) / CREDENTIAL_CLIENT_ID, "mall.client_id", cfg_path)
    if not receiver.get("tokens"):
        raw_tokens = env.get(ENV_TOKENS)
        if not raw_tokens and cred_dir and (Path(cred_dir) / CREDENTIAL_TOKENS).is_file():
            raw_tokens = _read_secret_file(Path(cred_dir) / CREDENTIAL_TOKENS, "receiver.tokens", cfg_path)
        if raw_tokens:
            receiver["tokens"] = [t.strip() for t in re.split(r"[,\n]", raw_tokens) if t.strip()]

    # Relative paths are relative to the config file's folder; under systemd a relative ledger file
    # goes to the service's StateDirectory (/var/lib/mall-connector), since /etc is read-only there.
    state_dir = (env.get("STATE_DIRECTORY") or "").split(":")[0]
    ledger_base = Path(state_dir) if state_dir else base
    if "url" in ledger and isinstance(ledger["url"], str):
        ledger["url"] = _resolve_sqlite_url(ledger_base, ledger["url"])
    else:
        ledger["url"] = _resolve_sqlite_url(ledger_base, LedgerConfig().url)
    if isinstance(shop.get("mapping"), str):
        shop["mapping"] = _resolve_path(base, shop["mapping"])
    _prepare_adapter_sections(shop, base, cfg_path, env)

    try:
        cfg = config_model().model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = [str(p) for p in first["loc"]]
        dotted = ".".join(loc)
        if first["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; see config.example.toml)"
        else:
            msg = first["msg"].removeprefix("Value error, ")
            if first["type"] not in ("missing",) and "input" in first and not _is_secret(dotted):
                msg += f" (got {first['input']!r})"
        more = len(e.errors()) - 1
        if more:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(cfg_path, dotted, msg, find_key_line(raw_text, dotted)) from None
    return cfg.model_copy(update={"source_path": cfg_path})


def _prepare_adapter_sections(shop: dict, base: Path, cfg_path: Path, env: dict[str, str]) -> None:
    """Each registered adapter's [shop.<name>] before validation: its relative paths made relative to
    the config folder, its secrets read from env or systemd credentials when the file has none."""
    from adapters import registry

    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    for name, spec in registry.adapters().items():
        sub = shop.get(name, {})
        if not isinstance(sub, dict):
            raise ConfigError(cfg_path, f"shop.{name}", "must be a table")
        sub = shop[name] = dict(sub)
        for key in spec.paths:
            value = sub.get(key)
            if value is None:
                default = spec.config_model.model_fields.get(key)
                value = default.get_default(call_default_factory=True) if default is not None else None
            if isinstance(value, (str, Path)) and not re.match(r"^https?://", str(value), re.IGNORECASE):
                sub[key] = str(_resolve_path(base, value))
        for secret in spec.secrets:
            if sub.get(secret.key):
                continue
            credential = Path(cred_dir) / secret.credential(name) if cred_dir else None
            if env.get(secret.env_var(name)):
                sub[secret.key] = env[secret.env_var(name)]
            elif credential is not None and credential.is_file():
                sub[secret.key] = _read_secret_file(credential, f"shop.{name}.{secret.key}", cfg_path)


def _is_secret(dotted: str) -> bool:
    if _is_adapter_secret(dotted):
        return True
    return any(s in dotted for s in ("client_id", "tokens", "password"))


def _is_adapter_secret(dotted: str) -> bool:
    """``shop.<adapter>.<key>`` for a key the adapter declares secret."""
    from adapters import registry

    parts = dotted.split(".")
    if len(parts) < 3 or parts[0] != "shop" or parts[1] not in registry.adapters():
        return False
    return any(s.key == parts[2] for s in registry.get(parts[1]).secrets)
