"""The test kit an adapter gives the shared contract suite (tests/adapters/test_contract.py).

An ``AdapterSpec.contract_kit`` names a class with this shape. The suite owns the expectations; the
kit only knows the adapter's formats: how a shop writes its feed and what the shop then sees of the
hand-offs. A feed row is a plain dict of text (``mall_order_id``, ``status``, ``tracking_number``),
so the suite can also write bad values.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Protocol, Sequence


class ContractKit(Protocol):
    def section(self, root: Path) -> dict:
        """A ``[shop.<name>]`` table for a shop kept under ``root`` (its feed and hand-off folder)."""

    def write_feed(self, section: dict, rows: Sequence[dict[str, str]]) -> list[int]:
        """Write the shop's feed with these rows, as the shop would; return each row's position
        (line, or element number) as the adapter's messages must name it."""

    def feed_source(self, section: dict) -> str:
        """How messages name the feed (its path)."""

    def received(self, section: dict) -> list[dict[str, str]]:
        """What the shop can see of the hand-offs (published ones only), one dict per record with at
        least ``kind`` ("orders" or "changes") and ``mall_order_id``; changes also ``mall_status``."""


def read_outbox(folder: Path) -> list[dict[str, str]]:
    """What a shop importing ``*.csv`` from an outbox folder sees: every row of every published file
    (hidden temp files are not there yet), with ``kind`` from the file's header."""
    out: list[dict[str, str]] = []
    for path in sorted(Path(folder).glob("*.csv")):
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            kind = "changes" if "mall_status" in (reader.fieldnames or ()) else "orders"
            out.extend({"kind": kind, "file": path.name, **row} for row in reader)
    return out
