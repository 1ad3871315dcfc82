"""The generic-CSV shop world (adapters/shared/world.py): a feed ``shop.csv`` the shop rewrites atomically
and the ``outbox/`` it imports. Used by tests/support/worlds.py, bench/common.py and the demo."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable

from adapters.shared.world import ShopWorld, config_text

#: The feed columns a test or benchmark shop writes (adapters/generic_csv reads more; these are enough).
FEED_COLUMNS = ("mall_order_id", "status", "shop_order_id", "tracking_number", "tracking_url", "carrier",
                "delivered_at", "first_delivery_attempt")


class CsvWorld(ShopWorld):
    """A generic-CSV shop in ``folder`` wired to the MALL at ``mall_url``.

    ``write_config=False`` leaves ``config.toml`` to the caller (the demo writes its own, commented one);
    otherwise it is written from the keyword arguments (see ``config_text``) and an empty feed is published."""

    def __init__(self, folder: Path, mall_url: str, client_id: str, *, feed: str = "shop.csv",
                 columns: Iterable[str] = FEED_COLUMNS, write_config: bool = True, timeout_s: float | None = 5,
                 ledger_url: str = "sqlite:///ledger.db", sync: str = "", sections: str = "",
                 mapping: str | None = None, extra: str = ""):
        super().__init__(folder, feed=feed)
        self.mall_url, self.client_id = mall_url, client_id
        self.columns = list(columns)
        self.outbox.mkdir(exist_ok=True)  # `run` exits 78 without it (the folder is shared with the shop)
        if write_config:
            self.write_config(config_text(
                "generic_csv", mall_url=mall_url, client_id=client_id, timeout_s=timeout_s, ledger_url=ledger_url,
                sync=sync, sections=sections, mapping=mapping,
                section=f'source = "{feed}"\noutbox = "outbox"\nsettle_s = 0\n', extra=extra))
            self.write_feed([])

    def write_feed(self, rows: Iterable[dict], *, encoding: str = "utf-8", delimiter: str = ",",
                   lineterminator: str = "\r\n") -> None:
        """Publish the feed with these rows (columns not in ``columns`` are left out)."""
        self.publish(csv_bytes(rows, self.columns, encoding=encoding, delimiter=delimiter,
                               lineterminator=lineterminator))


def csv_bytes(rows: Iterable[dict], columns: Iterable[str], *, encoding: str = "utf-8", delimiter: str = ",",
              lineterminator: str = "\r\n") -> bytes:
    """A feed's bytes: the header, then the rows (keys not in ``columns`` left out)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), delimiter=delimiter, extrasaction="ignore",
                       lineterminator=lineterminator)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode(encoding)
