"""Fetching a shop feed from a file path or an http(s) URL.

Shared by the table-feed adapters. ``FeedSource.fetch`` answers one of: not ready yet (a file still
being written), unchanged since the last read (same fingerprint: not parsed again), or an open
binary stream of the content. Credentials only ever travel in the Authorization header: a URL
with ``user:password@`` is refused at start, and the passwords are registered for redaction.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import httpx

from adapters.base import FeedUnavailable
from connector.config import ConfigError
from connector.logs import redact, register_secret

log = logging.getLogger("mall_connector.adapters.source")

MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024  # far above any order feed; stops a runaway response
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
    ):
        register_secret(auth_password)
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
            return Fetched(self.label, fingerprint, stream=f)

    # -- URLs ----------------------------------------------------------------------------------

    def _fetch_url(self, previous: str | None) -> Fetched:
        headers = {}
        if previous and previous.startswith("etag:"):
            headers["If-None-Match"] = previous[5:]
        elif previous and previous.startswith("lm:"):
            headers["If-Modified-Since"] = previous[3:]
        body = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
        digest = hashlib.sha256()
        try:
            with httpx.Client(timeout=self.timeout_s, auth=self._auth, transport=self._transport,
                              follow_redirects=True) as client:
                with client.stream("GET", self.location, headers=headers) as response:
                    if response.status_code == 304:
                        body.close()
                        return Fetched(self.label, previous, unchanged=True)
                    if response.status_code >= 400:
                        raise FeedUnavailable(f"{self.label}: HTTP {response.status_code} "
                                              f"{response.reason_phrase}{_hint(response.status_code)}")
                    size = 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > MAX_DOWNLOAD_BYTES:
                            raise FeedUnavailable(f"{self.label}: larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB")
                        digest.update(chunk)
                        body.write(chunk)
                    etag = response.headers.get("etag")
                    modified = response.headers.get("last-modified")
        except httpx.TimeoutException:
            body.close()
            raise FeedUnavailable(f"{self.label}: no answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as e:
            body.close()
            reason = redact(str(e).replace(self.location, self.label)) or e.__class__.__name__
            raise FeedUnavailable(f"{self.label}: cannot download: {reason}") from None
        except BaseException:
            body.close()
            raise
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
