"""Issue 16 items 3, 6, 7 and 8: log lines, tokens, secrets in edge cases, insecure MALL URLs, file modes."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.config import ConfigError, load_config
from connector.logs import redact, setup_logging
from connector.safety import secret_file_warnings, token_weakness
from tests.conftest import TEST_CLIENT_ID


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


# -- item 6: a message with newlines stays one log line; control characters are escaped -----------------

@pytest.fixture
def log_stream():
    stream = io.StringIO()
    root = logging.getLogger()
    saved_level = root.level
    yield stream
    for h in list(root.handlers):
        if getattr(h, "_mall_connector", False) and getattr(h, "stream", None) is stream:
            root.removeHandler(h)
    root.setLevel(saved_level)


def test_text_log_line_cannot_be_forged_or_repaint_the_terminal(log_stream):
    setup_logging("info", "text", stream=log_stream)
    forged = "bad tracking\n2026-12-01 10:00:00,000 INFO    connector: order 1 confirmed"
    logging.getLogger("connector.mall").warning("MALL answered 400: %s", forged)
    logging.getLogger("connector.mall").warning("customer %s", "\x1b[2J\x1b]0;pwned\x07\x9b31m")
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        logging.getLogger("connector").exception("failed")
    lines = log_stream.getvalue().splitlines()
    assert len(lines) == 3
    assert "bad tracking\\n2026-12-01" in lines[0]
    assert "\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m" in lines[1]
    assert "Traceback" in lines[2] and "line one\\nline two" in lines[2]
    assert not any(c in log_stream.getvalue() for c in ("\x1b", "\x07", "\x9b", "\r"))


def test_json_log_line_carries_no_raw_control_character(log_stream):
    setup_logging("info", "json", stream=log_stream)
    logging.getLogger("connector").warning("a\nb \x1b[2J \x9b \u2028")
    out = log_stream.getvalue()
    assert out.count("\n") == 1 and not any(c in out for c in ("\x1b", "\x9b", "\u2028"))
    assert json.loads(out)["msg"] == "a\nb \x1b[2J \x9b \u2028"


# -- item 7: tokens of at least 128 bits ------------------------------------------------------------------

@pytest.mark.parametrize("token,why", [
    ("aaaaaaaaaaaaaaaa", "bits"),  # the finding: any 16 URL-safe characters were accepted
    ("Ab3-Xy7_Qz" * 3, "repeats"),
    ("abcdefghijklmnopqrstuvwxyz", "consecutive"),
    ("a" * 40, "different characters"),
    ("xK9mQ2vL8nR4tW6yZ3bH5jzzzzzzzzzzzzzz", "in a row"),
    ("0123456789abcdef", "bits"),  # 64 bits of hex
    ("sec-token-" + "R4nd0m" * 4, "repeats itself"),  # long enough, but one 6-character chunk four times
    ("bench-webhook-token-0123456789abcdef", "consecutive"),
])
def test_weak_tokens_are_a_config_error_naming_the_key(tmp_path, token, why):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, f"[receiver]\ntokens = ['{token}']\n"))
    assert e.value.key == "receiver.tokens" and why in str(e.value)
    assert token not in str(e.value)


def test_tokens_from_secrets_pass():
    for _ in range(2000):
        for t in (secrets.token_urlsafe(16), secrets.token_urlsafe(32), secrets.token_hex(16)):
            assert token_weakness(t) is None, t


def test_weak_token_from_the_environment_is_refused_too(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "[mall]\n"), environ={"MALL_CONNECTOR_TOKENS": "a" * 16})
    assert e.value.key == "receiver.tokens"


# -- item 8: secrets in edge cases --------------------------------------------------------------------------

SLACK = "https://hooks.slack.com/services/T0000/B0000/S3cretSlackPath"


@pytest.mark.parametrize("text,secret", [
    (f"[alerts]\nwebhook_url = ['{SLACK}']\n", SLACK),  # the finding: a list by mistake was printed
    ("[alerts]\nsmtp_password = ['Pa55word-x']\n", "Pa55word-x"),
    ("[mall]\nclient_id = ['abcd-secret-id']\n", "abcd-secret-id"),
    ("[shop.fastcentrik]\nauth_password = ['Feed-Pa55-Kq8Wz3']\n", "Feed-Pa55-Kq8Wz3"),  # declared by the adapter
    ("[receiver]\ntokens = 'Vw3Lq9Zt5Rk2Hb7Nc4XpQQ'\n", "Vw3Lq9Zt5Rk2Hb7Nc4XpQQ"),
    (f"alerts = '{SLACK}'\n", SLACK),  # a whole section given as a string
])
def test_a_secret_with_the_wrong_type_is_redacted_in_the_config_error(tmp_path, text, secret):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    assert secret not in str(e.value)
    assert secret.split("/")[-1] not in str(e.value)


def test_database_passwords_are_redacted_everywhere():
    assert redact("cannot open postgresql+psycopg://app:S3cretPw@db.local:5432/ledger") == \
        "cannot open postgresql+psycopg://app:***@db.local:5432/ledger"
    assert redact("mysql://u:p%40ss@h/db and https://user:pw@feed.example/x.csv") == \
        "mysql://u:***@h/db and https://user:***@feed.example/x.csv"
    assert redact("sqlite:////var/lib/mall-connector/ledger.db") == "sqlite:////var/lib/mall-connector/ledger.db"


def test_check_never_prints_the_database_password(tmp_path, sandbox):
    from connector.cli import main

    cfg = write(tmp_path, f'[mall]\nclient_id = "{TEST_CLIENT_ID}"\nbase_url = "{sandbox.url}"\n'
                          '[ledger]\nurl = "postgresql://app:S3cretPw0rd@127.0.0.1:1/ledger"\n')
    os.chmod(cfg, 0o600)
    r = runner().invoke(main, ["--config", str(cfg), "check"], catch_exceptions=False)
    out = r.output + (r.stderr if r.stderr_bytes is not None else "")
    assert "ledger" in out
    assert "S3cretPw0rd" not in out


@pytest.mark.parametrize("url", ["http://mpapi.mallgroup.com", "http://192.0.2.10:8800", "http://mall.internal"])
def test_plain_http_base_url_is_refused_off_loopback(tmp_path, url):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, f"[mall]\nbase_url = '{url}'\n"))
    assert "allow_insecure" in str(e.value) and e.value.key.startswith("mall")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8800", "http://localhost:8800", "http://[::1]:8800",
                                 "http://127.5.6.7", "https://mpapi.mallgroup.com"])
def test_loopback_and_https_base_urls_are_accepted(tmp_path, url):
    assert load_config(write(tmp_path, f"[mall]\nbase_url = '{url}'\n")).mall.base_url == url


def test_allow_insecure_lets_a_trusted_test_server_through(tmp_path):
    cfg = load_config(write(tmp_path, "[mall]\nbase_url = 'http://mall-test.lan'\nallow_insecure = true\n"))
    assert cfg.mall.base_url == "http://mall-test.lan"


# -- item 3: files with secrets readable by others ----------------------------------------------------------

def test_warnings_for_secret_files_readable_by_others(tmp_path):
    cid = tmp_path / "client_id"
    cid.write_text("abcdefgh-secret\n")
    os.chmod(cid, 0o644)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "webhook_tokens").write_text("Vw3Lq9Zt5Rk2Hb7Nc4XpQQ\n")
    os.chmod(creds / "webhook_tokens", 0o604)
    cfg_path = write(tmp_path, "[mall]\nclient_id_file = 'client_id'\n")
    os.chmod(cfg_path, 0o644)
    cfg = load_config(cfg_path, environ={})
    warnings = secret_file_warnings(cfg, {"CREDENTIALS_DIRECTORY": str(creds)})
    text = "\n".join(warnings)
    assert str(cid) in text and str(creds / "webhook_tokens") in text and "chmod o-rwx" in text
    assert str(cfg_path) not in text  # it names a file, it holds no secret itself
    for p in (cid, creds / "webhook_tokens"):
        os.chmod(p, 0o640)
    assert secret_file_warnings(cfg, {"CREDENTIALS_DIRECTORY": str(creds)}) == []


def test_warnings_cover_the_secrets_adapters_declare(tmp_path):
    """An adapter's declared secret (fastcentrik's auth_password) as a credential file next to the config."""
    cfg_path = write(tmp_path, "[shop]\nadapter = 'fastcentrik'\n")
    os.chmod(cfg_path, 0o640)
    cred = tmp_path / "fastcentrik_auth_password"  # AdapterSpec Secret.credential("fastcentrik")
    cred.write_text("Feed-Pa55-Kq8Wz3\n")
    os.chmod(cred, 0o644)
    cfg = load_config(cfg_path, environ={})
    warnings = secret_file_warnings(cfg, {})
    assert len(warnings) == 1 and str(cred) in warnings[0] and "credential file" in warnings[0]
    os.chmod(cred, 0o600)
    assert secret_file_warnings(cfg, {}) == []


def test_check_warns_about_a_world_readable_client_id_file(tmp_path, sandbox):
    from connector.cli import main

    cid = tmp_path / "client_id"
    cid.write_text(TEST_CLIENT_ID + "\n")
    os.chmod(cid, 0o644)
    cfg = write(tmp_path, f'[mall]\nclient_id_file = "client_id"\nbase_url = "{sandbox.url}"\n')
    r = runner().invoke(main, ["--config", str(cfg), "check"], catch_exceptions=False, env={"MALL_CLIENT_ID": ""})
    assert f"[mall] client_id_file {cid} is readable by every local user" in r.output


# -- item 4: the receiver's new keys ------------------------------------------------------------------------

def test_receiver_limit_defaults(tmp_path):
    rc = load_config(write(tmp_path, "[receiver]\n")).receiver
    assert (rc.connection_limit, rc.max_connections_per_address, rc.request_timeout_s, rc.trusted_proxies) == \
        (500, 50, 10.0, ())


@pytest.mark.parametrize("line,key", [
    ("connection_limit = 0", "receiver.connection_limit"),
    ("max_connections_per_address = 0", "receiver.max_connections_per_address"),
    ("request_timeout_s = 0", "receiver.request_timeout_s"),
    ("request_timeout_s = 'ten'", "receiver.request_timeout_s"),
    ("trusted_proxies = ['10.0.0.0/33']", "receiver.trusted_proxies"),
])
def test_receiver_limit_errors_name_the_key(tmp_path, line, key):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, f"[receiver]\n{line}\n"))
    assert e.value.key == key and e.value.line == 2
