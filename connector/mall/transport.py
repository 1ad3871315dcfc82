"""The HTTP transport of the MALL client: httpx's own, with every socket operation held to a call's deadline.

httpx's timeouts are per operation: a read may wait ``timeout_s`` for the next bytes, so an answer that
trickles one byte a second never times out. The client sets a deadline for the whole call (``deadline_s``,
retries included) in a thread-local before each attempt; this transport's network streams clip every
connect, read and write to the time left, so a trickling answer ends with a timeout at the deadline, whether
it trickles its headers or its body. Outside a MALL call (no deadline set) nothing is clipped.
"""

from __future__ import annotations

import threading
import time
import typing
from contextlib import contextmanager

import httpcore
import httpx

__all__ = ["DeadlineTransport", "deadline", "time_left"]

_local = threading.local()


@contextmanager
def deadline(at: float | None) -> typing.Iterator[None]:
    """Hold socket operations of this thread to ``at`` (a ``time.monotonic()`` value) inside the block."""
    previous = getattr(_local, "at", None)
    _local.at = at
    try:
        yield
    finally:
        _local.at = previous


def time_left() -> float | None:
    """Seconds until this thread's deadline (<= 0 when passed), or None when no deadline is set."""
    at = getattr(_local, "at", None)
    return None if at is None else at - time.monotonic()


def _clip(timeout: float | None, exc: type[Exception]) -> float | None:
    left = time_left()
    if left is None:
        return timeout
    if left <= 0:
        raise exc("the call's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clip(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clip(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     _clip(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        stream = self._inner.connect_tcp(host, port, _clip(timeout, httpcore.ConnectTimeout), local_address,
                                         socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        stream = self._inner.connect_unix_socket(path, _clip(timeout, httpcore.ConnectTimeout), socket_options)
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


_SSL_LOCK = threading.Lock()
_SSL_CONTEXT = None


def shared_ssl_context():
    """The verifying TLS context (httpx's defaults: CA bundle, SSL_CERT_FILE/DIR) that every transport of this
    process shares. Building one loads the whole CA bundle, ~23 ms and ~0.8 MiB each: with one MallClient per
    account, 100 accounts cost 2.3 s of start-up and 84 MiB of RSS for identical copies (bench/accounts.py)."""
    global _SSL_CONTEXT
    with _SSL_LOCK:
        if _SSL_CONTEXT is None:
            _SSL_CONTEXT = httpx.create_ssl_context()
        return _SSL_CONTEXT


class DeadlineTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` (same arguments) whose connections honour the calling thread's deadline. Without
    ``verify``/``cert`` it verifies with the process's shared TLS context (``shared_ssl_context``)."""

    def __init__(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        if not args and "verify" not in kwargs and "cert" not in kwargs and kwargs.get("trust_env", True):
            kwargs["verify"] = shared_ssl_context()
        super().__init__(*args, **kwargs)
        pool = self._pool
        # httpcore's pools (ConnectionPool, HTTPProxy, SOCKSProxy) keep their backend here; the test suite checks
        # it is wrapped, so an httpx/httpcore change that moves it fails a test instead of silently un-bounding.
        pool._network_backend = _DeadlineBackend(getattr(pool, "_network_backend", None) or httpcore.SyncBackend())

    @property
    def bounded(self) -> bool:
        return isinstance(getattr(self._pool, "_network_backend", None), _DeadlineBackend)
