"""The shop-adapter contract, run for every registered adapter and for the test-only toy_shop.

Every adapter found in the entry-point group ``mall_connector.adapters`` must: read its feed into
order states; hand a new order to the shop exactly once across a crash (kill -9) between stage and
publish; hand a MALL change to the shop; and name the file and line of bad input. The adapter's kit
(adapters/shared/contract.py) only writes its feed format and reads what its shop sees; the
expectations are here. Its config section and secrets go through the real config loader.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters import make_adapter, registry
from adapters.base import AdapterSpec, FeedUnavailable
from connector.config import ConfigError, load_config
from connector.mapping import load_mapping
from tests.integration.adapters.conftest import TOY
from tests.support.records import cancelled, new_order
from tests.support.paths import ROOT

INSTALLED = sorted(registry.adapters())  # what the installed packages register, at collection time


def test_the_shipped_adapters_are_registered_and_the_toy_is_not():
    assert {"generic_csv", "fastcentrik"} <= set(INSTALLED)
    assert TOY not in INSTALLED  # it only exists while a test installs it


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, name: str, section: dict, extra_lines: str = "") -> Path:
    lines = ["[mall]", 'client_id = "contract-client-id"', "[shop]", f'adapter = "{name}"', f"[shop.{name}]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in section.items()]
    path.write_text("\n".join(lines) + "\n" + extra_lines, encoding="utf-8")
    return path


@dataclass
class Shop:
    name: str
    spec: AdapterSpec
    kit: object
    section: dict
    config_path: Path
    pythonpath: str

    def adapter(self):
        return make_adapter(load_config(self.config_path, environ={}))


@pytest.fixture(params=[*INSTALLED, TOY])
def shop(request, tmp_path) -> Shop:
    paths = [str(ROOT)]
    if request.param == TOY:
        paths.insert(0, str(request.getfixturevalue("toy_site")))
    spec = registry.get(request.param)
    assert spec.contract_kit, f"adapter {spec.name} declares no contract_kit"
    module, _, attr = spec.contract_kit.partition(":")
    kit = getattr(importlib.import_module(module), attr)()
    root = tmp_path / "shop"
    root.mkdir()
    section = kit.section(root)
    return Shop(request.param, spec, kit, section, write_config(tmp_path / "config.toml", spec.name, section),
                os.pathsep.join(paths))


ROWS = [
    {"mall_order_id": "1000001", "status": "packing"},
    {"mall_order_id": "1000002", "status": "shipped", "tracking_number": "DR1234567CZ"},
    {"mall_order_id": "1000003", "status": "new"},
]


def test_reads_the_feed(shop):
    shop.kit.write_feed(shop.section, ROWS)
    adapter = shop.adapter()
    feed = adapter.read_feed(wait_for_settle=True)
    assert feed.problems == []
    assert {(r.mall_order_id, r.status, r.tracking_number) for r in feed.rows} == {
        (1000001, "packing", None), (1000002, "shipped", "DR1234567CZ"), (1000003, "new", None)}
    assert feed.fingerprint
    again = adapter.read_feed(previous_fingerprint=feed.fingerprint, wait_for_settle=True)
    assert again.unchanged or {r.mall_order_id for r in again.rows} == {1000001, 1000002, 1000003}


def test_bad_row_names_the_file_and_line_and_the_rest_still_counts(shop):
    rows = [ROWS[0], {"mall_order_id": "12x4", "status": "packing"}, ROWS[2]]
    positions = shop.kit.write_feed(shop.section, rows)
    feed = shop.adapter().read_feed(wait_for_settle=True)
    assert {r.mall_order_id for r in feed.rows} == {1000001, 1000003}
    assert len(feed.problems) == 1
    problem = feed.problems[0]
    source = shop.kit.feed_source(shop.section)
    assert (problem.source, problem.line) == (source, positions[1])
    assert str(problem).startswith(f"{source}:{positions[1]}: ") and "12x4" in str(problem)


def test_missing_feed_is_unavailable_and_names_it(shop):
    with pytest.raises(FeedUnavailable) as e:
        shop.adapter().read_feed()
    assert shop.kit.feed_source(shop.section) in str(e.value)


CRASH_AFTER_STAGE = """
import os, signal, sys
from adapters import make_adapter
from connector.config import load_config
from tests.support.records import new_order
adapter = make_adapter(load_config(sys.argv[1], environ={}))
adapter.stage_handoff(sys.argv[2], "orders", [new_order(int(sys.argv[3]))])
os.kill(os.getpid(), signal.SIGKILL)
"""


def stage_then_die(shop: Shop, name: str, oid: int) -> None:
    """A real process stages the batch and is killed -9 before it can publish."""
    env = {**os.environ, "PYTHONPATH": shop.pythonpath}
    done = subprocess.run([sys.executable, "-c", CRASH_AFTER_STAGE, str(shop.config_path), name, str(oid)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr


def orders_for(received, oid: int) -> list[dict]:
    return [r for r in received if r["kind"] == "orders" and r["mall_order_id"] == str(oid)]


@pytest.mark.e2e  # a real process, killed -9
def test_new_order_reaches_the_shop_exactly_once_across_a_crash_between_stage_and_publish(shop):
    stage_then_die(shop, "orders-20261130-000001", 2000001)
    assert orders_for(shop.kit.received(shop.section), 2000001) == []  # staged is not visible to the shop
    adapter = shop.adapter()  # the restarted connector: the ledger says "staged", so it publishes
    assert adapter.publish_handoff("orders-20261130-000001") is True
    assert len(orders_for(shop.kit.received(shop.section), 2000001)) == 1
    # A crash after the rename but before the ledger noted it: publishing again hands nothing twice.
    assert shop.adapter().publish_handoff("orders-20261130-000001") is False
    assert len(orders_for(shop.kit.received(shop.section), 2000001)) == 1


@pytest.mark.e2e  # a real process, killed -9
def test_new_order_exactly_once_when_the_stage_is_redone_after_a_crash(shop):
    stage_then_die(shop, "orders-20261130-000002", 2000002)
    adapter = shop.adapter()  # the ledger still says "sending": the batch is staged again, then published
    adapter.stage_handoff("orders-20261130-000002", "orders", [new_order(2000002)])
    adapter.stage_handoff("orders-20261130-000002", "orders", [new_order(2000002)])
    assert adapter.publish_handoff("orders-20261130-000002") is True
    got = orders_for(shop.kit.received(shop.section), 2000002)
    assert len(got) == 1
    assert adapter.publish_handoff("orders-20261130-000002") is False


def test_hands_a_mall_change_to_the_shop(shop):
    adapter = shop.adapter()
    adapter.stage_handoff("changes-20261130-000001", "changes", [cancelled(3000001)])
    assert [r for r in shop.kit.received(shop.section) if r["kind"] == "changes"] == []
    assert adapter.publish_handoff("changes-20261130-000001") is True
    changes = [r for r in shop.kit.received(shop.section) if r["kind"] == "changes"]
    assert [(c["mall_order_id"], c["mall_status"]) for c in changes] == [("3000001", "cancelled")]
    steps = adapter.manual_steps(cancelled(3000001))
    assert steps is None or "3000001" in steps


def test_its_section_is_validated_with_file_line_and_key(shop, tmp_path):
    path = write_config(tmp_path / "bad.toml", shop.name, shop.section, "no_such_key = 1\n")
    line = len(path.read_text(encoding="utf-8").splitlines())
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    assert str(e.value).startswith(f"{path}:{line}: shop.{shop.name}.no_such_key: unknown key")


def test_its_secrets_come_from_env_or_a_systemd_credential_and_never_show(shop, tmp_path):
    assert shop.spec.secrets, f"{shop.name} declares no secrets"
    for secret in shop.spec.secrets:
        value = f"s3cret-{shop.name}-{secret.key}"
        cfg = load_config(shop.config_path, environ={secret.env_var(shop.name): value})
        assert getattr(cfg.shop, shop.name).__getattribute__(secret.key).get_secret_value() == value
        assert value not in repr(cfg) and value in [s.get_secret_value() for s in cfg.shop.adapter_secrets()]
        creds = tmp_path / f"creds-{secret.key}"
        creds.mkdir()
        (creds / secret.credential(shop.name)).write_text(value + "\n", encoding="utf-8")
        cfg = load_config(shop.config_path, environ={"CREDENTIALS_DIRECTORY": str(creds)})
        assert getattr(getattr(cfg.shop, shop.name), secret.key).get_secret_value() == value


def test_its_default_mapping_is_used_and_valid(shop):
    cfg = load_config(shop.config_path, environ={})
    assert cfg.mapping_path == shop.spec.default_mapping
    load_mapping(cfg.mapping_path)  # raises on an invalid mapping


def test_the_toy_is_found_only_through_its_entry_point(tmp_path, request):
    section = {"feed": str(tmp_path / "f.jsonl"), "inbox": str(tmp_path / "in")}
    path = write_config(tmp_path / "config.toml", TOY, section)
    with pytest.raises(ConfigError, match=r"shop.adapter: unknown adapter 'toy_shop' \(installed: .*generic_csv"):
        load_config(path, environ={})
    request.getfixturevalue("toy_site")
    cfg = load_config(path, environ={})
    assert type(make_adapter(cfg)).__name__ == "ToyShopAdapter"
    assert cfg.shop.toy_shop.inbox == tmp_path / "in"
