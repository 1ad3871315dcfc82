"""The registry's edges: an adapter that cannot be loaded stops no other, and choosing it says why;
a declared secret given with the wrong type is not echoed."""

from __future__ import annotations

import sys

import pytest

from adapters import registry
from connector.config import ConfigError, load_config


@pytest.fixture
def site_with(tmp_path):
    added = []

    def install(name: str, value: str):
        dist = tmp_path / "site" / f"{name}_adapter-0.1.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-adapter\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{name} = {value}\n")
        if str(tmp_path / "site") not in sys.path:
            sys.path.insert(0, str(tmp_path / "site"))
            added.append(str(tmp_path / "site"))
        registry.refresh()

    yield install
    for path in added:
        sys.path.remove(path)
    registry.refresh()


def test_a_broken_adapter_stops_no_other_and_choosing_it_says_why(tmp_path, site_with):
    site_with("broken_shop", "no_such_module_anywhere:ADAPTER")
    site_with("wrong_shop", "tests.support.records:new_order")  # not an AdapterSpec
    assert {"generic_csv", "fastcentrik"} <= set(registry.adapters())
    assert "broken_shop" not in registry.adapters() and "wrong_shop" not in registry.adapters()
    path = tmp_path / "config.toml"
    path.write_text("[shop]\nadapter = 'broken_shop'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    msg = str(e.value)
    assert msg.startswith(f"{path}:2: shop.adapter: adapter 'broken_shop' is installed but not usable: ")
    assert "no_such_module_anywhere:ADAPTER cannot be loaded: ModuleNotFoundError" in msg
    path.write_text("[shop]\nadapter = 'wrong_shop'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="names a function, not an adapters.base.AdapterSpec"):
        load_config(path, environ={})
    path.write_text("[shop]\nadapter = 'generic_csv'\n", encoding="utf-8")
    assert load_config(path, environ={}).shop.adapter == "generic_csv"


def test_a_declared_secret_of_the_wrong_type_is_not_echoed(tmp_path, toy_site):
    path = tmp_path / "config.toml"
    path.write_text("[shop]\nadapter = 'toy_shop'\n[shop.toy_shop]\napi_key = ['my-real-api-key-123']\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    assert str(e.value).startswith(f"{path}:4: shop.toy_shop.api_key: ")
    assert "my-real-api-key-123" not in str(e.value)
