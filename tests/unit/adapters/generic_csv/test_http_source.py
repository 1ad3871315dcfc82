"""Fetching a feed over HTTP from a real server on loopback: auth, fingerprints, failures, redaction."""

from __future__ import annotations

import base64
import logging

import pytest

from adapters.base import FeedUnavailable
from adapters.generic_csv import FeedSource, redact_url
from connector.config import ConfigError
from connector.logs import redact


def source(server, **kw) -> FeedSource:
    kw.setdefault("auth_user", server.user)
    kw.setdefault("auth_password", server.password)
    kw.setdefault("timeout_s", 2.0)
    return FeedSource(server.url, **kw)


def log_everything(caplog) -> None:
    """DEBUG on the root and on httpx/httpcore (the CLI's logging set-up quiets those two)."""
    for name in (None, "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)


def assert_no_credentials(text: str, server) -> None:
    assert server.password not in text
    assert base64.b64encode(f"{server.user}:{server.password}".encode()).decode() not in text


def test_basic_auth_in_header_never_in_logs(feed_server, caplog):
    log_everything(caplog)
    with source(feed_server).fetch() as got:
        assert got.stream.read() == feed_server.body
        assert got.fingerprint.startswith("sha256:")
    (headers,) = feed_server.requests
    assert headers["Authorization"].startswith("Basic ")
    assert caplog.records  # httpx did log the request ...
    assert_no_credentials(caplog.text, feed_server)  # ... without the credentials
    assert redact(feed_server.password) == "***"  # registered for redaction everywhere else


def test_sha256_fingerprint_detects_unchanged_body(feed_server):
    src = source(feed_server)
    with src.fetch() as first:
        pass
    again = src.fetch(previous_fingerprint=first.fingerprint)
    assert again.unchanged and again.stream is None
    feed_server.body += b"1002,new\n"
    with src.fetch(previous_fingerprint=first.fingerprint) as changed:
        assert not changed.unchanged and changed.stream.read().endswith(b"1002,new\n")


def test_etag_used_for_conditional_get(feed_server):
    feed_server.etag = '"v1"'
    src = source(feed_server)
    with src.fetch() as first:
        assert first.fingerprint == 'etag:"v1"'
    again = src.fetch(previous_fingerprint=first.fingerprint)
    assert again.unchanged
    assert feed_server.requests[-1]["If-None-Match"] == '"v1"'
    feed_server.etag = '"v2"'
    with src.fetch(previous_fingerprint=first.fingerprint) as changed:
        assert changed.fingerprint == 'etag:"v2"' and changed.stream is not None


def test_wrong_password_is_unavailable_and_redacted(feed_server, caplog):
    log_everything(caplog)
    src = source(feed_server, auth_password="wrong-password-123")
    with pytest.raises(FeedUnavailable) as info:
        src.fetch()
    message = str(info.value)
    assert message.startswith(f"{feed_server.url}: HTTP 401 Unauthorized")
    assert "auth_user / auth_password" in message
    assert "wrong-password-123" not in message + caplog.text


def test_server_error_is_unavailable(feed_server):
    feed_server.status = 500
    with pytest.raises(FeedUnavailable, match=r": HTTP 500 Internal Server Error$"):
        source(feed_server).fetch()


def test_timeout_is_unavailable(feed_server):
    feed_server.delay_s = 1.5
    with pytest.raises(FeedUnavailable, match=r"/export/orders.csv: no answer within 0.3 s"):
        source(feed_server, timeout_s=0.3).fetch()


def test_connection_refused_is_unavailable(feed_server):
    url = "http://127.0.0.1:9/feed.csv?key=abcd1234secret"  # discard port: nothing listens
    with pytest.raises(FeedUnavailable) as info:
        FeedSource(url, timeout_s=1).fetch()
    message = str(info.value)
    assert message.startswith("http://127.0.0.1:9/feed.csv?key=***: cannot download")
    assert "abcd1234secret" not in message


def test_credentials_in_url_are_a_config_error(feed_server):
    url = feed_server.url.replace("http://", "http://shop:Hidden-pw-42@")
    with pytest.raises(ConfigError) as info:
        FeedSource(url, config_key="shop.generic_csv")
    assert info.value.key == "shop.generic_csv.source"
    assert "auth_user" in str(info.value)
    assert "Hidden-pw-42" not in str(info.value)
    assert redact("x Hidden-pw-42 y") == "x *** y"


def test_redact_url_masks_query_values():
    assert redact_url("https://shop.cz:8443/export?token=abc&fmt=csv#x") == "https://shop.cz:8443/export?token=***&fmt=***"
    assert redact_url("https://u:p@shop.cz/a") == "https://shop.cz/a"
