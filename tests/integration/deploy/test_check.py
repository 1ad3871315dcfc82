"""`check` covers what the first order touches: secrets and their source, the feed, the outbox (probe file
with mode and group), the ledger folder (never creating a ledger), alerts, a real test alert, the runuser hint."""

from __future__ import annotations

import os
import pwd

import pytest

from tests.conftest import TEST_CLIENT_ID
from tests.support.worlds import CsvShop

pytestmark = pytest.mark.e2e


@pytest.fixture
def shop(tmp_path, sandbox):
    (tmp_path / "shop").mkdir()
    s = CsvShop(tmp_path / "shop", sandbox, tokens=["check-token-Wd4Rk9Mz2Xq7Lb5Nt3Hv"])
    os.chmod(s.outbox, 0o2770)  # the shop's group may delete what it imported
    return s


def _set_client_id_from_env(shop) -> dict:
    text = shop.config_path.read_text(encoding="utf-8").replace(f'client_id = "{TEST_CLIENT_ID}"\n', "")
    shop.config_path.write_text(text, encoding="utf-8")
    return dict(os.environ, MALL_CLIENT_ID=TEST_CLIENT_ID)


def test_a_good_setup_with_a_test_alert(shop, hook):
    with shop.config_path.open("a", encoding="utf-8") as f:
        f.write(f'\n[alerts]\nwebhook_url = "{hook.url}"\n')
    env = _set_client_id_from_env(shop)
    shop.write_feed([{"mall_order_id": 11, "status": "new"}, {"mall_order_id": 12, "status": "shipped"}])
    r = shop.cli("check", "--send-test-alert", env=env)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "✓ client_id: from the environment variable MALL_CLIENT_ID" in out and TEST_CLIENT_ID not in out
    assert "2 row(s), 2 order(s), 2 status(es)" in out
    assert f"✓ outbox {shop.outbox} is writable; its files will be 0640, readable by the group" in out
    assert "✓ alerts go to the webhook at 127.0.0.1" in out
    assert "✓ test alert sent to the webhook at 127.0.0.1" in out
    assert len(hook.requests) == 1 and "test alert" in hook.texts[0]
    assert list(shop.outbox.iterdir()) == []  # the probe file is gone
    assert not (shop.folder / "ledger.db").exists()  # check never creates the ledger
    if pwd.getpwuid(os.geteuid()).pw_name != "mall-connector":
        assert "runuser -u mall-connector -- mall-connector check" in out


def test_every_problem_is_a_cross_naming_what_to_change(shop):
    shop.outbox.rmdir()
    with shop.config_path.open("a", encoding="utf-8") as f:
        f.write('outbox_mode = "0600"\n')
    shop.write_feed([{"mall_order_id": 11, "status": "zabaleno"}])
    r = shop.cli("check")
    out = r.stdout
    assert r.returncode == 1
    assert f"✗ outbox folder {shop.outbox} does not exist: create it ([shop.generic_csv] outbox" in out
    assert "'zabaleno'; add each to [to_mall] or [ignore] in" in out
    assert "– [shop] mapping is not set: the shipped" in out and "mall-connector init" in out
    shop.outbox.mkdir()
    out = shop.cli("check").stdout
    assert "NOT readable by the group" in out and 'outbox_mode = "0640"' in out


def test_missing_client_id_is_a_cross_and_mall_is_not_contacted(shop, sandbox):
    env = _set_client_id_from_env(shop)
    env.pop("MALL_CLIENT_ID")
    before = len(sandbox.request_log)
    r = shop.cli("check", env=env)
    assert r.returncode == 1
    assert "✗ client_id: not found from here" in r.stdout and "MALL not contacted" in r.stdout
    assert len(sandbox.request_log) == before


def test_no_alert_channel_for_a_test_alert_is_a_cross(shop):
    r = shop.cli("check", "--send-test-alert")
    assert r.returncode == 1 and "✗ no alert channel to send a test alert to" in r.stdout
