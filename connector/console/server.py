"""Serving the console from the daemon process: waitress on its own threads, next to the receiver."""

from __future__ import annotations

import logging
import threading

from connector.console.app import MAX_FORM_BYTES, ConsoleRuntime
from connector.console.users import UserStore, users_path
from receiver.server import ReceiverServer

log = logging.getLogger("mall_connector.console")


class ConsoleServer(ReceiverServer):
    """The receiver's waitress wrapper (bind at once, clean stop), with the console's body limit."""

    def __init__(self, app, host: str, port: int, *, threads: int = 4, **adjustments):
        super().__init__(app, host, port, threads=threads, max_body_bytes=MAX_FORM_BYTES, **adjustments)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.run, name="console", daemon=True)
        self._thread.start()
        log.info("console listening on %s", self.url)


def mall_quota(daemon) -> dict | None:
    """MALL's rate-limit budget as last told (X-RateLimit-*), through the client's public quota reading."""
    from connector.sync.ratelimit import quota_of

    q = quota_of(daemon.services.client)
    if q is None or q.remaining is None:
        return None
    return q.to_dict()


def runtime_for(daemon) -> ConsoleRuntime:
    """The console's view of a daemon: its config and mapping in force, its ledger, its reload switch."""
    store = UserStore(users_path(daemon.config))
    if store.count() == 0:  # also validates the file: a broken one is a config error at start
        log.warning("console: no users in %s yet; add one with: mall-connector console adduser NAME --role admin",
                    store.path)
    return ConsoleRuntime(
        config=lambda: daemon.config,
        ledger=daemon.ledger,
        mapping=daemon.services.mapping,
        request_reload=daemon.request_reload,
        readiness=daemon.readiness,
        mall_quota=lambda: mall_quota(daemon),
    )
