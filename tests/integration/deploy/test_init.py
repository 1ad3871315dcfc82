"""`mall-connector init`: the admin's own config and mapping; never overwrites; the unmapped hint names that file."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import load_config
from mappings import default_mapping_path
from tests.support.worlds import CsvShop


@pytest.mark.parametrize("adapter,other", [("generic_csv", "fastcentrik"), ("fastcentrik", "generic_csv")])
def test_init_writes_a_valid_config_with_the_adapters_sections_and_a_mapping_copy(tmp_path, adapter, other):
    folder = tmp_path / "etc"
    args = ["init", "--dir", str(folder), "--adapter", adapter]
    if os.geteuid() == 0:
        args += ["--service-user", "nogroup"]  # an existing group; the unit's user may not exist here
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    text = (folder / "config.toml").read_text(encoding="utf-8")
    assert f"[shop.{adapter}]" in text and f"[shop.{other}]" not in text
    cfg = load_config(folder / "config.toml", environ={"MALL_CLIENT_ID": "cid-init-12345"})
    assert cfg.shop.adapter == adapter
    assert cfg.mapping_path == folder / "mapping.toml"
    assert cfg.ledger.url == "sqlite:////var/lib/mall-connector/ledger.db"
    assert (folder / "mapping.toml").read_bytes() == default_mapping_path(adapter).read_bytes()
    for name in ("config.toml", "mapping.toml"):
        st = os.stat(folder / name)
        if os.geteuid() == 0:
            assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, 65534)
        else:
            assert stat.S_IMODE(st.st_mode) == 0o600
    check = CliRunner().invoke(main, ["--config", str(folder / "config.toml"), "mapping", "check"])
    assert check.exit_code == 0 and str(folder / "mapping.toml") in check.output


def test_init_never_overwrites_and_never_follows_a_link(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "config.toml").write_text("# mine\n")
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, folder / "mapping.toml")
    args = ["init", "--dir", str(folder), "--adapter", "generic_csv"]
    if os.geteuid() == 0:
        args += ["--service-user", "nogroup"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert (folder / "config.toml").read_text() == "# mine\n"
    assert victim.read_text() == "precious"
    assert r.output.count("init never overwrites a file") == 2


def test_unmapped_status_hint_names_the_configured_mapping(tmp_path, sandbox):
    shop = CsvShop(tmp_path, sandbox, mapping="mapping.toml")
    (tmp_path / "mapping.toml").write_bytes(default_mapping_path("generic_csv").read_bytes())
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    shop.write_feed([{"mall_order_id": oid, "status": "odesláno"}])
    shop.cli("sync-once", "--no-sweep")
    out = shop.cli("ledger", "list", "--state", "all").stdout
    assert "unmapped shop status 'odesláno'" in out
    assert str(tmp_path / "mapping.toml") in out and "site-packages" not in out
