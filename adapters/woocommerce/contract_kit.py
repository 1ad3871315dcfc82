"""The WooCommerce adapter's kit for the shared contract suite: a real WooSimulator on loopback
(adapters/shared/contract.py::SimulatorKit: its order listing is the feed)."""

from __future__ import annotations

from typing import Sequence

from adapters.shared.contract import SimulatorKit
from adapters.woocommerce.simulator import WooSimulator


class WooCommerceKit(SimulatorKit):
    name = "woocommerce"
    feed_path = "/wp-json/wc/v3/orders"

    def new_simulator(self, port: int) -> WooSimulator:
        return WooSimulator(key="", secret="", port=port, statuses=["packing", "shipped", "new"])

    def write_feed(self, section: dict, rows: Sequence[dict[str, str]]) -> list[int]:
        sim = self.sim(section)
        sim.server.down_paths.clear()
        for row in rows:
            o = sim.admin_create_order(row["mall_order_id"], status=row["status"])
            if row.get("tracking_number"):
                sim.admin_update(o["id"], tracking=row["tracking_number"])
        return [i + 1 for i in range(len(rows))]  # position in the modified_after listing

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
