"""The generic CSV adapter: the shop exports a CSV of order states, imports CSVs from an outbox.

Feed columns (header required, any order, case ignored, unknown columns ignored):
``mall_order_id`` and ``status`` (required), ``shop_order_id``, ``tracking_number``,
``tracking_url``, ``carrier``, ``delivered_at``, ``first_delivery_attempt``, ``location``.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Sequence

from adapters.base import AdapterContext, FeedRead, HandoffKind, MallChange, NewOrder
from adapters.shared.outbox import Outbox
from adapters.generic_csv.config import GenericCsvConfig
from adapters.generic_csv.records import ColumnMap, records_to_feed
from adapters.shared.tables import read_csv
from adapters.shared.source import FeedSource
from connector.config import ConfigError

CONFIG_KEY = "shop.generic_csv"


class GenericCsvAdapter:
    """ShopAdapter for a shop that speaks plain CSV files. Decides nothing; see adapters/base.py."""

    name = "generic_csv"

    @classmethod
    def build(cls, section: GenericCsvConfig, context: AdapterContext) -> "GenericCsvAdapter":
        """The registry's ``AdapterSpec.build``: dates without an offset are in ``[shop] timezone``."""
        return cls(section, context.tz)

    def __init__(self, config: GenericCsvConfig, tz: tzinfo, *, timeout_s: float = 30.0,
                 columns: ColumnMap = ColumnMap()):
        if not config.source:
            raise ConfigError(None, f"{CONFIG_KEY}.source",
                              "not set: the path or http(s) URL of the shop's order-status CSV")
        password = config.auth_password.get_secret_value() if config.auth_password else None
        self.config = config
        self.tz = tz
        self.columns = columns
        self.source = FeedSource(config.source, auth_user=config.auth_user, auth_password=password,
                                 settle_s=config.settle_s, timeout_s=timeout_s, config_key=CONFIG_KEY,
                                 limits=config.limits())
        self.outbox = Outbox(config.outbox, mode=int(config.outbox_mode, 8), group=config.outbox_group)

    def read_feed(self, *, previous_fingerprint: str | None = None, wait_for_settle: bool = False) -> FeedRead:
        """Read and parse the CSV feed. When it is not ready (still being written) or unchanged, it is not
        parsed and the FeedRead says so. Raises FeedUnavailable."""
        with self.source.fetch(previous_fingerprint=previous_fingerprint, wait_for_settle=wait_for_settle) as got:
            if got.stream is None:
                return FeedRead(not_ready=got.not_ready, unchanged=got.unchanged, fingerprint=got.fingerprint)
            header, rows = read_csv(got.stream, source=got.label, encoding=self.config.encoding,
                                    limits=self.config.limits())
            feed = records_to_feed(rows, columns=self.columns, tz=self.tz, source=got.label, header=header)
        feed.fingerprint = got.fingerprint
        return feed

    def stage_handoff(self, name: str, kind: HandoffKind, records: Sequence[NewOrder] | Sequence[MallChange]) -> None:
        self.outbox.stage(name, kind, records)

    def publish_handoff(self, name: str) -> bool:
        return self.outbox.publish(name)

    def read_serials(self, *, previous_fingerprint: str | None = None):
        """Optional capability (docs/mdp.md): the ``serials`` CSV as a SerialsRead, None when not configured.
        Raises ValueError naming the file when it cannot be used."""
        if not getattr(self.config, "serials", None):
            return None
        from pathlib import Path

        from adapters.generic_csv.serials import read_serials_file

        return read_serials_file(Path(self.config.serials), self.config.encoding,
                                 previous_fingerprint=previous_fingerprint)

    def manual_steps(self, record: NewOrder | MallChange) -> str | None:
        """None: the shop imports the outbox files itself."""
        return None
