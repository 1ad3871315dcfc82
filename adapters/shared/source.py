"""Fetching a shop feed from a file path or an http(s) URL, within its limits.

Shared by the feed adapters. ``FeedSource.fetch`` answers one of: not ready yet (a file still
being written), unchanged since the last read (same fingerprint: not parsed again), or an open
binary stream of the content. Credentials only ever travel in the Authorization header: a URL
with ``user:password@`` is refused at start, and the passwords are registered for redaction.

Bounds (``FeedLimits``): a file over ``max_feed_bytes`` is refused before it is read, and so is a
download once it passes that size; a download must finish within ``fetch_deadline_s`` in all,
headers included. ``timeout_s`` only bounds each read, so a server trickling a byte a second would
otherwise hold the poll for ever: a watchdog shuts the connection's socket at the deadline.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import httpx

from adapters.base import FeedRefused, FeedUnavailable
from adapters.shared.limits import limited_stream
from adapters.shared.sections import FeedLimits
from connector.config import ConfigError
from connector.logs import redact, register_secret

log = logging.getLogger("mall_connector.adapters.source")

MAX_DOWNLOAD_BYTES = FeedLimits().max_feed_bytes  # the default of [shop.<adapter>] max_feed_bytes
SETTLE_WAIT_MAX_S = 60.0  # wait_for_settle gives up after this and answers not_ready
CLOCK_SKEW_S = 60.0  # an mtime further in the future than this is a clock problem, not a writer


@dataclass
class Fetched:
    """The outcome of one fetch. Use as a context manager so the stream is closed."""

    label: str  # file path or redacted URL, for messages
    fingerprint: str | None = None
    not_ready: bool = False
    unchanged: bool = False
    stream: IO[bytes] | None = field(default=None, repr=False)  # positioned at 0; None unless there is content

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()

    def __enter__(self) -> "Fetched":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def redact_url(url: str) -> str:
    """The URL fit for logs and messages: no user info, query values masked, registered secrets masked.

    Export URLs handed out by shop platforms often carry their key in the query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    query = "&".join(f"{p.split('=', 1)[0]}=***" if "=" in p else p for p in parts.query.split("&") if p)
    return redact(urlunsplit((parts.scheme, host, parts.path, query, "")))


def is_url(location: str) -> bool:
    return location.lower().startswith(("http://", "https://"))


class FeedSource:
    """A feed location (path or http(s) URL) with its auth, settle time and timeout.

    ``config_key`` (e.g. ``shop.generic_csv``) names the config section in errors. Raises ConfigError
    for a URL with credentials in it.
    """

    def __init__(
        self,
        location: str,
        *,
        auth_user: str | None = None,
        auth_password: str | None = None,
        settle_s: float = 2.0,
        timeout_s: float = 30.0,
        config_key: str = "shop.source",
        transport: httpx.BaseTransport | None = None,
        limits: FeedLimits | None = None,
    ):
        register_secret(auth_password)
        self.limits = limits or FeedLimits()
        self.location = location
        self.settle_s = settle_s
        self.timeout_s = timeout_s
        self._transport = transport
        self.url = is_url(location)
        if self.url:
            parts = urlsplit(location)
            if parts.username is not None or parts.password is not None:
                register_secret(parts.password)
                raise ConfigError(
                    None, f"{config_key}.source",
                    "the URL must not contain a user name or password (user:password@host); "
                    f"put them in {config_key}.auth_user and {config_key}.auth_password",
                )
            self.label = redact_url(location)
            if auth_user and parts.scheme == "http":
                log.warning("feed %s: basic auth over plain http sends the password readable on the network; "
                            "use https", self.label)
        else:
            self.label = location
        self._auth = (auth_user, auth_password or "") if auth_user else None

    def fetch(self, *, previous_fingerprint: str | None = None, wait_for_settle: bool = False) -> Fetched:
        """Read the feed unless it is unsettled or unchanged. Raises FeedUnavailable naming the source."""
        if self.url:
            return self._fetch_url(previous_fingerprint)
        return self._fetch_file(previous_fingerprint, wait_for_settle)

    # -- files ---------------------------------------------------------------------------------

    def _fetch_file(self, previous: str | None, wait_for_settle: bool) -> Fetched:
        deadline = time.monotonic() + max(SETTLE_WAIT_MAX_S, 3 * self.settle_s)
        while True:
            try:
                f = open(self.location, "rb")
            except FileNotFoundError:
                raise FeedUnavailable(f"{self.label}: file not found") from None
            except OSError as e:
                raise FeedUnavailable(f"{self.label}: cannot open: {e.strerror}") from None
            st = os.fstat(f.fileno())
            fingerprint = f"file:{st.st_mtime_ns}:{st.st_size}"
            age = time.time() - st.st_mtime_ns / 1e9
            if -CLOCK_SKEW_S < age < self.settle_s:  # the shop may still be writing it
                f.close()
                wait = self.settle_s - age
                if not wait_for_settle or time.monotonic() + wait > deadline:
                    return Fetched(self.label, previous, not_ready=True)
                time.sleep(max(wait, 0.01))
                continue
            if previous is not None and fingerprint == previous:
                f.close()
                return Fetched(self.label, fingerprint, unchanged=True)
            limit = self.limits.max_feed_bytes
            if st.st_size > limit:
                f.close()
                raise FeedRefused(self.label, "max_feed_bytes", limit,
                                  f"the file has {st.st_size} bytes, more than {limit}")
            # Still counted while read: the file may grow after the fstat.
            return Fetched(self.label, fingerprint, stream=limited_stream(f, self.label, max_bytes=limit))

    # -- URLs ----------------------------------------------------------------------------------

    def _fetch_url(self, previous: str | None) -> Fetched:
        headers = {}
        if previous and previous.startswith("etag:"):
            headers["If-None-Match"] = previous[5:]
        elif previous and previous.startswith("lm:"):
            headers["If-Modified-Since"] = previous[3:]
        body = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
        digest = hashlib.sha256()
        limit = self.limits.max_feed_bytes
        watchdog = _Deadline(self.limits.fetch_deadline_s)
        try:
            with httpx.Client(timeout=self.timeout_s, auth=self._auth, transport=self._transport,
                              follow_redirects=True) as client:
                with client.stream("GET", self.location, headers=headers,
                                   extensions={"trace": watchdog.trace}) as response:
                    if response.status_code == 304:
                        body.close()
                        return Fetched(self.label, previous, unchanged=True)
                    if response.status_code >= 400:
                        raise FeedUnavailable(f"{self.label}: HTTP {response.status_code} "
                                              f"{response.reason_phrase}{_hint(response.status_code)}")
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > limit:
                        raise FeedRefused(self.label, "max_feed_bytes", limit,
                                          f"the server announces {declared} bytes, more than {limit}")
                    size = 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise FeedRefused(self.label, "max_feed_bytes", limit, f"more than {limit} bytes")
                        if watchdog.expired:
                            raise watchdog.refusal(self.label)
                        digest.update(chunk)
                        body.write(chunk)
                    etag = response.headers.get("etag")
                    modified = response.headers.get("last-modified")
        except (httpx.HTTPError, OSError) as e:
            body.close()
            if watchdog.expired:
                raise watchdog.refusal(self.label) from None
            if isinstance(e, httpx.TimeoutException):
                raise FeedUnavailable(f"{self.label}: no answer within {self.timeout_s:g} s") from None
            reason = redact(str(e).replace(self.location, self.label)) or e.__class__.__name__
            raise FeedUnavailable(f"{self.label}: cannot download: {reason}") from None
        except BaseException:
            body.close()
            raise
        finally:
            watchdog.cancel()
        if watchdog.expired:  # the last bytes came in just as the deadline passed
            body.close()
            raise watchdog.refusal(self.label)
        if etag:
            fingerprint = f"etag:{etag}"
        elif modified:
            fingerprint = f"lm:{modified}"
        else:
            fingerprint = f"sha256:{digest.hexdigest()}"
        if previous is not None and fingerprint == previous:
            body.close()
            return Fetched(self.label, fingerprint, unchanged=True)
        body.seek(0)
        return Fetched(self.label, fingerprint, stream=body)


def _hint(status: int) -> str:
    if status in (401, 403):
        return " (check auth_user / auth_password)"
    if status == 404:
        return " (check the source URL)"
    return ""


class _Deadline:
    """A total deadline for one download. httpx's timeouts count per read, so a trickling server
    never trips them; at the deadline this shuts the connection's socket, which ends the blocked
    read at once (the download then fails and ``expired`` says why). The socket comes from httpx's
    ``trace`` request extension, as each connection is made (redirects make new ones)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict) -> None:
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()

    def refusal(self, label: str) -> FeedRefused:
        return FeedRefused(label, "fetch_deadline_s", self.seconds,
                           f"the download did not finish within {self.seconds:g} s")


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass
