"""The config contract: section and key names, errors naming file/line/key, secrets, relative paths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from connector.cli import main
from connector.config import Config, ConfigError, load_config
from tests.support.paths import ROOT



def write(tmp_path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return p


def _keys(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        if name == "source_path":
            continue
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _keys(ann, f"{prefix}{name}.")
        else:
            yield prefix + name


def test_example_config_is_valid_and_documents_every_key(monkeypatch):
    monkeypatch.delenv("MALL_CLIENT_ID", raising=False)
    cfg = load_config(ROOT / "config.example.toml")
    assert cfg.mall.base_url == "https://mpapi.mallgroup.com"
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    sections: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        m = re.match(r"^\[([^\]]+)\]", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^#?\s*([a-z_]+)\s*=", line)
        if m:
            sections.setdefault(current, "")
            sections[current] += " " + m.group(1)
    for dotted in _keys(Config):
        section, _, key = dotted.rpartition(".")
        if section == "shop" and key == "carrier_urls":
            assert "[shop.carrier_urls]" in text
            continue
        assert key in sections.get(section, "").split(), f"config.example.toml does not document {dotted}"


def test_contract_section_and_key_names():
    keys = set(_keys(Config))
    for k in ["mall.base_url", "mall.client_id", "mall.include_test_orders", "mall.timeout_s", "ledger.url",
              "receiver.listen", "receiver.tokens", "receiver.public_url", "sync.poll_interval_s",
              "sync.sweep_interval_s", "sync.max_attempts", "sync.retry_base_s", "sync.retry_max_s",
              "shop.adapter", "shop.mapping", "shop.timezone", "shop.generic_csv.source", "shop.generic_csv.outbox",
              "shop.generic_csv.encoding", "shop.generic_csv.auth_user", "shop.generic_csv.auth_password",
              "shop.generic_csv.settle_s"]:
        assert k in keys, k


def test_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "[mall]\nclient_id = 'abcdefgh'\n"))
    assert cfg.receiver.listen == "127.0.0.1:8080"
    assert (cfg.sync.poll_interval_s, cfg.sync.sweep_interval_s) == (30, 600)
    assert cfg.shop.timezone == "Europe/Prague" and cfg.mall.include_test_orders is False
    assert cfg.ledger.url == f"sqlite:///{(tmp_path / 'ledger.db').resolve()}"


def test_relative_paths_are_relative_to_the_config_folder(tmp_path):
    sub = tmp_path / "etc"
    sub.mkdir()
    cfg = load_config(write(sub, "[shop]\nmapping = 'm.toml'\n[shop.generic_csv]\nsource = 'feed.csv'\noutbox = 'out'\n"))
    assert cfg.shop.mapping == sub / "m.toml"
    assert cfg.shop.generic_csv.source == str(sub / "feed.csv")
    assert cfg.shop.generic_csv.outbox == sub / "out"


@pytest.mark.parametrize("text,key,line,words", [
    ("[sync]\npoll_interval_s = 0\n", "sync.poll_interval_s", 2, "greater than or equal to 1"),
    ("[sync]\n\npol_interval_s = 5\n", "sync.pol_interval_s", 3, "unknown key"),
    ("[receiver]\nlisten = 'localhost'\n", "receiver.listen", 2, "host:port"),
    ("[shop]\nadapter = 'no_such_shop'\n", "shop.adapter", 2, "generic_csv"),
    ("[shop]\ntimezone = 'Mars/Base'\n", "shop.timezone", 2, "unknown time zone"),
    ("[mall]\nbase_url = 'ftp://x'\n", "mall.base_url", 2, "http(s) URL"),
    ("[receiver]\ntokens = ['short']\n", "receiver.tokens", 2, "at least 128 random bits"),
])
def test_errors_name_file_line_key_and_reason(tmp_path, text, key, line, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:{line}: {key}: ") and words in msg, msg


def test_secret_values_never_echoed_in_errors(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "[receiver]\ntokens = ['tooshort-secret']\n"))
    assert "tooshort-secret" not in str(e.value)


def test_bad_toml_names_the_line(tmp_path):
    path = write(tmp_path, "[mall]\nclient_id = 'x'\nbroken = \n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.line == 3 and "not valid TOML" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_secrets_from_env_and_credentials(tmp_path):
    path = write(tmp_path, "[mall]\n")
    t1, t2 = "Fv3kP9sQ2wLx7mZr4cTb8N", "Hq6yD1gUj5oWe0aKs3RiVm"  # >= 128 bits each (issue 16 item 7)
    cfg = load_config(path, environ={"MALL_CLIENT_ID": "from-env-123", "MALL_CONNECTOR_TOKENS": t1 + ", " + t2})
    assert cfg.client_id == "from-env-123" and cfg.token_values == (t1, t2)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mall_client_id").write_text("from-credential\n")
    cfg = load_config(path, environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.client_id == "from-credential"
    assert "from-credential" not in repr(cfg)


def test_missing_client_id_is_a_config_error(tmp_path):
    cfg = load_config(write(tmp_path, "[mall]\n"), environ={})
    with pytest.raises(ConfigError, match="no MALL client_id"):
        cfg.client_id


def test_cli_exits_78_with_one_line_and_no_traceback(tmp_path):
    path = write(tmp_path, "[sync]\npoll_interval_s = 'often'\n")
    result = CliRunner().invoke(main, ["--config", str(path), "sync-once"])
    assert result.exit_code == 78
    assert "Traceback" not in result.output
    assert f"{path}:2: sync.poll_interval_s" in result.output


def test_relative_ledger_is_relative_to_the_config_folder_inside_systemd_too(tmp_path):
    # issue 13: one rule for the service and for root's CLI, so both read the same ledger.
    state = tmp_path / "state"
    cfg = load_config(write(tmp_path, "[ledger]\nurl = 'sqlite:///ledger.db'\n"), environ={"STATE_DIRECTORY": str(state)})
    assert cfg.ledger.url == f"sqlite:///{(tmp_path / 'ledger.db').resolve()}"


def test_known_head_revision_matches_the_migrations():
    from connector.ledger.db import HEAD_REVISION, head_revision

    assert HEAD_REVISION == head_revision()
