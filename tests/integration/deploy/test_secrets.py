"""Secrets from one clear place: systemd credential > environment > *_file > inline; sources shown, values never;
placeholders refused naming the key; the example config ships no placeholder secret."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import ConfigError, load_config
from tests.support.paths import ROOT

VALUES = {"credential": "from-credential-111", "env": "from-env-222", "file": "from-file-333", "inline": "inline-444"}
WHERE = {"credential": "the systemd credential `mall_client_id`", "env": "the environment variable MALL_CLIENT_ID",
         "file": "client_id_file", "inline": "the config file ([mall] client_id)"}


def _setup(tmp_path: Path, present: set[str]) -> tuple[Path, dict]:
    lines = ["[mall]"]
    if "inline" in present:
        lines.append(f'client_id = "{VALUES["inline"]}"')
    if "file" in present:
        (tmp_path / "client_id").write_text(VALUES["file"] + "\n")
        lines.append('client_id_file = "client_id"')
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    env = {}
    if "credential" in present:
        creds = tmp_path / "creds"
        creds.mkdir()
        (creds / "mall_client_id").write_text(VALUES["credential"] + "\n")
        env["CREDENTIALS_DIRECTORY"] = str(creds)
    if "env" in present:
        env["MALL_CLIENT_ID"] = VALUES["env"]
    return path, env


# Written out by hand: for every combination of sources that are set, the one that must win.
ORDER = ["credential", "env", "file", "inline"]
CASES = [(set(combo), next(s for s in ORDER if s in combo))
         for n in range(1, 5) for combo in itertools.combinations(ORDER, n)]


@pytest.mark.parametrize("present,winner", CASES, ids=lambda v: "+".join(sorted(v)) if isinstance(v, set) else v)
def test_precedence(tmp_path, present, winner):
    path, env = _setup(tmp_path, present)
    cfg = load_config(path, environ=env)
    assert cfg.client_id == VALUES[winner]
    assert WHERE[winner] in cfg.secret_sources["mall.client_id"]


def test_credential_wins_without_reading_a_root_only_file(tmp_path):
    """The issue's case: client_id_file points at a file this user cannot read, the credential is there."""
    path, env = _setup(tmp_path, {"credential"})
    path.write_text('[mall]\nclient_id_file = "/nonexistent/root-only/client_id"\n')
    assert load_config(path, environ=env).client_id == VALUES["credential"]


@pytest.mark.parametrize("value", ["paste-your-client-id-here", "change-me", "CHANGEME", "<your client id>", "xxxxxx"])
def test_placeholder_client_id_is_a_config_error_naming_the_key(tmp_path, value):
    path = tmp_path / "config.toml"
    path.write_text(f'[mall]\nclient_id = "{value}"\n')
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    assert e.value.key == "mall.client_id" and "placeholder" in str(e.value)


def test_placeholder_in_env_and_password_are_refused_too(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[mall]\n")
    with pytest.raises(ConfigError, match="mall.client_id.*placeholder"):
        load_config(path, environ={"MALL_CLIENT_ID": "change-me"})
    path.write_text('[mall]\nclient_id = "real-id-12345"\n[alerts]\nsmtp_password = "change-me"\n')
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    assert e.value.key == "alerts.smtp_password" and e.value.line == 4


def test_tokens_precedence_and_source(tmp_path):
    path = tmp_path / "config.toml"
    inline, env_tok, cred_tok = "inl-Q7mB4xN9pL2vR8kT5wZ3", "env-Hy7Ud3Kp9Wm2Qx6Rb4Tn", "crd-Zq8rT2wXc5Vb9NmK4pLs"
    path.write_text(f'[receiver]\ntokens = ["{inline}"]\n')
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "webhook_tokens").write_text(cred_tok + "\n")
    both = {"CREDENTIALS_DIRECTORY": str(creds), "MALL_CONNECTOR_TOKENS": env_tok}
    assert load_config(path, environ=both).token_values == (cred_tok,)
    assert load_config(path, environ={"MALL_CONNECTOR_TOKENS": env_tok}).token_values == (env_tok,)
    cfg = load_config(path, environ={})
    assert cfg.token_values == (inline,) and cfg.secret_sources["receiver.tokens"] == "the config file ([receiver] tokens)"


def test_config_check_prints_where_each_secret_came_from_never_the_value(tmp_path):
    path, env = _setup(tmp_path, {"credential", "inline"})
    r = CliRunner().invoke(main, ["--config", str(path), "config", "check"], env=env)
    assert r.exit_code == 0, r.output
    assert "client_id: from the systemd credential `mall_client_id`" in r.output
    assert VALUES["credential"] not in r.output and VALUES["inline"] not in r.output


def test_example_config_ships_no_placeholder_and_takes_the_credential(tmp_path):
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    assert "paste-your-client-id-here" not in text
    import re

    assert not re.search(r"^\s*client_id\s*=", text, re.M), "client_id must be commented out in the example"
    assert 'url = "sqlite:////var/lib/mall-connector/ledger.db"' in text
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mall_client_id").write_text("the-real-one-555\n")
    cfg = load_config(ROOT / "config.example.toml", environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.client_id == "the-real-one-555"
    assert cfg.ledger.url == "sqlite:////var/lib/mall-connector/ledger.db"
