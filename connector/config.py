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

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, create_model,
                      field_validator, model_validator)

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
    allow_insecure: bool = False  # allow an http:// base_url on a non-loopback host (never for the real MALL)
    max_response_bytes: int = Field(20 * 1024 * 1024, ge=64 * 1024, le=1024**3)
    deadline_s: float = Field(60.0, gt=0, le=3600)
    max_pages: int = Field(1000, ge=1, le=1_000_000)
    # issue 17: below this share of the daily limit left, optional calls stop (docs/quota.md)
    reserve_share: float = Field(0.1, ge=0, le=0.9)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http(s) URL such as https://mpapi.mallgroup.com")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _https_unless_loopback(self) -> "MallConfig":
        """The client_id is sent in the query string: over plain http anyone on the path reads it."""
        from connector.safety import is_loopback_url

        if self.base_url.lower().startswith("http://") and not self.allow_insecure and not is_loopback_url(self.base_url):
            raise ValueError(f"base_url {self.base_url} is plain http: the client_id would travel unencrypted; "
                             "use https://, or set [mall] allow_insecure = true for a test server you trust")
        return self


class LedgerConfig(_Section):
    url: str = "sqlite:///ledger.db"
    # PostgreSQL (docs/scaling.md): the password is best kept out of the URL, in the systemd credential
    # ledger_password, env MALL_CONNECTOR_LEDGER_PASSWORD or this file; config_from_dict puts it in the URL.
    password_file: Path | None = None
    lease_s: float = Field(30.0, ge=3, le=600)  # a SIGKILLed replica's leadership ends within this bound


class ReceiverConfig(_Section):
    listen: str = "127.0.0.1:8080"
    tokens: tuple[SecretStr, ...] = ()
    public_url: str | None = None
    threads: int = Field(8, ge=1, le=64)
    max_body_bytes: int = Field(65536, ge=1024, le=10 * 1024 * 1024)
    wrong_token_limit_per_minute: int = Field(30, ge=1)
    # Slow clients (issue 16): all connections, those of one address, and a whole-request deadline
    # counted from the request's first byte (waitress alone has none; see receiver/server.py).
    connection_limit: int = Field(500, ge=1, le=10000)
    max_connections_per_address: int = Field(50, ge=1, le=10000)
    request_timeout_s: float = Field(10.0, gt=0, le=300)
    # Reverse proxies (addresses or networks) whose X-Forwarded-For the throttle believes.
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from connector.safety import parse_networks

        parse_networks(v)  # ValueError names the bad entry
        return v

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
        from connector.safety import token_weakness

        for i, t in enumerate(v, 1):
            s = t.get_secret_value()
            if not re.match(r"^[A-Za-z0-9._~-]+$", s):
                raise ValueError(
                    f"token {i} must be URL-safe characters only (letters, digits, . _ ~ -); "
                    "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            weak = token_weakness(s)
            if weak:
                raise ValueError(
                    f"token {i} is too weak: {weak}; a token needs at least 128 random bits (22 or more "
                    "characters from: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
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
    # issue 17: confirmations are checked against MALL's order list in one batch per this many seconds
    verify_window_s: int = Field(900, ge=0, le=86400)


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
    #: One message per channel per digest_s lists new, still-open and resolved problems (urgent ones: at once).
    digest_s: int = Field(300, ge=1)


class MdpConfig(_Section):
    """[mdp]: carrier labels for MALL Delivery orders (docs/mdp.md)."""

    labels: bool = True  # ask MALL for labels when the connector pushes shipping for an MDP order
    labels_dir: Path = Path("labels")
    labels_type: Literal["pdf", "zpl"] = "pdf"
    labels_per_page: int = Field(4, ge=1, le=16)
    first_position: int = Field(1, ge=1, le=16)
    print_command: tuple[str, ...] | None = None  # argv; the label files are appended, never run by a shell
    print_timeout_s: float = Field(60.0, gt=0, le=3600)

    @field_validator("print_command", mode="before")
    @classmethod
    def _argv(cls, v: Any) -> Any:
        if isinstance(v, str):
            import shlex

            try:
                v = shlex.split(v)
            except ValueError as e:
                raise ValueError(f"cannot split into arguments: {e}") from None
        if v is not None and (not v or not all(isinstance(a, str) and a for a in v)):
            raise ValueError('must be a command, e.g. "lp -d LABELS" or ["lp", "-d", "LABELS"]')
        return v

    @field_validator("first_position")
    @classmethod
    def _position(cls, v: int, info) -> int:
        per_page = info.data.get("labels_per_page", 4)
        if v > per_page:
            raise ValueError(f"must be at most labels_per_page ({per_page})")
        return v


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
    carriers: "CarriersConfig" = Field(default_factory=lambda: _default_carriers())  # issue 15, connector/carrier_config.py
    mdp: MdpConfig = MdpConfig()
    console: ConsoleConfig = ConsoleConfig()
    accounts: dict[str, "AccountConfig"] = {}  # issue 18: several MALL accounts (connector/accounts.py)
    # Where the file was read from; not a TOML key.
    source_path: Path | None = Field(None, exclude=True)
    # Where each secret came from ("mall.client_id" -> "the systemd credential `mall_client_id`"); never the value.
    _secret_sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def secret_sources(self) -> dict[str, str]:
        return dict(self._secret_sources)

    @property
    def client_id(self) -> str:
        if self.mall.client_id is None:
            raise ConfigError(
                self.source_path, "mall.client_id",
                f"no MALL client_id: provide it as the systemd credential {CREDENTIAL_CLIENT_ID} (LoadCredential=), "
                f"in env {ENV_CLIENT_ID}, in a file named by [mall] client_id_file, or as [mall] client_id "
                "(the first of these that is set wins)",
            )
        return self.mall.client_id.get_secret_value()

    @property
    def token_values(self) -> tuple[str, ...]:
        """Every valid webhook token: [receiver] tokens, or (issue 18) those of every [accounts.<name>]."""
        return tuple(t.get_secret_value() for t in self.receiver.tokens) + tuple(
            t.get_secret_value() for a in self.accounts.values() for t in a.tokens)

    @property
    def mapping_path(self) -> Path:
        from adapters import registry

        return self.shop.mapping or registry.get(self.shop.adapter).default_mapping

    def account_mapping_paths(self) -> dict[str, Path]:
        """issue 18: account -> its own mapping file, for the ``[accounts.<name>]`` that set ``mapping``."""
        return {name: a.mapping for name, a in self.accounts.items() if a.mapping is not None}


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


ENV_LEDGER_URL = "MALL_CONNECTOR_LEDGER_URL"  # overrides [ledger] url (containers, test runs on PostgreSQL)
ENV_LEDGER_PASSWORD = "MALL_CONNECTOR_LEDGER_PASSWORD"
CREDENTIAL_LEDGER_PASSWORD = "ledger_password"


def resolve_ledger_url(ledger: dict, base: Path, cfg_path: Path, env) -> dict[str, str]:
    """``[ledger] url`` from env MALL_CONNECTOR_LEDGER_URL when set; a PostgreSQL URL without a password gets
    the first of: the systemd credential ``ledger_password``, env MALL_CONNECTOR_LEDGER_PASSWORD,
    ``[ledger] password_file``. The password is registered for redaction (it is in the URL from here on)."""
    from connector.logs import register_secret

    sources: dict[str, str] = {}
    if env.get(ENV_LEDGER_URL):
        ledger["url"] = env[ENV_LEDGER_URL].strip()
        sources["ledger.url"] = f"the environment variable {ENV_LEDGER_URL}"
    url = ledger.get("url")
    if not isinstance(url, str) or not url.startswith("postgresql"):
        return sources
    from connector.ledger.dialect import url_password, with_password

    try:
        current = url_password(url)
    except ValueError:
        raise ConfigError(cfg_path, "ledger.url", "not a database URL (postgresql+psycopg://user@host:port/database)",
                          None) from None
    password, where = None, None
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    cred = Path(cred_dir) / CREDENTIAL_LEDGER_PASSWORD if cred_dir else None
    if current:
        where = "the URL in [ledger] url"
    elif cred is not None and cred.is_file():
        password, where = _read_secret_file(cred, "ledger.password", cfg_path), f"the systemd credential {CREDENTIAL_LEDGER_PASSWORD}"
    elif env.get(ENV_LEDGER_PASSWORD):
        password, where = env[ENV_LEDGER_PASSWORD], f"the environment variable {ENV_LEDGER_PASSWORD}"
    elif ledger.get("password_file"):
        file = _resolve_path(base, ledger["password_file"])
        password, where = _read_secret_file(file, "ledger.password_file", cfg_path), f"the file {file} (password_file)"
    if password is not None:
        ledger["url"] = with_password(url, password)
    if current or password:
        register_secret(current or password)
        sources["ledger.password"] = where
    return sources


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
        duplicate = _duplicate_key_error(cfg_path, raw_text, msg, line)
        if duplicate is not None:
            raise duplicate from None
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

    sources = resolve_secrets(mall, receiver, base, cfg_path, env)
    sources.update(resolve_account_secrets(data, base, cfg_path, raw_text, env, sources))  # issue 18
    sources.update(resolve_ledger_url(ledger, base, cfg_path, env))

    # Relative paths are relative to the config file's folder, for the service and for every command alike,
    # so whoever runs a command reads the service's ledger (docs/service.md uses an absolute path anyway).
    if "url" in ledger and isinstance(ledger["url"], str):
        ledger["url"] = _resolve_sqlite_url(base, ledger["url"])
    else:
        ledger["url"] = _resolve_sqlite_url(base, LedgerConfig().url)
    if isinstance(shop.get("mapping"), str):
        shop["mapping"] = _resolve_path(base, shop["mapping"])
    sources.update(_prepare_adapter_sections(shop, base, cfg_path, env))
    mdp = data.get("mdp")
    if isinstance(mdp, dict):
        mdp = data["mdp"] = dict(mdp)
    elif mdp is not None:
        raise ConfigError(cfg_path, "mdp", "must be a table")
    else:
        mdp = data["mdp"] = {}
    # A relative labels_dir lives beside a SQLite ledger (under systemd the StateDirectory: /etc is read-only there),
    # else beside the config file, like every other relative path.
    ledger_url = ledger["url"]
    ledger_base = (Path(ledger_url[len("sqlite:///"):]).parent
                   if ledger_url.startswith("sqlite:////") or (ledger_url.startswith("sqlite:///") and ledger_url[10:11] == "/")
                   else base)
    if isinstance(mdp.get("labels_dir"), str):
        mdp["labels_dir"] = _resolve_path(ledger_base, mdp["labels_dir"])
    mdp.setdefault("labels_dir", ledger_base / "labels")

    # [carriers] tables are validated by each carrier's own settings model (issue 15).
    data["carriers"] = parse_carriers(data.get("carriers"), cfg_path, raw_text, env)
    try:
        cfg = config_model().model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = [str(p) for p in first["loc"]]
        dotted = ".".join(loc)
        if first["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; see config.example.toml)"
            guess = _did_you_mean_key(first["loc"])
            if guess:
                msg = f"unknown {'section' if len(loc) == 1 else 'key'}; did you mean {guess!r}? (see config.example.toml)"
        else:
            msg = first["msg"].removeprefix("Value error, ")
            if first["type"] not in ("missing",) and "input" in first and not _is_secret(dotted):
                msg += f" (got {first['input']!r})"
        more = len(e.errors()) - 1
        if more:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        line = find_key_line(raw_text, dotted)
        if line is None and first["type"] == "extra_forbidden":
            line = _find_section_line(raw_text, dotted)
        raise ConfigError(cfg_path, dotted, msg, line) from None
    from adapters import registry

    secrets = [(f"shop.{name}.{s.key}", getattr(getattr(cfg.shop, name), s.key, None))
               for name, spec in registry.adapters().items() for s in spec.secrets]
    for key, secret in [*secrets, ("alerts.smtp_password", cfg.alerts.smtp_password)]:
        if isinstance(secret, SecretStr) and is_placeholder(secret.get_secret_value()):
            raise ConfigError(cfg_path, key, f"the value of {key} is a placeholder, not a real password",
                              find_key_line(raw_text, key))
    check_accounts(cfg, cfg_path, raw_text)  # issue 18
    cfg = cfg.model_copy(update={"source_path": cfg_path})
    cfg._secret_sources = sources
    return cfg


# Values that are obviously not a real secret: the example's placeholder and the usual fill-me-ins.
PLACEHOLDERS = frozenset({
    "paste-your-client-id-here", "your-client-id", "your-client-id-here", "client-id", "client_id",
    "change-me", "changeme", "change_me", "change-this", "replace-me", "replaceme", "replace_me",
    "fill-me-in", "placeholder", "todo", "tbd", "xxx", "xxxx", "...", "your-password", "your-token",
})


def is_placeholder(value: str) -> bool:
    v = value.strip().lower()
    return (v in PLACEHOLDERS or v.startswith(("paste-your", "paste_your", "change-me", "changeme"))
            or bool(re.fullmatch(r"<[^<>]*>|x{3,}|\.{3,}|\*{3,}", v)))


def _placeholder_error(cfg_path: Path, key: str, where: str) -> ConfigError:
    return ConfigError(cfg_path, key, f"the value {where} is a placeholder, not a real secret: remove it and provide "
                                      "the real one (systemd credential, environment or *_file; see config.example.toml)")


def resolve_secrets(mall: dict, receiver: dict, base: Path, cfg_path: Path, env) -> dict[str, str]:
    """Fill in [mall] client_id and [receiver] tokens from the first source that has them, in this order:
    the systemd credential, the environment, the *_file, the inline value. Returns where each came from.

    A placeholder in any source that is set is a ConfigError naming the key."""
    sources: dict[str, str] = {}
    cred_dir = env.get("CREDENTIALS_DIRECTORY")

    def credential(name: str) -> Path | None:
        path = Path(cred_dir) / name if cred_dir else None
        return path if path is not None and path.is_file() else None

    inline = mall.get("client_id")
    if isinstance(inline, str) and is_placeholder(inline):
        raise _placeholder_error(cfg_path, "mall.client_id", "of [mall] client_id in the config file")
    cred = credential(CREDENTIAL_CLIENT_ID)
    if cred is not None:
        value = _read_secret_file(cred, "mall.client_id", cfg_path)
        where = f"the systemd credential `{CREDENTIAL_CLIENT_ID}`"
    elif env.get(ENV_CLIENT_ID, "").strip():
        value, where = env[ENV_CLIENT_ID].strip(), f"the environment variable {ENV_CLIENT_ID}"
    elif mall.get("client_id_file"):
        file = _resolve_path(base, mall["client_id_file"])
        value, where = _read_secret_file(file, "mall.client_id_file", cfg_path), f"the file {file} (client_id_file)"
    elif inline:
        value, where = inline, "the config file ([mall] client_id)"
    else:
        value = None
    if value is not None:
        if isinstance(value, str) and is_placeholder(value):
            raise _placeholder_error(cfg_path, "mall.client_id", f"from {where}")
        mall["client_id"] = value
        sources["mall.client_id"] = where

    raw_tokens, where = None, None
    cred = credential(CREDENTIAL_TOKENS)
    if cred is not None:
        raw_tokens = _read_secret_file(cred, "receiver.tokens", cfg_path)
        where = f"the systemd credential `{CREDENTIAL_TOKENS}`"
    elif env.get(ENV_TOKENS, "").strip():
        raw_tokens, where = env[ENV_TOKENS], f"the environment variable {ENV_TOKENS}"
    if raw_tokens:
        receiver["tokens"] = [t.strip() for t in re.split(r"[,\n]", raw_tokens) if t.strip()]
    elif receiver.get("tokens"):
        where = "the config file ([receiver] tokens)"
    if where:
        if isinstance(receiver.get("tokens"), list):
            for t in receiver["tokens"]:
                if isinstance(t, str) and is_placeholder(t):
                    raise _placeholder_error(cfg_path, "receiver.tokens", f"from {where}")
        sources["receiver.tokens"] = where
    return sources


def _prepare_adapter_sections(shop: dict, base: Path, cfg_path: Path, env: dict[str, str]) -> dict[str, str]:
    """Each registered adapter's [shop.<name>] before validation: its relative paths made relative to
    the config folder, its secrets taken in the order of every secret (the systemd credential, the
    environment, the inline value). Returns where each secret came from."""
    from adapters import registry

    sources: dict[str, str] = {}
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
            key = f"shop.{name}.{secret.key}"
            credential = Path(cred_dir) / secret.credential(name) if cred_dir else None
            if credential is not None and credential.is_file():
                sub[secret.key] = _read_secret_file(credential, key, cfg_path)
                sources[key] = f"the systemd credential `{secret.credential(name)}`"
            elif env.get(secret.env_var(name), "").strip():
                sub[secret.key] = env[secret.env_var(name)]
                sources[key] = f"the environment variable {secret.env_var(name)}"
            elif sub.get(secret.key):
                sources[key] = f"the config file ([shop.{name}] {secret.key})"
    return sources


from connector.carrier_config import CarriersConfig, parse_carriers  # noqa: E402 - issue 15, after ConfigError


# -- issue 18: several MALL accounts ([accounts.<name>]; docs/accounts.md) --------------------------------------
ACCOUNT_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")
DEFAULT_ACCOUNT = "default"  # the single [mall] client_id is one account of this name
ENV_CLIENT_ID_PREFIX = "MALL_CLIENT_ID_"  # + the account name upper-cased: MALL_CLIENT_ID_CZ
ENV_TOKENS_PREFIX = "MALL_CONNECTOR_TOKENS_"  # MALL_CONNECTOR_TOKENS_CZ
CREDENTIAL_CLIENT_ID_PREFIX = "client_id_"  # systemd credential client_id_cz
CREDENTIAL_TOKENS_PREFIX = "webhook_tokens_"  # systemd credential webhook_tokens_cz


class AccountConfig(_Section):
    """[accounts.<name>]: one MALL account (one client_id, i.e. one country's partner portal)."""

    client_id: SecretStr | None = None
    client_id_file: Path | None = None
    tokens: tuple[SecretStr, ...] = ()
    include_test_orders: bool | None = None  # None: [mall] include_test_orders
    mapping: Path | None = None  # this account's shop status -> MALL status; None: [shop] mapping (docs/accounts.md)

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, v: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        return ReceiverConfig._tokens(v)


def _account_name_error(name: str) -> str:
    fixed = re.sub(r"[^a-z0-9_]", "_", name.lower())[:32] or "cz"
    return (f"account name {name!r} must be 1-32 of a-z, 0-9 and _ (it becomes part of the environment variables "
            f"{ENV_CLIENT_ID_PREFIX}<NAME> and {ENV_TOKENS_PREFIX}<NAME>); did you mean [accounts.{fixed}]?")


def resolve_account_secrets(data: dict, base: Path, cfg_path: Path, raw_text: str, env, sources: dict) -> dict[str, str]:
    """Fill each [accounts.<name>] client_id and tokens from their sources in the order of [mall] client_id and
    [receiver] tokens: the systemd credential (``client_id_<name>``, ``webhook_tokens_<name>``), the environment
    (``MALL_CLIENT_ID_<NAME>``, ``MALL_CONNECTOR_TOKENS_<NAME>``), ``client_id_file``, the inline value.
    Checks the names, the keys, and that [mall] client_id / [receiver] tokens are not set besides."""
    import difflib

    raw = data.get("accounts")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(cfg_path, "accounts", "must be a table of [accounts.<name>] sections")
    line = lambda key: find_key_line(raw_text, key) or _find_section_line(raw_text, key)  # noqa: E731
    for key in ("mall.client_id", "receiver.tokens"):
        if key in sources or (key == "mall.client_id" and data.get("mall", {}).get("client_id_file")):
            where = sources.get(key, "the config file ([mall] client_id_file)")
            raise ConfigError(cfg_path, key, "[accounts.*] is present, so [mall] client_id and [receiver] tokens must "
                                             f"not be set (each account has its own client_id and tokens); this one "
                                             f"comes from {where}: remove it", line(key))
    out: dict[str, str] = {}
    accounts = data["accounts"] = {}
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    known = list(AccountConfig.model_fields)
    for name, section in raw.items():
        key = f"accounts.{name}"
        if not isinstance(name, str) or not ACCOUNT_NAME_RE.match(name):
            raise ConfigError(cfg_path, key, _account_name_error(str(name)), _find_section_line(raw_text, key))
        if name == DEFAULT_ACCOUNT:
            raise ConfigError(cfg_path, key, f"{DEFAULT_ACCOUNT!r} is the name of the single [mall] client_id; name "
                                             "the account after its portal instead, e.g. [accounts.cz]",
                              _find_section_line(raw_text, key))
        if not isinstance(section, dict):
            raise ConfigError(cfg_path, key, "must be a table: [accounts.<name>] with client_id and tokens")
        section = accounts[name] = dict(section)
        for k in section:
            if k not in known:
                guess = difflib.get_close_matches(k, known, n=1, cutoff=0.6)
                hint = f"did you mean {guess[0]!r}? " if guess else ""
                raise ConfigError(cfg_path, f"{key}.{k}", f"unknown key; {hint}(keys: {', '.join(known)}; see "
                                                         "docs/accounts.md)", line(f"{key}.{k}"))

        if section.get("mapping") is not None:  # relative to the config file, like [shop] mapping
            if not isinstance(section["mapping"], str) or not section["mapping"].strip():
                raise ConfigError(cfg_path, f"{key}.mapping", "must be the path of a mapping file (a string)",
                                  line(f"{key}.mapping"))
            mapping_file = _resolve_path(base, section["mapping"])
            if not mapping_file.is_file():
                raise ConfigError(cfg_path, f"{key}.mapping", f"[{key}] mapping: no such file {mapping_file}",
                                  line(f"{key}.mapping"))
            section["mapping"] = mapping_file

        def credential(cred: str) -> Path | None:
            path = Path(cred_dir) / cred if cred_dir else None
            return path if path is not None and path.is_file() else None

        inline = section.get("client_id")
        if isinstance(inline, str) and is_placeholder(inline):
            raise _placeholder_error(cfg_path, f"{key}.client_id", f"of [{key}] client_id in the config file")
        env_name = ENV_CLIENT_ID_PREFIX + name.upper()
        cred_name = CREDENTIAL_CLIENT_ID_PREFIX + name
        cred = credential(cred_name)
        value = where = None
        if cred is not None:
            value, where = _read_secret_file(cred, f"{key}.client_id", cfg_path), f"the systemd credential `{cred_name}`"
        elif env.get(env_name, "").strip():
            value, where = env[env_name].strip(), f"the environment variable {env_name}"
        elif section.get("client_id_file"):
            file = _resolve_path(base, section["client_id_file"])
            value = _read_secret_file(file, f"{key}.client_id_file", cfg_path)
            where = f"the file {file} (client_id_file)"
            section["client_id_file"] = file
        elif inline:
            value, where = inline, f"the config file ([{key}] client_id)"
        if value is not None:
            if isinstance(value, str) and is_placeholder(value):
                raise _placeholder_error(cfg_path, f"{key}.client_id", f"from {where}")
            section["client_id"] = value
            out[f"{key}.client_id"] = where
        tokens_env = ENV_TOKENS_PREFIX + name.upper()
        tokens_cred = CREDENTIAL_TOKENS_PREFIX + name
        raw_tokens, where = None, None
        cred = credential(tokens_cred)
        if cred is not None:
            raw_tokens = _read_secret_file(cred, f"{key}.tokens", cfg_path)
            where = f"the systemd credential `{tokens_cred}`"
        elif env.get(tokens_env, "").strip():
            raw_tokens, where = env[tokens_env], f"the environment variable {tokens_env}"
        if raw_tokens:
            section["tokens"] = [t.strip() for t in re.split(r"[,\n]", raw_tokens) if t.strip()]
        elif section.get("tokens"):
            where = f"the config file ([{key}] tokens)"
        if where:
            if isinstance(section.get("tokens"), list):
                for t in section["tokens"]:
                    if isinstance(t, str) and is_placeholder(t):
                        raise _placeholder_error(cfg_path, f"{key}.tokens", f"from {where}")
            out[f"{key}.tokens"] = where
    return out


def check_accounts(cfg: "CoreConfig", cfg_path: Path, raw_text: str) -> None:
    """After validation: every account has a client_id, no two share one, no webhook token is shared
    (the token says which account a webhook belongs to). Never prints a secret, only the account names."""
    seen_ids: dict[str, str] = {}
    seen_tokens: dict[str, str] = {}
    for name, account in cfg.accounts.items():
        key = f"accounts.{name}"
        where = find_key_line(raw_text, f"{key}.client_id") or _find_section_line(raw_text, key)
        if account.client_id is None:
            raise ConfigError(cfg_path, f"{key}.client_id",
                              f"account {name!r} has no MALL client_id: provide it as the systemd credential "
                              f"{CREDENTIAL_CLIENT_ID_PREFIX}{name}, in env {ENV_CLIENT_ID_PREFIX}{name.upper()}, in a "
                              f"file named by [{key}] client_id_file, or as [{key}] client_id", where)
        value = account.client_id.get_secret_value()
        if value in seen_ids:
            raise ConfigError(cfg_path, f"{key}.client_id", f"accounts {seen_ids[value]!r} and {name!r} have the same "
                                                            "client_id: each account is one MALL client_id", where)
        seen_ids[value] = name
        for token in account.tokens:
            t = token.get_secret_value()
            if t in seen_tokens:
                raise ConfigError(cfg_path, f"{key}.tokens",
                                  f"a webhook token of account {name!r} is also one of account {seen_tokens[t]!r}: the "
                                  "token tells which account a webhook belongs to, so each account needs its own",
                                  find_key_line(raw_text, f"{key}.tokens") or where)
            seen_tokens[t] = name


CoreConfig.model_rebuild()


def _default_carriers() -> CarriersConfig:
    return CarriersConfig()


def _is_secret(dotted: str) -> bool:
    """Whether the value at ``dotted`` must never be echoed in a config error: the core's secret keys, the
    keys an adapter declares secret (``AdapterSpec.secrets``, one list for both), or a whole section given
    as a scalar (e.g. ``alerts = "https://hooks..."``), which may hold any of them."""
    # webhook_url: a Slack/Teams URL is itself the secret.
    if len(dotted.split(".")) == 1 or _is_adapter_secret(dotted):
        return True
    return any(s in dotted for s in ("client_id", "tokens", "password", "webhook_url"))


def _is_adapter_secret(dotted: str) -> bool:
    """``shop.<adapter>.<key>`` for a key the adapter declares secret."""
    from adapters import registry

    parts = dotted.split(".")
    if len(parts) < 3 or parts[0] != "shop" or parts[1] not in registry.adapters():
        return False
    return any(s.key == parts[2] for s in registry.get(parts[1]).secrets)


# -- issue 14: did-you-mean for unknown sections and keys, duplicate keys named with their line -----------------
def _did_you_mean_key(loc: tuple) -> str | None:
    """The known section or key closest to the misspelled last part of ``loc`` (e.g. reciever -> receiver)."""
    import difflib

    model: Any = config_model()
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(str(part))
        if field is None:
            return None
        model = field.annotation
    known = [n for n in getattr(model, "model_fields", {}) if n != "source_path"]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return close[0] if close else None


def _find_section_line(text: str, dotted: str) -> int | None:
    """The line of a [section] header (or of a dotted key's last part, wherever it is)."""
    header = re.compile(r"^\s*\[+\s*" + re.escape(dotted) + r"\s*\]+")
    for i, line in enumerate(text.splitlines(), 1):
        if header.match(line):
            return i
    return None


def _duplicate_key_error(path: Path, text: str, msg: str, line: int | None) -> ConfigError | None:
    """tomllib's "Cannot overwrite a value" / "Cannot declare ... twice" as a message naming the key and both lines."""
    if line is None or not ("Cannot overwrite a value" in msg or "twice" in msg):
        return None
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    section_m = re.match(r"^\s*\[+\s*([^\]]+?)\s*\]+", here)
    if section_m:
        name = section_m.group(1).replace('"', "")
        first = next((i for i, t in enumerate(lines[: line - 1], 1)
                      if re.match(r"^\s*\[+\s*" + re.escape(name) + r"\s*\]+", t.replace('"', ""))), None)
        where = f" (first at line {first})" if first else ""
        return ConfigError(path, name, f"the section [{name}] appears twice{where}; merge them into one", line)
    key_m = re.match(r'^\s*"?([^=\s"]+)"?\s*=', here)
    if not key_m:
        return None
    key = key_m.group(1)
    section, first = "", None
    for i, t in enumerate(lines[: line - 1], 1):
        if re.match(r'^\s*"?' + re.escape(key) + r'"?\s*=', t):
            first = i
    for t in lines[: line - 1][::-1]:
        h = re.match(r"^\s*\[+\s*([^\]]+?)\s*\]+", t)
        if h:
            section = h.group(1).replace('"', "")
            break
    dotted = f"{section}.{key}" if section else key
    where = f" (first set at line {first})" if first else ""
    return ConfigError(path, dotted, f"duplicate key {key!r}: it is set twice{where}; keep one", line)
