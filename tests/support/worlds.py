"""The test worlds: a CSV shop and a FastCentrik shop in a temp folder wired to a sandbox (the shared
world of adapters/shared/world.py with the tests' client_id and quick retries), and MALL-side counts."""

from __future__ import annotations

from pathlib import Path

from adapters.fastcentrik.world import FastCentrikWorld, feed_xml  # noqa: F401 - feed_xml: for the tests
from adapters.generic_csv.world import FEED_COLUMNS, CsvWorld  # noqa: F401
from tests.conftest import TEST_CLIENT_ID


class CsvShop(CsvWorld):
    """``shop.csv``, ``outbox/``, ``ledger.db`` and ``config.toml`` in ``folder``; retries in tenths of a second."""

    def __init__(self, folder: Path, sandbox, *, extra: str = "", mapping: str | None = None,
                 receiver_listen: str | None = None, tokens: list[str] | None = None, sync: str = ""):
        self.sandbox = sandbox
        receiver = ""
        if receiver_listen or tokens:
            receiver = "[receiver]\n"
            if receiver_listen:
                receiver += f'listen = "{receiver_listen}"\n'
            if tokens:
                receiver += "tokens = [" + ", ".join(f'"{t}"' for t in tokens) + "]\n"
        super().__init__(folder, sandbox.url, TEST_CLIENT_ID, timeout_s=5, mapping=mapping, extra=extra,
                         sync="retry_base_s = 0.05\nretry_max_s = 0.2\nmax_attempts = 12\n" + sync, sections=receiver)


class FcShop(FastCentrikWorld):
    """``orders.xml`` (or ``source``, a URL), ``outbox/``, ``ledger.db`` and ``config.toml`` in ``folder``."""

    def __init__(self, folder: Path, sandbox, source: str | None = None, extra: str = ""):
        self.sandbox = sandbox
        super().__init__(folder, sandbox.url, TEST_CLIENT_ID, source=source, extra=extra,
                         sync="retry_base_s = 0.05\nretry_max_s = 0.2\n", shop="unreadable_polls_alert = 2\n")

    def write(self, orders: list[dict], encoding: str = "UTF-8") -> None:
        self.write_orders(orders, encoding)

    def services(self):
        from connector.sync.runner import Services

        return Services(self.config())


def status_puts(sandbox, order_id: int | None = None) -> list:
    """PUTs that asked for a status change (not pure confirmations)."""
    return [e for e in sandbox.request_log.puts(order_id) if isinstance(e.body, dict) and "status" in e.body]


def applied_status_puts(sandbox, order_id: int | None = None) -> list:
    return [e for e in status_puts(sandbox, order_id) if e.applied]
