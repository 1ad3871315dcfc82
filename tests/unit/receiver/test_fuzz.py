"""HTTP fuzz of the running receiver: whatever arrives, the answer is 2xx/4xx and nothing rejected is stored."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.ledger.repo import open_ledger
from connector.metrics import Metrics
from receiver.app import create_app
from receiver.server import ReceiverServer

from .conftest import HOOK, TOKEN, TOKEN2

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
              "upgrade", "expect", "proxy-connection"}  # framing is httpx's job, not the fuzzer's


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    ledger = open_ledger("sqlite:///" + str(tmp_path_factory.mktemp("fuzz") / "ledger.db"))
    app = create_app(ledger=ledger, tokens=[TOKEN, TOKEN2], metrics=Metrics(), max_body_bytes=65536)
    srv = ReceiverServer(app, "127.0.0.1", 0, threads=4)
    srv.start()
    with httpx.Client(base_url=srv.url, timeout=10) as client:
        yield client, ledger
    srv.stop()
    ledger.close()


def _quoted(text: str) -> str:
    return quote(text, safe="/")


valid_paths = st.sampled_from([HOOK, "/webhooks/mall/" + TOKEN2])
paths = st.one_of(
    valid_paths,
    st.text(min_size=1, max_size=40).map(lambda t: "/webhooks/mall/" + _quoted(t)),
    st.sampled_from(["/webhooks/mall/", "/webhooks/mall", HOOK + "/", HOOK + "/x", "/healthz", "/readyz",
                     "/metrics", "/", "/static/x", "/webhooks//mall/" + TOKEN, "/webhooks/mall/" + TOKEN[:-1]]),
    st.text(max_size=60).map(lambda t: "/" + _quoted(t)),
)
methods = st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PROPFIND", "X-FOO"])
content_types = st.one_of(
    st.none(),
    st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                     "multipart/form-data; boundary=x", "application/json; charset=utf-16", "", "*/*"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip),  # h11 refuses edge spaces
)
header_names = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=20).filter(
    lambda n: n.lower() not in HOP_BY_HOP and n.lower() != "content-type")
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80).map(str.strip)
ids = st.integers(min_value=-(2**70), max_value=2**70)
json_values = st.recursive(
    st.none() | st.booleans() | ids | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=20,
)
valid_bodies = st.lists(st.integers(1, 2**63 - 1), min_size=1, max_size=20).map(lambda xs: json.dumps(xs).encode())
BIG = [b"[" + b"1," * 40_000 + b"1]", b"[" + b" " * 65_535 + b"1]", b"\xff" * 300_000, b"[" + b"7," * 1_000_000 + b"7]"]
bodies = st.one_of(
    st.binary(max_size=300),
    st.lists(ids, max_size=20).map(lambda xs: json.dumps(xs).encode()),
    valid_bodies,
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=50).map(lambda b: b"[1, " + b + b"]"),  # mostly invalid UTF-8 inside a near-valid body
    st.sampled_from(BIG),
)


def test_fuzz_never_5xx_and_rejects_store_nothing(target):
    client, ledger = target

    @settings(max_examples=200, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(line=st.one_of(st.tuples(st.just("POST"), valid_paths), st.tuples(methods, paths)),
           content_type=content_types,
           headers=st.dictionaries(header_names, header_values, max_size=4), body=bodies)
    def one_request(line, content_type, headers, body):
        method, path = line
        headers = dict(headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        before = ledger.inbox.depth()
        r = client.request(method, path, headers=headers, content=body)
        assert 200 <= r.status_code < 500, (r.status_code, r.text[:200])
        if r.status_code == 202:
            assert method == "POST" and path in (HOOK, "/webhooks/mall/" + TOKEN2)
            assert ledger.inbox.depth() == before + r.json()["queued"]
        else:
            assert ledger.inbox.depth() == before

    one_request()
    assert client.get("/healthz").json()["status"] == "ok"  # the server survived all of it
