"""One MallClient per account (issue 18) must not mean one copy of the CA bundle per account: every client of
the process verifies with one shared TLS context (bench/accounts.py: 100 copies were 2.3 s and 84 MiB)."""

from __future__ import annotations

import ssl

from connector.mall.client import MallClient
from connector.mall.transport import DeadlineTransport, shared_ssl_context
from connector.sync.ratelimit import http_transport_for


def _context(client: MallClient) -> ssl.SSLContext:
    return client._http._transport._pool._ssl_context


def test_clients_of_several_accounts_share_one_verifying_context():
    a = MallClient(base_url="https://mall.example", client_id="acct-a-7f3a9c1e5b8d")
    b = MallClient(base_url="https://mall.example", client_id="acct-b-2046e1c9a3f7")
    try:
        assert _context(a) is _context(b) is shared_ssl_context()
        assert _context(a).verify_mode == ssl.CERT_REQUIRED
        assert _context(a).check_hostname
    finally:
        a.close()
        b.close()


def test_the_paced_transport_uses_it_and_an_explicit_verify_is_kept():
    assert http_transport_for("https://mall.example")._pool._ssl_context is shared_ssl_context()
    own = ssl.create_default_context()
    assert DeadlineTransport(verify=own)._pool._ssl_context is own
    assert DeadlineTransport(verify=False)._pool._ssl_context is not shared_ssl_context()
