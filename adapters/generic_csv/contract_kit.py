"""The generic CSV adapter's kit for the shared contract suite (adapters/shared/contract.py)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from adapters.shared.contract import read_outbox


class GenericCsvKit:
    def section(self, root: Path) -> dict:
        return {"source": str(root / "shop-orders.csv"), "outbox": str(root / "outbox"), "settle_s": 0}

    def write_feed(self, section: dict, rows: Sequence[dict[str, str]]) -> list[int]:
        path = Path(section["source"])
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter=";")
            writer.writerow(["shop_order_id", "mall_order_id", "status", "tracking_number"])
            for i, row in enumerate(rows):
                writer.writerow([f"S{i}", row["mall_order_id"], row["status"], row.get("tracking_number") or ""])
        tmp.replace(path)  # as the README asks shops to: write, then rename
        return [2 + i for i in range(len(rows))]  # line 1 is the header

    def feed_source(self, section: dict) -> str:
        return section["source"]

    def received(self, section: dict) -> list[dict[str, str]]:
        return read_outbox(Path(section["outbox"]))
