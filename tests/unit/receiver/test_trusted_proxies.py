"""Issue 16 item 7: the throttle and trusted proxies.

Behind the recommended proxy every request came from 127.0.0.1, so one guesser throttled everyone (or
nobody); and a throttled address still learnt from a 202 that a guess was right."""

from __future__ import annotations

import pytest

from receiver.app import client_address, parse_networks
from tests.unit.receiver.conftest import HOOK, inbox

PROXY = "127.0.0.1"


@pytest.mark.parametrize("peer,xff,trusted,expected", [
    ("203.0.113.9", None, [], "203.0.113.9"),
    ("203.0.113.9", "198.51.100.1", [], "203.0.113.9"),  # no trusted proxy: the header is ignored
    ("203.0.113.9", "198.51.100.1", ["127.0.0.1"], "203.0.113.9"),  # the peer is not a trusted proxy
    ("127.0.0.1", "198.51.100.1", ["127.0.0.1"], "198.51.100.1"),
    ("127.0.0.1", "6.6.6.6, 198.51.100.1", ["127.0.0.1"], "198.51.100.1"),  # the client's own claim is left of it
    ("127.0.0.1", "198.51.100.1, 10.1.2.3", ["127.0.0.1", "10.0.0.0/8"], "198.51.100.1"),  # two proxy hops
    ("127.0.0.1", "not-an-ip", ["127.0.0.1"], "127.0.0.1"),
    ("127.0.0.1", "", ["127.0.0.1"], "127.0.0.1"),
    ("::ffff:127.0.0.1", "2001:db8::5", ["127.0.0.1"], "2001:db8::5"),
])
def test_client_address(peer, xff, trusted, expected):
    assert client_address(peer, xff, parse_networks(trusted)) == expected


def test_bad_trusted_proxy_is_a_config_error(tmp_path):
    from connector.config import ConfigError, load_config

    p = tmp_path / "c.toml"
    p.write_text("[receiver]\ntrusted_proxies = ['127.0.0.1', 'nginx']\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.key == "receiver.trusted_proxies" and "'nginx'" in str(e.value)


def test_throttled_client_behind_the_proxy_gets_429_for_everything_others_do_not(make_app, ledger, clock):
    c = make_app(trusted_proxies=[PROXY], wrong_token_limit_per_minute=3).test_client()
    guesser = {"REMOTE_ADDR": PROXY}
    hdr = {"X-Forwarded-For": "198.51.100.7"}
    codes = [c.post(f"/webhooks/mall/guess{i}", data=b"[1]", headers=hdr, environ_base=guesser).status_code
             for i in range(5)]
    assert codes == [404, 404, 404, 429, 429]
    assert c.post(HOOK, data=b"[1]", headers=hdr, environ_base=guesser).status_code == 429  # right token too
    mall = {"X-Forwarded-For": "198.51.100.99"}
    assert c.post(HOOK, data=b"[2]", headers=mall, environ_base=guesser).status_code == 202
    clock.advance(60)
    assert c.post(HOOK, data=b"[3]", headers=hdr, environ_base=guesser).status_code == 202
    assert inbox(ledger) == [2, 3]


def test_untrusted_peer_cannot_escape_the_throttle_with_a_forged_header(make_app, clock):
    c = make_app(trusted_proxies=[PROXY], wrong_token_limit_per_minute=2).test_client()
    env = {"REMOTE_ADDR": "203.0.113.50"}
    codes = [c.post(f"/webhooks/mall/g{i}", data=b"[1]", environ_base=env,
                    headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(4)]
    assert codes == [404, 404, 429, 429]
