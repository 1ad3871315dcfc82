"""The core confirms on MALL only after the outbox file was published with the configured mode and group:
a mismatch (here: a file system that ignores chmod) is a failed hand-off, retried once it is fixed."""

from __future__ import annotations

import os
import stat

import pytest

from connector.sync.runner import Services
from tests.support.worlds import CsvShop

pytestmark = pytest.mark.e2e


def test_mode_mismatch_blocks_the_confirm_until_fixed(tmp_path, sandbox, monkeypatch):
    shop = CsvShop(tmp_path, sandbox)
    services = Services(shop.config())
    try:
        (oid,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
        real_fchmod = os.fchmod
        monkeypatch.setattr(os, "fchmod", lambda fd, mode: real_fchmod(fd, 0o600))  # chmod "ignored"
        services.inbound.sweep()
        services.inbound.run()
        assert sandbox.state.get(oid)["confirmed"] is False
        assert not [e for e in sandbox.request_log.puts(oid) if e.body.get("confirmed")]
        assert services.ledger.handoffs.open()  # kept, to be retried

        monkeypatch.setattr(os, "fchmod", real_fchmod)  # fixed
        services.inbound.run(retry_now=True)  # the next attempt, without waiting out the hand-off's backoff
        assert sandbox.state.get(oid)["confirmed"] is True and not services.ledger.handoffs.open()
        (published,) = [p for p in shop.outbox.iterdir() if p.suffix == ".csv"]
        assert stat.S_IMODE(os.stat(published).st_mode) == 0o640
        assert len([e for e in sandbox.request_log.puts(oid) if e.body.get("confirmed")]) == 1
    finally:
        services.close()
