"""The Shoptet adapter's kit for the shared contract suite: a real ShoptetSimulator on loopback.

Until the kit writes the feed, the changes endpoint answers 503 with an HTML maintenance page: that is
this adapter's "missing feed", which the contract wants named. The suite sets the API token through env
or credentials itself, so the section holds none and this shop accepts the empty token."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Sequence

from adapters.shoptet.simulator import ShoptetSimulator

_SIMS: dict[int, ShoptetSimulator] = {}
CHANGES = "/api/orders/changes"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ShoptetKit:
    def section(self, root: Path) -> dict:
        port = _free_port()
        self.sim({"base_url": f"http://127.0.0.1:{port}"}).server.down_paths.add(CHANGES)
        return {"base_url": f"http://127.0.0.1:{port}", "state_dir": str(root / "state"), "retries": 0}

    def sim(self, section: dict) -> ShoptetSimulator:
        port = int(section["base_url"].rsplit(":", 1)[1])
        if port not in _SIMS:
            _SIMS[port] = ShoptetSimulator(token="", port=port, statuses=[
                (-1, "new"), (-2, "packing"), (-3, "shipped"), (-4, "cancelled")]).start()
        return _SIMS[port]

    def write_feed(self, section: dict, rows: Sequence[dict[str, str]]) -> list[int]:
        sim = self.sim(section)
        sim.server.down_paths.clear()
        for row in rows:
            o = sim.admin_create_order(f"MALL-{row['mall_order_id']}", status_name=row["status"])
            if row.get("tracking_number"):
                sim.admin_update(o["code"], tracking=row["tracking_number"])
        return [i + 1 for i in range(len(rows))]  # position in the /changes listing

    def feed_source(self, section: dict) -> str:
        return f"shoptet {section['base_url']}{CHANGES}"

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
