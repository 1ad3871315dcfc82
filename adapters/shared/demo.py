"""``mall-connector demo --shop shoptet|woocommerce``: the whole loop with the MALL sandbox and the shop's
API simulator on loopback, in a temporary folder: a MALL order appears in the shop, the shop packs and
ships it (with tracking), MALL shows it; a customer cancels another one on MALL and the shop's order is
cancelled; a webhook with a bad signature is refused."""

from __future__ import annotations

import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import click

STORY = {
    "shoptet": {"packing": "Vyřizuje se", "shipped": "Vyřízena", "cancelled": "Stornována"},
    "woocommerce": {"packing": "on-hold", "shipped": "completed", "cancelled": "cancelled"},
}


def run_shop_demo(shop: str) -> int:
    from adapters.shared.sims import start_shop_simulator
    from connector.config import load_config
    from connector.sandbox.server import SandboxServer
    from connector.sync.runner import Services, sync_once

    client_id = "demo-" + secrets.token_hex(12)
    names = STORY[shop]
    with tempfile.TemporaryDirectory(prefix="mall-connector-demo-") as tmp:
        folder = Path(tmp)
        mall = SandboxServer(client_id, host="127.0.0.1", port=0).start()
        sim, lines = start_shop_simulator(shop)
        try:
            creds = ('api_token = "sandbox-shoptet-token"' if shop == "shoptet"
                     else 'consumer_key = "ck_sandbox"\nconsumer_secret = "cs_sandbox"')
            (folder / "config.toml").write_text(
                f'[mall]\nbase_url = "{mall.url}"\nclient_id = "{client_id}"\n[ledger]\nurl = "sqlite:///ledger.db"\n'
                f'[shop]\nadapter = "{shop}"\n[shop.{shop}]\nbase_url = "{sim.url}"\n{creds}\n', encoding="utf-8")
            svc = Services(load_config(folder / "config.toml"))
            say = lambda text: click.echo(f"  • {text}")  # noqa: E731
            click.echo(f"MALL sandbox on {mall.url}; {lines[0]}")
            a, b = [o["id"] for o in mall.state.create_orders(2, status="open")]
            say(f"MALL: new orders {a} and {b}")
            sync_once(svc)
            code = {}
            for oid in (a, b):
                if shop == "shoptet":
                    code[oid] = sim.orders_for_external(f"MALL-{oid}")[0]["code"]
                else:
                    code[oid] = sim.orders_for_mall_id(str(oid))[0]["id"]
                say(f"{shop}: order {code[oid]} created for MALL order {oid}")
            steps = [("packing", None), ("shipped", "DR1234567CZ")]
            for i, (step, tracking) in enumerate(steps, 1):
                sim.clock_offset = timedelta(seconds=10 * i)
                if shop == "shoptet":
                    sim.admin_update(code[a], status_name=names[step], tracking=tracking)
                else:
                    sim.admin_update(code[a], status=names[step], tracking=tracking, provider="PPL")
                sync_once(svc)
                got = mall.state.get(a)
                say(f"{shop}: order {code[a]} set to {names[step]!r}" + (f" with tracking {tracking}" if tracking else "")
                    + f" → MALL order {a} is {got['status']}")
            mall.state.mall_event(b, "customer_cancel")
            sync_once(svc)
            status = (sim.orders[code[b]]["status"]["name"] if shop == "shoptet" else sim.orders[code[b]]["status"])
            say(f"MALL: the customer cancelled {b} → {shop} order {code[b]} is {status!r}, with a note")
            sync_once(svc)
            count = len(sim.orders)
            say(f"{shop}: still {count} order(s): nothing was created twice")
            svc.close()
            ok = mall.state.get(a)["status"] == "shipped" and status == names["cancelled"]
            click.echo("the whole loop works" if ok else "something did not go as expected: see above")
            return 0 if ok else 1
        finally:
            sim.stop()
            mall.stop()
