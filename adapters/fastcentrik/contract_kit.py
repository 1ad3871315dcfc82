"""The FastCentrik adapter's kit for the shared contract suite (adapters/shared/contract.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape

from adapters.shared.contract import read_outbox


class FastCentrikKit:
    def section(self, root: Path) -> dict:
        return {"source": str(root / "export.xml"), "outbox": str(root / "outbox"), "settle_s": 0}

    def write_feed(self, section: dict, rows: Sequence[dict[str, str]]) -> list[int]:
        """An XML export as FastCentrik generates it: one long line, one of the shop's own orders
        (no MALL id) first, so positions are element numbers, not lines."""
        parts = ['<?xml version="1.0" encoding="UTF-8"?><ORDERS>',
                 "<ORDER><ORDER_ID>FC-own</ORDER_ID><STATUS>nevyřízená</STATUS></ORDER>"]
        for i, row in enumerate(rows):
            tracking = row.get("tracking_number")
            parts.append(f"<ORDER><ORDER_ID>FC{i}</ORDER_ID><MALL_ORDER_ID>{escape(row['mall_order_id'])}"
                         f"</MALL_ORDER_ID><STATUS>{escape(row['status'])}</STATUS>"
                         + (f"<TRACKING_NUMBER>{escape(tracking)}</TRACKING_NUMBER>" if tracking else "")
                         + "</ORDER>")
        parts.append("</ORDERS>")
        path = Path(section["source"])
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(parts), encoding="utf-8")
        tmp.replace(path)
        return [2 + i for i in range(len(rows))]  # ORDER #1 is the shop's own order

    def feed_source(self, section: dict) -> str:
        return section["source"]

    def received(self, section: dict) -> list[dict[str, str]]:
        return read_outbox(Path(section["outbox"]))
