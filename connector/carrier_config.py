"""``[carriers]`` and ``[carriers.<name>]``: when and how the delivery job asks carriers.

Kept apart from connector/config.py because each ``[carriers.<name>]`` table is validated by that carrier's
own settings model, found in the carrier registry (``carriers.registry()``). Credentials are secrets: in the
file, or env ``MALL_CARRIER_<NAME>_<KEY>`` (e.g. ``MALL_CARRIER_PACKETA_API_PASSWORD``), or the systemd
credential ``carrier_<name>_<key>`` (``LoadCredential=carrier_packeta_api_password:…``), like client_id.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from carriers import CarrierSettings, registry


class CarriersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    #: Ask carriers at all (shop delivery dates are used either way).
    enabled: bool = True
    #: Seconds between two questions about one parcel; after slow_after_days since shipping, slow_poll_interval_s.
    poll_interval_s: int = Field(4 * 3600, ge=1)
    slow_poll_interval_s: int = Field(24 * 3600, ge=1)
    slow_after_days: float = Field(3.0, ge=0)
    #: Stop asking about a parcel this many days after MALL shipped it.
    max_age_days: int = Field(30, ge=1, le=365)
    #: At most this many carrier calls about one parcel, ever (retries included).
    max_calls_per_parcel: int = Field(60, ge=1, le=10000)
    #: Backoff after a failed call: retry_base_s doubling per failure in a row, at most the poll interval.
    retry_base_s: float = Field(300.0, gt=0)
    #: Parcels handled per pass of the delivery job.
    batch_size: int = Field(200, ge=1, le=10000)
    #: MALL delivery_method -> carrier, e.g. {"pplCz" = "ppl", "zasilkovna" = "packeta"}.
    delivery_methods: dict[str, str] = {}
    #: Push `returned` to MALL when the carrier reports the parcel back at the sender (else only a needs-action item).
    push_returned: bool = False
    #: An order shipped longer ago than this and not delivered becomes a needs-action item and an alert.
    stuck_after_days: float = Field(10.0, gt=0)
    #: The [carriers.<name>] tables, each validated by its carrier's settings model (set by parse_carriers).
    _settings: dict[str, CarrierSettings] = PrivateAttr(default_factory=dict)

    @property
    def settings(self) -> dict[str, CarrierSettings]:
        return dict(self._settings)

    def active(self) -> dict[str, CarrierSettings]:
        """The carriers to ask: those with a [carriers.<name>] table (or secrets from env) and enabled = true."""
        if not self.enabled:
            return {}
        return {name: s for name, s in self.settings.items() if s.enabled}


def parse_carriers(raw: Any, cfg_path: Path | None, raw_text: str, env: dict[str, str]) -> CarriersConfig:
    """Build ``[carriers]`` from the TOML table; raises ConfigError naming the key and its line."""
    from connector.config import ConfigError, find_key_line

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(cfg_path, "carriers", "must be a [carriers] table", find_key_line(raw_text, "carriers"))
    known = registry()
    top = {k: v for k, v in raw.items() if not isinstance(v, dict) or k == "delivery_methods"}
    tables = {k: dict(v) for k, v in raw.items() if isinstance(v, dict) and k != "delivery_methods"}
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    for name, cls in known.items():  # secrets from env / systemd credentials, also without a table
        for key in cls.secret_keys:
            if tables.get(name, {}).get(key):
                continue
            value = env.get(f"MALL_CARRIER_{name.upper()}_{key.upper()}")
            cred = Path(cred_dir) / f"carrier_{name}_{key}" if cred_dir else None
            if not value and cred is not None and cred.is_file():
                value = cred.read_text(encoding="utf-8").strip()
            if value:
                tables.setdefault(name, {})[key] = value
    settings: dict[str, CarrierSettings] = {}
    for name, table in tables.items():
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(cfg_path, f"carriers.{name}",
                              f"unknown carrier{hint} (installed: {', '.join(known) or 'none'})",
                              find_key_line(raw_text, f"carriers.{name}"))
        try:
            settings[name] = known[name].settings_model.model_validate(table)
        except ValidationError as e:
            first = e.errors()[0]
            dotted = ".".join(["carriers", name, *map(str, first["loc"])])
            msg = ("unknown key (see config.example.toml)" if first["type"] == "extra_forbidden"
                   else first["msg"].removeprefix("Value error, "))
            raise ConfigError(cfg_path, dotted, msg, find_key_line(raw_text, dotted)) from None
    for method, carrier in (top.get("delivery_methods") or {}).items():
        if carrier not in known:
            raise ConfigError(cfg_path, f"carriers.delivery_methods.{method}",
                              f"{carrier!r} is not an installed carrier ({', '.join(known)})",
                              find_key_line(raw_text, f"carriers.delivery_methods.{method}"))
    try:
        cfg = CarriersConfig.model_validate(top)
        cfg._settings = settings
        return cfg
    except ValidationError as e:
        first = e.errors()[0]
        dotted = ".".join(["carriers", *map(str, first["loc"])])
        msg = ("unknown key (check its spelling; see config.example.toml)" if first["type"] == "extra_forbidden"
               else first["msg"].removeprefix("Value error, "))
        if first["type"] not in ("missing", "extra_forbidden") and "input" in first:
            msg += f" (got {first['input']!r})"
        raise ConfigError(cfg_path, dotted, msg, find_key_line(raw_text, dotted)) from None
