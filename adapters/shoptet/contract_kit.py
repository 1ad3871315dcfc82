"""The Shoptet adapter's kit for the shared contract suite: a real ShoptetSimulator on loopback
(adapters/shared/contract.py::SimulatorKit: its changes endpoint is the feed)."""

from __future__ import annotations

from typing import Sequence

from adapters.shared.contract import SimulatorKit
from adapters.shoptet.simulator import ShoptetSimulator


class ShoptetKit(SimulatorKit):
    name = "shoptet"
    feed_path = "/api/orders/changes"

    def new_simulator(self, port: int) -> ShoptetSimulator:
        return ShoptetSimulator(token="", port=port, statuses=[(-1, "new"), (-2, "packing"), (-3, "shipped"),
                                                               (-4, "cancelled")])

    def write_feed(self, section: dict, rows: Sequence[dict[str, str]]) -> list[int]:
        sim = self.sim(section)
        sim.server.down_paths.clear()
        for row in rows:
            o = sim.admin_create_order(f"MALL-{row['mall_order_id']}", status_name=row["status"])
            if row.get("tracking_number"):
                sim.admin_update(o["code"], tracking=row["tracking_number"])
        return [i + 1 for i in range(len(rows))]  # position in the /changes listing

    def received(self, section: dict) -> list[dict[str, str]]:
        sim = self.sim(section)
        sim.server.down_paths.clear()
        # A MALL change is for an order the shop already has: the suite's change is for MALL order 3000001.
        if not sim.orders_for_external("MALL-3000001"):
            sim.admin_create_order("MALL-3000001", status_name="new")
        out = []
        with sim.lock:
            for o in sim.orders.values():
                mall = (o["externalCode"] or "").removeprefix("MALL-")
                if o.get("email"):  # created through the API by the adapter (the admin's have none here)
                    out.append({"kind": "orders", "mall_order_id": mall})
                for h in sim.history.get(o["code"], []):
                    if h["text"].startswith("MALL: "):
                        out.append({"kind": "changes", "mall_order_id": mall, "mall_status": o["status"]["name"]})
        return out
