"""The FastCentrik adapter: reads the shop's order export, hands MALL's data over as files.

FastCentrik has no public API. Its support generates an order *export* URL (an XML feed the
shop serves, optionally behind HTTP basic auth) and an *import* URL whose format is not public.
So we read the export (XML, or CSV/XLSX when the shop exports those), and we do not guess the
import: new orders and changes go to the outbox folder as CSV (the generic CSV outbox), and
``manual_steps`` tells a person what to do in the FastCentrik admin.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Sequence
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from adapters.base import AdapterContext, FeedRead, HandoffKind, MallChange, NewOrder
from adapters.fastcentrik.feed import ParsedFeed, parse_orders_table, parse_orders_xml, peek
from adapters.fastcentrik.config import FastCentrikConfig
from adapters.shared.outbox import Outbox
from adapters.shared.tables import read_csv, read_xlsx
from adapters.shared.source import FeedSource, is_url
from connector.config import ConfigError

log = logging.getLogger("mall_connector.adapters.fastcentrik")

CONFIG_KEY = "shop.fastcentrik"

# The Czech admin's names; used in instructions when the mapping's [from_mall] has no name.
PENDING = "nevyřízená"
SETTLED = "vyřízená"
CANCELLED = "stornováno"

_SUFFIXES = {".xml": "xml", ".csv": "csv", ".xlsx": "xlsx"}


def detect_format(location: str, head: bytes, content_type: str | None = None) -> str:
    """xml, csv or xlsx for ``format = "auto"``: by file suffix, then Content-Type, then first bytes.

    Export URLs often end in .aspx or carry no suffix at all, so the content decides in the end:
    a zip (XLSX) starts with ``PK``, XML with ``<``; anything else is taken for CSV.
    """
    path = urlsplit(location).path if is_url(location) else location
    suffix = PurePosixPath(path.replace("\\", "/")).suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    ct = (content_type or "").split(";")[0].strip().lower()
    if "spreadsheetml" in ct:
        return "xlsx"
    if ct.endswith("/xml") or ct.endswith("+xml"):
        return "xml"
    if ct in ("text/csv", "application/csv"):
        return "csv"
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith((b"\xff\xfe<\x00", b"\xfe\xff\x00<")):  # UTF-16 XML
        return "xml"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "xml"
    return "csv"


class FastCentrikAdapter:
    """ShopAdapter for FastCentrik (see adapters/base.py). Decides nothing."""

    name = "fastcentrik"

    @classmethod
    def build(cls, section: FastCentrikConfig, context: AdapterContext) -> "FastCentrikAdapter":
        """The registry's ``AdapterSpec.build``: dates without an offset are in ``[shop] timezone``."""
        return cls(section, context.tz)

    def __init__(self, config: FastCentrikConfig, tz: ZoneInfo, *, timeout_s: float = 30.0):
        if not config.source:
            raise ConfigError(None, f"{CONFIG_KEY}.source",
                              "not set: the order export URL FastCentrik support generated for you "
                              "(or a path to an exported file)")
        password = config.auth_password.get_secret_value() if config.auth_password else None
        self.config = config
        self.tz = tz
        self.source = FeedSource(config.source, auth_user=config.auth_user, auth_password=password,
                                 settle_s=config.settle_s, timeout_s=timeout_s, config_key=CONFIG_KEY,
                                 limits=config.limits())
        self.outbox = Outbox(config.outbox, mode=int(config.outbox_mode, 8), group=config.outbox_group)
        #: Orders in the last feed read that had no MALL order id (the shop's own orders).
        self.last_non_mall_orders = 0

    # -- feed -----------------------------------------------------------------------------------

    def read_feed(self, *, previous_fingerprint: str | None = None, wait_for_settle: bool = False) -> FeedRead:
        """Fetch and parse the export unless it is unsettled or unchanged. Raises FeedUnavailable."""
        with self.source.fetch(previous_fingerprint=previous_fingerprint, wait_for_settle=wait_for_settle) as got:
            if got.stream is None:
                return FeedRead(not_ready=got.not_ready, unchanged=got.unchanged, fingerprint=got.fingerprint)
            fmt = self.config.format
            if fmt == "auto":
                fmt = detect_format(self.config.source or "", peek(got.stream, 512),
                                    getattr(got, "content_type", None))
            parsed = self._parse(fmt, got.stream, got.label)
        self.last_non_mall_orders = parsed.non_mall_orders
        if parsed.non_mall_orders:
            log.debug("feed %s: %d order(s) without a MALL order id skipped (the shop's own orders)",
                      got.label, parsed.non_mall_orders)
        feed = parsed.read
        feed.fingerprint = got.fingerprint
        return feed

    def _parse(self, fmt: str, stream, label: str) -> ParsedFeed:
        fields, limits = self.config.fields, self.config.limits()
        if fmt == "xml":
            return parse_orders_xml(stream, source=label, fields=fields, tz=self.tz, encoding=self.config.encoding,
                                    max_depth=self.config.max_xml_depth, max_orders=limits.max_rows)
        if fmt == "xlsx":
            records = read_xlsx(stream, source=label, limits=limits)
        else:
            records = read_csv(stream, source=label, encoding=self.config.encoding, limits=limits)
        return parse_orders_table(records, source=label, fields=fields, tz=self.tz)

    # -- handoff (outbox) -------------------------------------------------------------------------

    def stage_handoff(self, name: str, kind: HandoffKind, records: Sequence[NewOrder] | Sequence[MallChange]) -> None:
        self.outbox.stage(name, kind, records)

    def publish_handoff(self, name: str) -> bool:
        return self.outbox.publish(name)

    # -- what a person does in the FastCentrik admin ----------------------------------------------

    def manual_steps(self, record: NewOrder | MallChange) -> str | None:
        """An instruction for whoever runs the FastCentrik admin: the import format is not public,
        so nothing reaches the shop by itself."""
        if isinstance(record, NewOrder):
            status = record.shop_status or PENDING
            return (f"New MALL order {record.mall_order_id}: create it in FastCentrik as {status} "
                    f"(see the outbox file in {self.config.outbox})")
        return _change_steps(record)


def _change_steps(c: MallChange) -> str:
    oid = c.mall_order_id
    status = c.mall_status.strip().lower()
    # A branch change keeps the status; the sync layer's note says "pickup branch changed ...".
    if c.branch_id is not None and "branch" in c.note.casefold():
        return (f"MALL order {oid}: pickup branch changed to {c.branch_id}: send the parcel to the new branch "
                f"(print a new label if the old one is already printed)")
    if status == "cancelled":
        return (f"MALL order {oid} was cancelled by the customer on MALL: set it to {c.shop_status or CANCELLED} "
                f"in FastCentrik and do not ship it")
    if status == "delivered":
        return (f"MALL order {oid} was delivered to the customer (reported by MALL Delivery): make sure it is "
                f"{c.shop_status or SETTLED} in FastCentrik; nothing else to do")
    if status == "returned":
        then = f", and set the order to {c.shop_status}" if c.shop_status else ""
        return (f"MALL order {oid} is coming back to you undelivered (returned, reported by MALL Delivery): "
                f"when the parcel arrives, put the goods back in stock in FastCentrik{then}. "
                f"MALL does not pay for returned orders")
    if status == "lost":
        then = f"; set it to {c.shop_status} in FastCentrik" if c.shop_status else ""
        return (f"MALL order {oid} was lost by the MALL Delivery carrier: MALL deals with the carrier; "
                f"do not send it again unless MALL asks you to{then}")
    if c.shop_status:
        return f"MALL order {oid} is now {status} on MALL: set it to {c.shop_status} in FastCentrik"
    return f"MALL order {oid} is now {status} on MALL: check the order in FastCentrik"
