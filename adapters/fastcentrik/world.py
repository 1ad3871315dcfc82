"""The FastCentrik shop world (adapters/shared/world.py): the XML order export ``orders.xml`` the shop
regenerates atomically, and the ``outbox/`` the connector writes. Used by tests/support/worlds.py."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

from adapters.shared.world import ShopWorld, config_text


def feed_xml(orders: list[dict], encoding: str = "UTF-8") -> bytes:
    """A FastCentrik export: ``<ORDERS><ORDER><TAG>value</TAG>…</ORDER>…</ORDERS>`` in UTF-8 or windows-1250."""
    parts = [f'<?xml version="1.0" encoding="{encoding}"?>\n<ORDERS>']
    for o in orders:
        parts.append("<ORDER>" + "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in o.items()) + "</ORDER>")
    parts.append("</ORDERS>\n")
    return "\n".join(parts).encode("cp1250" if encoding.lower() == "windows-1250" else "utf-8")


class FastCentrikWorld(ShopWorld):
    """A FastCentrik shop in ``folder`` wired to the MALL at ``mall_url``; ``source``: a URL instead of the file."""

    def __init__(self, folder: Path, mall_url: str, client_id: str, *, source: str | None = None,
                 sync: str = "", shop: str = "", extra: str = ""):
        super().__init__(folder, feed="orders.xml")
        self.mall_url, self.client_id = mall_url, client_id
        self.write_config(config_text(
            "fastcentrik", mall_url=mall_url, client_id=client_id, sync=sync, shop=shop,
            section=f'source = "{source or "orders.xml"}"\noutbox = "outbox"\nsettle_s = 0\n', extra=extra))

    def write_orders(self, orders: list[dict], encoding: str = "UTF-8") -> None:
        """Publish the export with these orders (each a dict of tag → value)."""
        self.publish(feed_xml(orders, encoding))
