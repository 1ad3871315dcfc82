"""[carriers] and [carriers.<name>]: validation errors name the key and line; credentials come from env or systemd."""

from __future__ import annotations

import pytest

from connector.config import ConfigError, load_config

CARRIER_ENV_SECRET = "env-packeta-password-0003"


def write(tmp_path, text: str):
    p = tmp_path / "config.toml"
    p.write_text('[mall]\nclient_id = "x-123456"\n' + text, encoding="utf-8")
    return p


def test_defaults_and_no_carrier_asked_without_a_table(tmp_path):
    cfg = load_config(write(tmp_path, ""), environ={})
    c = cfg.carriers
    assert (c.poll_interval_s, c.slow_poll_interval_s, c.slow_after_days, c.max_age_days, c.push_returned,
            c.stuck_after_days) == (14400, 86400, 3.0, 30, False, 10.0)
    assert c.active() == {}


def test_unknown_carrier_names_the_key_line_and_a_suggestion(tmp_path):
    path = write(tmp_path, "[carriers]\npoll_interval_s = 3600\n[carriers.paketa]\napi_password = 'x'\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    assert e.value.key == "carriers.paketa" and e.value.line == 5 and "did you mean 'packeta'" in str(e.value)


def test_unknown_key_in_a_carrier_table(tmp_path):
    path = write(tmp_path, "[carriers.packeta]\napi_pasword = 'x'\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    assert e.value.key == "carriers.packeta.api_pasword" and e.value.line == 4


def test_delivery_methods_must_name_installed_carriers(tmp_path):
    path = write(tmp_path, '[carriers]\ndelivery_methods = {"pplCz" = "dhl"}\n')
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    assert e.value.key == "carriers.delivery_methods.pplCz" and "'dhl' is not an installed carrier" in str(e.value)


def test_credentials_from_env_and_systemd_credentials_and_never_in_repr(tmp_path):
    cfg = load_config(write(tmp_path, ""), environ={"MALL_CARRIER_PACKETA_API_PASSWORD": CARRIER_ENV_SECRET})
    assert cfg.carriers.active()["packeta"].api_password.get_secret_value() == CARRIER_ENV_SECRET
    assert CARRIER_ENV_SECRET not in repr(cfg.carriers.active())
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "carrier_ppl_client_id").write_text("ppl-id\n")
    (creds / "carrier_ppl_client_secret").write_text("ppl-secret-from-systemd\n")
    cfg = load_config(write(tmp_path, ""), environ={"CREDENTIALS_DIRECTORY": str(creds)})
    ppl = cfg.carriers.active()["ppl"]
    assert ppl.client_secret.get_secret_value() == "ppl-secret-from-systemd" and ppl.client_id.get_secret_value() == "ppl-id"


def test_bad_value_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "[carriers]\nmax_age_days = 0\n"), environ={})
    assert e.value.key == "carriers.max_age_days" and e.value.line == 4
