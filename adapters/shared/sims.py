"""Starting a shop simulator next to the MALL sandbox (``mall-connector sandbox --shop …``, the demo)."""

from __future__ import annotations

SHOPS = ("shoptet", "woocommerce")


def start_shop_simulator(shop: str, port: int = 0):
    """A started simulator on 127.0.0.1 and the lines that tell a person how to point a config at it."""
    if shop == "shoptet":
        from adapters.shoptet.simulator import ShoptetSimulator

        sim = ShoptetSimulator(token="sandbox-shoptet-token", port=port).start()
        return sim, [f"Shoptet simulator on {sim.url}",
                     f'  [shop.shoptet] base_url = "{sim.url}", api_token = "sandbox-shoptet-token", '
                     f'webhook_key = "{sim.signature_key}"']
    if shop == "woocommerce":
        from adapters.woocommerce.simulator import WooSimulator

        sim = WooSimulator(key="ck_sandbox", secret="cs_sandbox", port=port).start()
        return sim, [f"WooCommerce simulator on {sim.url}",
                     f'  [shop.woocommerce] base_url = "{sim.url}", consumer_key = "ck_sandbox", '
                     'consumer_secret = "cs_sandbox"']
    raise ValueError(f"unknown shop {shop!r} (one of {', '.join(SHOPS)})")
