"""`mall-connector init --adapter shoptet|woocommerce` through the real CLI (a subprocess) against the
Shoptet simulator over loopback HTTP: the mapping carries the shop's own status names, the token never
comes from argv nor lands in a file, config.toml gets the [shop.<adapter>] section and loads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from adapters.shoptet.simulator import ShoptetSimulator
from connector.config import load_config
from connector.mapping import load_mapping
from mappings import default_mapping_path

TOKEN = "shoptet-init-token-7f3a9c"
CLIENT_ID = "cid-init-12345"


def cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALL_CONNECTOR_")}
    env.update(env_extra or {})
    extra = ["--service-user", "nogroup"] if os.geteuid() == 0 and args[0] == "init" else []
    return subprocess.run([sys.executable, "-m", "connector", *args, *extra], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.fixture
def sim():
    with ShoptetSimulator(token=TOKEN) as s:
        s.statuses.append((77, "Čeká na díl"))  # a status only this shop has
        yield s


def test_init_shoptet_writes_the_shops_own_statuses_and_its_section(tmp_path, sim):
    folder = tmp_path / "etc"
    r = cli("init", "--dir", str(folder), "--adapter", "shoptet", "--shop-url", sim.url,
            env_extra={"MALL_CONNECTOR_SHOPTET_API_TOKEN": TOKEN})
    assert r.returncode == 0, r.stderr
    mapping_text = (folder / "mapping.toml").read_text(encoding="utf-8")
    assert '# "Čeká na díl" = ""   # not mapped' in mapping_text  # read from this shop, not the shipped file
    mapping = load_mapping(folder / "mapping.toml")
    assert mapping.to_mall["Vyřizuje se"].value == "shipping"
    assert set(mapping.to_mall) <= {name for _, name in sim.statuses}
    config_text = (folder / "config.toml").read_text(encoding="utf-8")
    assert "[shop.shoptet]" in config_text and "[shop.woocommerce]" not in config_text
    assert "[shop.generic_csv]" not in config_text
    for text in (config_text, mapping_text, r.stdout, r.stderr):
        assert TOKEN not in text
    cfg = load_config(folder / "config.toml", environ={"MALL_CLIENT_ID": CLIENT_ID,
                                                      "MALL_CONNECTOR_SHOPTET_API_TOKEN": TOKEN})
    assert cfg.shop.adapter == "shoptet" and cfg.mapping_path == folder / "mapping.toml"
    check = cli("--config", str(folder / "config.toml"), "mapping", "check",
                env_extra={"MALL_CLIENT_ID": CLIENT_ID, "MALL_CONNECTOR_SHOPTET_API_TOKEN": TOKEN})
    assert check.returncode == 0, check.stdout + check.stderr
    assert "does not exist in this Shoptet shop" not in check.stdout + check.stderr
    sim.statuses = [s for s in sim.statuses if s[1] != "Vyřizuje se"]  # the shop drops a mapped status
    check = cli("--config", str(folder / "config.toml"), "mapping", "check",
                env_extra={"MALL_CLIENT_ID": CLIENT_ID, "MALL_CONNECTOR_SHOPTET_API_TOKEN": TOKEN})
    assert check.returncode != 0 and "'Vyřizuje se' does not exist in this Shoptet shop" in check.stdout + check.stderr


def test_init_shoptet_token_from_a_file_and_the_base_url_in_the_config(tmp_path, sim):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    folder = tmp_path / "etc"
    r = cli("init", "--dir", str(folder), "--adapter", "shoptet", "--shop-url", sim.url,
            "--secret-file", f"api_token={token_file}")
    assert r.returncode == 0, r.stderr
    assert f'base_url = "{sim.url}"' in (folder / "config.toml").read_text(encoding="utf-8")
    assert "Čeká na díl" in (folder / "mapping.toml").read_text(encoding="utf-8")


def test_init_shoptet_with_a_wrong_token_fails_clearly_and_writes_nothing(tmp_path, sim):
    folder = tmp_path / "etc"
    wrong = "wrong-token-5d1e"
    r = cli("init", "--dir", str(folder), "--adapter", "shoptet", "--shop-url", sim.url,
            env_extra={"MALL_CONNECTOR_SHOPTET_API_TOKEN": wrong})
    assert r.returncode != 0
    assert "reading the shoptet shop for the mapping failed" in r.stderr and "/api/orders/statuses" in r.stderr
    assert "Traceback" not in r.stderr and wrong not in r.stderr + r.stdout
    assert not (folder / "mapping.toml").exists() and not (folder / "config.toml").exists()


def test_init_rejects_an_unknown_adapter_and_a_bad_secret_file_option(tmp_path):
    r = cli("init", "--dir", str(tmp_path / "a"), "--adapter", "nosuchshop")
    assert r.returncode == 2 and "'nosuchshop' is not a registered adapter" in r.stderr and "shoptet" in r.stderr
    r = cli("init", "--dir", str(tmp_path / "b"), "--adapter", "shoptet", "--secret-file", "password=/x")
    assert r.returncode == 2 and "KEY one of api_token" in r.stderr


def test_init_woocommerce_writes_its_section_and_the_shipped_slug_mapping(tmp_path):
    folder = tmp_path / "etc"
    r = cli("init", "--dir", str(folder), "--adapter", "woocommerce", "--shop-url", "http://127.0.0.1:1")
    assert r.returncode == 0, r.stderr
    text = (folder / "config.toml").read_text(encoding="utf-8")
    assert "[shop.woocommerce]" in text and "[shop.shoptet]" not in text and "[shop.fastcentrik]" not in text
    assert 'base_url = "http://127.0.0.1:1"' in text
    assert (folder / "mapping.toml").read_bytes() == default_mapping_path("woocommerce").read_bytes()
    cfg = load_config(folder / "config.toml", environ={"MALL_CLIENT_ID": CLIENT_ID})
    assert cfg.shop.adapter == "woocommerce"
