"""The test kit an adapter gives the shared contract suite (tests/integration/adapters/test_contract.py).

An ``AdapterSpec.contract_kit`` names a class with this shape. The suite owns the expectations; the
kit only knows the adapter's formats: how a shop writes its feed and what the shop then sees of the
hand-offs. A feed row is a plain dict of text (``mall_order_id``, ``status``, ``tracking_number``),
so the suite can also write bad values.
"""

from __future__ import annotations

import csv
import socket
from pathlib import Path
from typing import Any, ClassVar, Protocol, Sequence


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimulatorKit:
    """A kit whose shop is a simulator (adapters/shared/simhttp.py) on a loopback port, one per section.
    Until the kit writes the feed, ``feed_path`` answers 503 with an HTML maintenance page (a host's
    error page): that is an API shop's "missing feed", which the contract wants named. The suite sets
    the secrets through env or credentials itself, so the section holds none and the simulator accepts
    the empty ones (auth is proven in tests/integration/shops/)."""

    name: ClassVar[str]  # the adapter's, as its messages name the feed
    feed_path: ClassVar[str]
    _running: ClassVar[dict[tuple[str, int], Any]] = {}

    def new_simulator(self, port: int) -> Any:
        raise NotImplementedError

    def section(self, root: Path) -> dict:
        base_url = f"http://127.0.0.1:{free_port()}"
        self.sim({"base_url": base_url}).server.down_paths.add(self.feed_path)
        return {"base_url": base_url, "state_dir": str(root / "state"), "retries": 0}

    def sim(self, section: dict) -> Any:
        key = (self.name, int(section["base_url"].rsplit(":", 1)[1]))
        if key not in self._running:
            self._running[key] = self.new_simulator(key[1]).start()
        return self._running[key]

    def feed_source(self, section: dict) -> str:
        return f"{self.name} {section['base_url']}{self.feed_path}"
