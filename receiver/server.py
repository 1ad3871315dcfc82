"""Runs the receiver app under waitress in a background thread of the daemon process.

waitress facts this relies on (3.0.2): ``create_server`` binds at once (port 0 works, see ``.port``);
the default body limit is 1 GiB, so we lower it; ``server.close()`` does not stop the worker threads,
so ``stop()`` also calls ``task_dispatcher.shutdown()``; waitress buffers the whole body before the
app runs, so its limit is what bounds memory, and the app enforces the exact limit.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import waitress
from waitress import wasyncore

from connector.logs import RedactingFilter

log = logging.getLogger(__name__)

WAITRESS_BODY_SLACK = 1024  # waitress refuses at >= its limit; the app must still see max_body_bytes + 1


def _quiet_waitress() -> None:
    """No "Task queue depth" warnings on a burst; any waitress error line is redacted (it may hold a path)."""
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    wl = logging.getLogger("waitress")
    if not any(isinstance(f, RedactingFilter) for f in wl.filters):
        wl.addFilter(RedactingFilter())


class ReceiverServer:
    def __init__(self, app: Any, host: str, port: int, threads: int = 8, max_body_bytes: int = 65536,
                 channel_timeout: int = 30, **adjustments: Any):
        """Bind now (so a busy port fails at start, and port 0 gets a real one); serve after ``start()``.

        ``adjustments`` go to waitress as they are (e.g. ``trusted_proxy`` behind a reverse proxy)."""
        _quiet_waitress()
        self._server = waitress.create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            max_request_body_size=max_body_bytes + WAITRESS_BODY_SLACK,
            channel_timeout=channel_timeout,  # drop idle or trickling connections sooner than 120 s
            clear_untrusted_proxy_headers=True,
            ident="mall-connector",
            **adjustments,
        )
        self.host = host
        self.port: int = self._server.effective_port
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.run, name="receiver", daemon=True)
        self._thread.start()
        log.info("receiver listening on %s", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let running requests finish (up to ``timeout``), then close every connection."""
        if self._stopped:
            return
        self._stopped = True
        running = self._thread is not None and self._thread.is_alive()
        # Sockets belong to the loop thread: close them from there (a trigger thunk), not under its feet.
        self._in_loop(lambda: wasyncore.dispatcher.close(self._server), running, timeout)  # the listening socket
        self._server.task_dispatcher.shutdown(timeout=timeout)
        self._in_loop(lambda: wasyncore.close_all(self._server._map), running, timeout)  # connections, trigger
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("receiver: the server thread did not stop within %.1f s", timeout)
        log.info("receiver stopped")

    def _in_loop(self, fn: Any, running: bool, timeout: float) -> None:
        if not running:
            fn()
            return
        done = threading.Event()

        def thunk() -> None:
            try:
                fn()
            finally:
                done.set()

        self._server.trigger.pull_trigger(thunk)
        if not done.wait(timeout):
            log.warning("receiver: the server loop did not answer within %.1f s", timeout)
