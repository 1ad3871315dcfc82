"""`check` / `check --fix` on the shop's webhooks and `mapping check` against the shop's own statuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.shoptet.simulator import ShoptetSimulator
from adapters.woocommerce.simulator import WooSimulator
from connector.cli import main
from tests.conftest import TEST_CLIENT_ID


def config(tmp_path, shop: str, body: str, mall: str = "http://127.0.0.1:9") -> str:
    path = tmp_path / "config.toml"
    path.write_text(f"""[mall]
base_url = "{mall}"
client_id = "{TEST_CLIENT_ID}"
[receiver]
public_url = "https://connector.example.cz"
[shop]
adapter = "{shop}"
[shop.{shop}]
{body}
""", encoding="utf-8")
    return str(path)


def test_check_reports_a_disabled_woocommerce_webhook_and_fix_re_enables_it(tmp_path, sandbox):
    with WooSimulator(key="ck_cli", secret="cs_cli_secret") as sim:
        path = config(tmp_path, "woocommerce", f'base_url = "{sim.url}"\nconsumer_key = "ck_cli"\n'
                                              'consumer_secret = "cs_cli_secret"\nwebhook_token = "tok-cli-1234"\n'
                                              'webhook_secret = "whsec-cli"', sandbox.url)
        out = CliRunner().invoke(main, ["--config", path, "check"]).output
        assert "✗ no order.updated webhook points at the receiver" in out
        out = CliRunner().invoke(main, ["--config", path, "check", "--fix"]).output
        assert "✓ fixed: registered the order.updated webhook" in out
        [hook] = sim.webhooks.values()
        assert hook["delivery_url"] == "https://connector.example.cz/webhooks/shop/woocommerce/tok-cli-1234"
        assert hook["secret"] == "whsec-cli"
        hook["status"] = "disabled"
        out = CliRunner().invoke(main, ["--config", path, "check"]).output
        assert f"✗ webhook {hook['id']} (order.updated) is disabled, not active" in out
        out = CliRunner().invoke(main, ["--config", path, "check", "--fix"]).output
        assert "✓ fixed: re-enabled webhook" in out and hook["status"] == "active"
        out = CliRunner().invoke(main, ["--config", path, "check"]).output
        assert "✓ the woocommerce webhook is registered" in out
        for secret in ("cs_cli_secret", "whsec-cli", "tok-cli-1234"):
            assert secret not in out


def test_mapping_check_flags_a_status_the_shoptet_shop_does_not_have(tmp_path):
    with ShoptetSimulator(token="tok-shoptet-cli") as sim:
        path = config(tmp_path, "shoptet", f'base_url = "{sim.url}"\napi_token = "tok-shoptet-cli"')
        ok = CliRunner().invoke(main, ["--config", path, "mapping", "check"])
        assert ok.exit_code == 0, ok.output
        sim.statuses = [s for s in sim.statuses if s[1] != "Vyřízena"]
        bad = CliRunner().invoke(main, ["--config", path, "mapping", "check"])
        assert bad.exit_code == 78
        assert "status 'Vyřízena' does not exist in this Shoptet shop" in bad.output
        assert "tok-shoptet-cli" not in bad.output


def test_sandbox_shop_starts_the_shop_simulator_on_loopback(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    proc = subprocess.Popen([str(Path(sys.executable).parent / "mall-connector"), "sandbox", "--listen", "127.0.0.1:0",
                             "--client-id", TEST_CLIENT_ID, "--orders", "0", "--shop", "woocommerce"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
    try:
        line = ""
        for _ in range(50):
            line = proc.stdout.readline()
            if line.startswith("WooCommerce simulator on "):
                break
        url = line.split(" on ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        r = httpx.get(f"{url}/wp-json/wc/v3/orders", auth=("ck_sandbox", "cs_sandbox"))
        assert r.status_code == 200 and r.json() == [] and r.headers["X-WP-Total"] == "0"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.mark.parametrize("shop", ["shoptet", "woocommerce"])
def test_demo_shop_plays_the_whole_loop(shop, tmp_path):
    import subprocess
    import sys

    done = subprocess.run([str(Path(sys.executable).parent / "mall-connector"), "demo", "--shop", shop],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "is shipped" in done.stdout and "nothing was created twice" in done.stdout
    assert done.stdout.rstrip().endswith("the whole loop works")
    assert "Traceback" not in done.stderr
