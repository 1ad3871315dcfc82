"""Unit tests of the PostgreSQL parts that need no server: the leader's own bound, the ledger URL's password
sources, the dialect's descriptions."""

from __future__ import annotations

import pytest

from connector.config import ConfigError, load_config
from connector.ledger.dialect import describe, url_password, with_password, without_password
from connector.logs import redact
from connector.replicas import Leadership


class _Leases:
    shared = True

    def __init__(self):
        self.answers: list = []
        self.released = []

    def hold(self, name, holder, lease_s):
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def release(self, name, holder):
        self.released.append((name, holder))


class _Ledger:
    def __init__(self):
        self.leases = _Leases()


def test_the_leader_stops_counting_itself_leader_before_its_lease_expires():
    now = [100.0]
    ledger = _Ledger()
    lead = Leadership(ledger, "abc", 30, clock=lambda: now[0])
    assert not lead.is_leader()
    ledger.leases.answers = [True]
    assert lead.renew_once() and lead.is_leader()
    now[0] += 0.8 * 30 - 0.01
    assert lead.is_leader()
    now[0] += 0.02  # 0.8 * lease_s after the renewal was sent: no longer, though the row lasts until 30 s
    assert not lead.is_leader()
    ledger.leases.answers = [True, RuntimeError("server gone"), False]
    lead.renew_once()
    assert lead.is_leader()
    assert not lead.renew_once()  # a failed renewal does not extend it ...
    now[0] += 24.1
    assert not lead.is_leader()  # ... so it ends 0.8 * lease_s after the last good one
    assert not lead.renew_once() and not lead.is_leader()  # another replica holds it


def test_on_sqlite_the_lease_is_trivially_held(tmp_path):
    from connector.ledger import open_ledger

    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        lead = Leadership(ledger, "x", 30, clock=lambda: 0.0)
        lead.start()
        assert lead.is_leader() and lead._thread is None
        lead.stop()
    finally:
        ledger.close()


def _write(tmp_path, ledger: str):
    p = tmp_path / "config.toml"
    p.write_text(f'[mall]\nclient_id = "abcdefghijklmnop"\n[ledger]\n{ledger}\n', encoding="utf-8")
    return p


def test_ledger_password_sources_in_order(tmp_path):
    base = 'url = "postgresql+psycopg://mall@db.example:5432/mall"'
    (tmp_path / "pw").write_text("from-the-file-0001\n")
    cred = tmp_path / "cred"
    cred.mkdir()
    (cred / "ledger_password").write_text("from-the-credential-0001\n")
    p = _write(tmp_path, base + '\npassword_file = "pw"')
    env = {"MALL_CONNECTOR_LEDGER_PASSWORD": "from-the-env-0001"}
    assert url_password(load_config(p, environ={}).ledger.url) == "from-the-file-0001"
    assert url_password(load_config(p, environ=env).ledger.url) == "from-the-env-0001"
    cfg = load_config(p, environ={**env, "CREDENTIALS_DIRECTORY": str(cred)})
    assert url_password(cfg.ledger.url) == "from-the-credential-0001"
    assert cfg.secret_sources["ledger.password"] == "the systemd credential ledger_password"
    assert "from-the-credential-0001" not in redact(f"could not connect to {cfg.ledger.url}")
    # A password in the URL itself wins (and is registered for redaction too).
    p = _write(tmp_path, 'url = "postgresql+psycopg://mall:inline-pass-0001@db/mall"')
    assert url_password(load_config(p, environ=env).ledger.url) == "inline-pass-0001"
    assert "inline-pass-0001" not in redact("inline-pass-0001 in some error text")


def test_env_ledger_url_replaces_the_file_and_a_bad_url_names_the_key(tmp_path):
    p = _write(tmp_path, 'url = "sqlite:///ledger.db"')
    cfg = load_config(p, environ={"MALL_CONNECTOR_LEDGER_URL": "postgresql+psycopg://m@h/db"})
    assert cfg.ledger.url == "postgresql+psycopg://m@h/db"
    p = _write(tmp_path, 'url = "postgresql+psycopg://m@h:notaport/db"')
    with pytest.raises(ConfigError) as e:
        load_config(p, environ={})
    assert "ledger.url" in str(e.value)


def test_descriptions_never_carry_the_password():
    url = "postgresql+psycopg://mall:s3cret-pass@db.example:5432/mall"
    assert describe(url) == "PostgreSQL db.example:5432/mall"
    assert without_password(url) == "postgresql+psycopg://mall@db.example:5432/mall"
    assert url_password(with_password(without_password(url), "other")) == "other"
    assert describe("sqlite:////var/lib/x/ledger.db") == "/var/lib/x/ledger.db"
