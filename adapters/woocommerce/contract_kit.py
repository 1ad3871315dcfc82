"""The WooCommerce adapter's kit for the shared contract suite: a real WooSimulator on loopback.

Until the kit writes the feed, the shop's order listing answers 503 with an HTML maintenance page (a
host's error page): that is this adapter's "missing feed", which the contract wants named."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Sequence

from adapters.woocommerce.simulator import WooSimulator

_SIMS: dict[int, WooSimulator] = {}


# The suite sets the secrets through env or credentials itself, so the section holds none and this
# shop accepts the empty key pair (key auth is proven in tests/shops/).
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WooCommerceKit:
    def section(self, root: Path) -> dict:
        port = _free_port()
        self.sim({"base_url": f"http://127.0.0.1:{port}"}).server.down_paths.add("/wp-json/wc/v3/orders")
        return {"base_url": f"http://127.0.0.1:{port}", "state_dir": str(root / "state"), "retries": 0}

    def sim(self, section: dict) -> WooSimulator:
        port = int(section["base_url"].rsplit(":", 1)[1])
        if port not in _SIMS:
            _SIMS[port] = WooSimulator(key="", secret="", port=port,
                                       statuses=["packing", "shipped", "new"]).start()
        return _SIMS[port]

    def write_feed(self, section: dict, rows: Sequence[dict[str, str]]) -> list[int]:
        sim = self.sim(section)
        sim.server.down_paths.clear()
        for row in rows:
            o = sim.admin_create_order(row["mall_order_id"], status=row["status"])
            if row.get("tracking_number"):
                sim.admin_update(o["id"], tracking=row["tracking_number"])
        return [i + 1 for i in range(len(rows))]  # position in the modified_after listing

    def feed_source(self, section: dict) -> str:
        return f"woocommerce {section['base_url']}/wp-json/wc/v3/orders"

    def received(self, section: dict) -> list[dict[str, str]]:
        sim = self.sim(section)
        # A MALL change is for an order the shop already has: the suite's change is for MALL order 3000001.
        sim.server.down_paths.clear()
        if not sim.orders_for_mall_id("3000001"):
            sim.admin_create_order("3000001", status="processing")
        out = []
        with sim.lock:
            for o in sim.orders.values():
                if o["created_via"] != "mall":
                    continue
                mall = next(m["value"] for m in o["meta_data"] if m["key"] == "_mall_order_id")
                out.append({"kind": "orders", "mall_order_id": str(mall)})
            for oid, notes in sim.notes.items():
                o = sim.orders[oid]
                mall = next((m["value"] for m in o["meta_data"] if m["key"] == "_mall_order_id"), None)
                for n in notes:
                    if n["note"].startswith("MALL: "):
                        out.append({"kind": "changes", "mall_order_id": str(mall), "mall_status": o["status"]})
        return out
