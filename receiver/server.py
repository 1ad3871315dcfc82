"""Runs the receiver app under waitress in a background thread of the daemon process.

waitress facts this relies on (3.0.2): ``create_server`` binds at once (port 0 works, see ``.port``);
the default body limit is 1 GiB, so we lower it; ``server.close()`` does not stop the worker threads,
so ``stop()`` also calls ``task_dispatcher.shutdown()``; waitress buffers the whole body before the
app runs, so its limit is what bounds memory, and the app enforces the exact limit.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel

from connector.logs import RedactingFilter

log = logging.getLogger(__name__)

WAITRESS_BODY_SLACK = 1024  # waitress refuses at >= its limit; the app must still see max_body_bytes + 1


def _quiet_waitress() -> None:
    """No "Task queue depth" warnings on a burst; any waitress error line is redacted (it may hold a path)."""
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    wl = logging.getLogger("waitress")
    if not any(isinstance(f, RedactingFilter) for f in wl.filters):
        wl.addFilter(RedactingFilter())


class _DeadlineChannel(HTTPChannel):
    """A waitress connection that remembers when the request it is reading began (its first byte).

    waitress's own ``channel_timeout`` counts from the last byte, so a client sending one header line
    every few seconds keeps its connection forever; ``_Guard`` closes a connection whose request is
    not complete ``request_timeout_s`` after its first byte. Once complete, the request is the app's."""

    request_started: float | None = None
    _tracked: Any = None

    def received(self, data: bytes) -> bool:
        if data and self.request is None and self.request_started is None:
            self.request_started = time.monotonic()
        result = super().received(data)
        if self.request is None:  # every request read so far is complete
            self.request_started = None
        elif self.request is not self._tracked:  # a new request began inside this chunk
            self._tracked = self.request
            self.request_started = self.request_started or time.monotonic()
        return result


class _Guard:
    """The limits waitress lacks: connections per client address, and a whole-request deadline.

    waitress (3.0) has one ``connection_limit`` for all clients and no deadline per request, so 110
    slow clients could hold every slot. This installs itself on the server object: its accept drops
    a connection over ``per_address`` (trusted proxies are exempt: they carry many clients, and the
    proxy limits them itself), and its maintenance (run by waitress's loop every ``cleanup_interval``)
    closes connections still reading a request after ``request_timeout_s``. Both run on the loop thread."""

    def __init__(self, server: Any, *, per_address: int, request_timeout_s: float, exempt: Any = None,
                 metrics: Any = None):
        self.server = server
        self.metrics = metrics
        self.per_address = per_address
        self.request_timeout_s = request_timeout_s
        self.exempt = exempt or (lambda addr: False)
        self.refused = 0  # connections dropped over the per-address limit
        self.timed_out = 0  # connections closed at the request deadline
        self._warned: dict[str, float] = {}
        self._plain_maintenance = server.maintenance
        server.channel_class = _DeadlineChannel
        server.handle_accept = self.handle_accept
        server.maintenance = self.maintenance

    def _open_from(self, host: str) -> int:
        return sum(1 for ch in list(self.server._map.values())
                   if isinstance(ch, HTTPChannel) and not ch.will_close and getattr(ch, "addr", None)
                   and ch.addr[0] == host)

    def handle_accept(self) -> None:
        srv = self.server
        try:
            v = srv.accept()
            if v is None:
                return
            conn, addr = v
            srv.set_socket_options(conn)
        except OSError:
            return
        addr = srv.fix_addr(addr)
        host = addr[0] if isinstance(addr, tuple) else str(addr)
        if not self.exempt(host) and self._open_from(host) >= self.per_address:
            self.refused += 1
            if self.metrics is not None:
                self.metrics.receiver_connection_closed("per_address")
            now = time.monotonic()
            if now - self._warned.get(host, -1e9) >= 60:
                if len(self._warned) > 1000:
                    self._warned.clear()
                self._warned[host] = now
                log.warning("receiver: %s already has %d open connections (max_connections_per_address); "
                            "closing new ones", host, self.per_address)
            try:
                conn.close()
            except OSError:
                pass
            return
        srv.channel_class(srv, conn, addr, srv.adj, map=srv._map)

    def maintenance(self, now: float) -> None:
        self._plain_maintenance(now)
        cutoff = time.monotonic() - self.request_timeout_s
        for ch in list(self.server.active_channels.values()):
            started = getattr(ch, "request_started", None)
            # Not while the app is answering an earlier request on it (its reply must not be cut).
            if started is not None and started < cutoff and not ch.will_close and not ch.requests:
                self.timed_out += 1
                if self.metrics is not None:
                    self.metrics.receiver_connection_closed("request_timeout")
                ch.request_started = None
                ch.will_close = True  # waitress closes it on the loop's next pass
                log.info("receiver: closed a connection from %s: its request was not complete after %g s "
                         "(request_timeout_s)", ch.addr[0] if ch.addr else "?", self.request_timeout_s)


class ReceiverServer:
    def __init__(self, app: Any, host: str, port: int, threads: int = 8, max_body_bytes: int = 65536,
                 channel_timeout: int = 30, *, connection_limit: int = 500, max_connections_per_address: int = 50,
                 request_timeout_s: float = 10.0, trusted_proxies: Any = (), metrics: Any = None,
                 **adjustments: Any):
        """Bind now (so a busy port fails at start, and port 0 gets a real one); serve after ``start()``.

        ``connection_limit`` bounds all connections, ``max_connections_per_address`` those of one
        client address, ``request_timeout_s`` the time from a request's first byte to its last
        (``_Guard``). ``trusted_proxies`` are exempt from the per-address limit, and their
        ``X-Forwarded-For`` reaches the app (which believes it only from them).
        ``metrics`` (a ``Metrics``) counts the connections the limits close.
        ``adjustments`` go to waitress as they are."""
        from connector.safety import address_in, parse_networks

        _quiet_waitress()
        trusted = parse_networks(trusted_proxies)
        self._server = waitress.create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            max_request_body_size=max_body_bytes + WAITRESS_BODY_SLACK,
            channel_timeout=channel_timeout,  # drop idle or trickling connections sooner than 120 s
            # With trusted proxies the app reads X-Forwarded-For itself (only from them); otherwise
            # waitress strips every proxy header before the app sees it.
            clear_untrusted_proxy_headers=not trusted,
            ident="mall-connector",
            connection_limit=connection_limit,
            asyncore_use_poll=True,  # select() cannot watch more than 1024 sockets
            cleanup_interval=1,  # how often the deadline below is checked
            **adjustments,
        )
        self.guard = _Guard(self._server, per_address=max_connections_per_address,
                            request_timeout_s=request_timeout_s, exempt=lambda a: address_in(a, trusted),
                            metrics=metrics)
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
