"""The contract between the core and a shop adapter.

An adapter only speaks its shop's format: it reads the shop's feed of current order states
into ``ShopOrderState`` rows, and writes what MALL changed into the shop's inbox (an outbox
folder for the CSV adapters). It never decides anything: the sync layer does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, Sequence


@dataclass(frozen=True)
class ShopOrderState:
    """One order as the shop's feed reports it now."""

    mall_order_id: int
    status: str  # the shop's own status name, as written in the feed
    shop_order_id: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    carrier: str | None = None
    delivered_at: datetime | None = None  # timezone-aware
    first_delivery_attempt: datetime | None = None  # timezone-aware
    location: str | None = None  # warehouse location, when the feed has one (picking list sort)
    parcel_count: int | None = None  # MALL Delivery parcels (1-100) when the feed says; None means 1
    #: Serial numbers per order item, ``((item_id, (serial, ...)), ...)``, when the feed carries them (docs/mdp.md).
    serial_numbers: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    line: int | None = None  # line (CSV) or element number (XML) in the feed, for messages


@dataclass(frozen=True)
class FeedProblem:
    """A bad row: reported with where it is and skipped; the rest of the feed still counts."""

    source: str  # file path or redacted URL
    line: int | None
    message: str
    #: What is wrong, for grouping in alerts: one of FEED_PROBLEM_KINDS (issue 14; default for older callers).
    kind: str = "bad_row"

    def __str__(self) -> str:
        return f"{self.source}{':' + str(self.line) if self.line else ''}: {self.message}"


@dataclass
class FeedRead:
    rows: list[ShopOrderState] = field(default_factory=list)
    problems: list[FeedProblem] = field(default_factory=list)
    #: True when the feed was left for the next poll (e.g. a file modified less than settle_s ago).
    not_ready: bool = False
    #: True when the feed is unchanged since ``previous_fingerprint`` and was not parsed.
    unchanged: bool = False
    #: Opaque identity of what was read (mtime+size, ETag, hash); handed back on the next read.
    fingerprint: str | None = None


#: Kinds of rejected feed rows (``FeedProblem.kind``), with the words an alert uses for each.
FEED_PROBLEM_KINDS = {
    "bad_id": "mall_order_id missing or not a positive whole number",
    "missing_status": "status empty",
    "bad_date": "a date that is not a valid date",
    "row_shape": "a row with more or fewer values than the header",
    "duplicate": "an order listed twice (the last row counts)",
    "bad_row": "other bad rows",
}


@dataclass
class SerialsRead:
    """Serial numbers from the shop (an optional adapter capability, ``read_serials``; docs/mdp.md)."""

    wanted: dict[tuple[int, str], list[str]] = field(default_factory=dict)  # (mall_order_id, item_id) -> list
    problems: list[str] = field(default_factory=list)  # bad rows, each naming file and line
    unchanged: bool = False  # the same as ``previous_fingerprint``: not read again
    fingerprint: str | None = None


class FeedUnavailable(Exception):
    """The whole feed could not be read (missing file, HTTP error, malformed XML). Message names the source.

    ``sync-once`` exits 66 (EX_NOINPUT) for it; the subclass FeedUnusable means 65."""


class FeedUnusable(FeedUnavailable):
    """The feed was read but cannot be used: a required column is missing (or there is no header at all).

    ``sync-once`` exits 65 (EX_DATAERR). The message names the source and the column."""


class FeedRefused(FeedUnavailable):
    """The feed is over one of its limits (size, rows, cells, depth, deadline): refused, not read.

    A kind of FeedUnavailable, so the engines treat it as a failed poll (the previous state stays);
    ``limit`` is the config key that sets the bound, so the message and an alert can say what to raise.
    """

    def __init__(self, source: str, limit: str, value: object, what: str):
        self.source = source
        self.limit = limit  # config key, e.g. "max_feed_bytes"
        self.value = value  # the bound in force
        super().__init__(f"{source}: refused: {what} (limit {limit} = {value})")


class HandoffError(Exception):
    """The adapter could not hand MALL's data to the shop (e.g. outbox not writable). Retried later."""


@dataclass(frozen=True)
class NewOrderItem:
    item_id: str
    article_id: int | None
    title: str
    quantity: int
    price: float
    vat: float


@dataclass(frozen=True)
class NewOrder:
    """A MALL order the shop has not seen yet, in neutral form."""

    mall_order_id: int
    purchase_id: int | None
    status: str  # MALL status
    shop_status: str  # mapped with [from_mall]; "" when the mapping has none
    created_at: str  # "YYYY-MM-DD HH:MM:SS" (Europe/Prague, as MALL sends it)
    ship_date: str | None
    delivery_date: str | None
    customer_name: str
    company: str
    street: str
    city: str
    zip: str
    country: str
    phone: str
    email: str
    delivery_method: str
    branch_id: int | None
    payment_type: str
    cod: float
    delivery_price: float
    currency: str
    items: tuple[NewOrderItem, ...]


@dataclass(frozen=True)
class MallChange:
    """Something MALL changed on an order the shop already has."""

    mall_order_id: int
    mall_status: str
    shop_status: str  # mapped with [from_mall]; "" when the mapping has none
    changed_at: str  # "YYYY-MM-DD HH:MM:SS"
    branch_id: int | None
    note: str  # e.g. "cancelled on MALL", "pickup branch changed"


HandoffKind = Literal["orders", "changes"]


class ShopAdapter(Protocol):
    """What every shop adapter provides. Implementations are registered by an ``AdapterSpec`` in the
    entry-point group ``mall_connector.adapters`` (generic_csv, fastcentrik; see adapters/README.md)."""

    name: str

    def read_feed(self, *, previous_fingerprint: str | None = None, wait_for_settle: bool = False) -> FeedRead:
        """Read the shop's current order states. Raises FeedUnavailable when nothing could be read."""

    def stage_handoff(self, name: str, kind: HandoffKind, records: Sequence[NewOrder] | Sequence[MallChange]) -> None:
        """Write a batch under a temporary name (complete and fsynced). Idempotent: rewrites the temp file.

        Raises HandoffError."""

    def publish_handoff(self, name: str) -> bool:
        """Make a staged batch visible to the shop (atomic rename). False when nothing was staged under
        ``name`` (it was already published). Raises HandoffError."""

    def manual_steps(self, record: NewOrder | MallChange) -> str | None:
        """What a human must do in the shop for this record, or None when the shop applies it itself."""


# ---------------------------------------------------------------------------------------------
# Declaring an adapter (found through the entry-point group ``mall_connector.adapters``)


@dataclass(frozen=True)
class Secret:
    """A secret key of an adapter's section, e.g. a feed's basic-auth password.

    The first that is set wins, like the MALL client_id: the systemd credential ``<name>_<key>`` in
    ``$CREDENTIALS_DIRECTORY``, env ``MALL_CONNECTOR_<NAME>_<KEY>`` (upper case), then the config value.
    Its value is registered for redaction, so it never shows in a log line.
    """

    key: str

    def env_var(self, adapter: str) -> str:
        return f"MALL_CONNECTOR_{adapter}_{self.key}".upper()

    def credential(self, adapter: str) -> str:
        return f"{adapter}_{self.key}"


@dataclass(frozen=True)
class AdapterContext:
    """What the core hands an adapter's ``build`` besides its own section."""

    tz: tzinfo  # [shop] timezone: for feed dates without an offset
    config_path: Path | None = None


@dataclass(frozen=True)
class AdapterSpec:
    """Everything the core needs to know about one adapter. An entry point of the group
    ``mall_connector.adapters`` names an object of this type; see adapters/README.md.

    * ``name``: the ``[shop] adapter`` value and the section ``[shop.<name>]``.
    * ``config_model``: a pydantic model (base: ``adapters.shared.sections.AdapterSection``) for that
      section; validated with the rest of the config, so errors name file, line and key.
    * ``build(section, context)``: the ShopAdapter. May raise ConfigError with a key and no path:
      the core adds the file and line.
    * ``secrets``: keys of the section that are secret (see ``Secret``).
    * ``paths``: keys whose relative values are relative to the config file's folder (a value that is
      an http(s) URL is left alone).
    * ``default_mapping``: the status mapping file used when ``[shop] mapping`` is not set.
    * ``contract_kit``: ``"module:attribute"`` of the test kit the shared contract suite drives
      (tests/integration/adapters/test_contract.py); only imported by the tests.
    * ``init_mapping(section)``: optional; the text of a mapping file read from the shop itself (Shoptet:
      its own status names), which ``mall-connector init`` writes instead of a copy of ``default_mapping``.
    """

    name: str
    config_model: type
    build: Callable[[Any, AdapterContext], ShopAdapter]
    default_mapping: Path
    secrets: tuple[Secret, ...] = ()
    paths: tuple[str, ...] = ()
    contract_kit: str | None = None
    description: str = ""
    init_mapping: Callable[[Any], str] | None = None
