"""The MALL client against hostile HTTP servers on loopback (real sockets, the client's real transport).

Each server misbehaves in one way: it trickles its answer a byte at a time, sends more than
``max_response_bytes``, nests JSON 10 000 deep, claims a billion pages, or sends an id past 64 bits.
Each answer must end as a MallBadResponse naming the endpoint and the limit; counts of bytes and
requests are asserted, never time.
"""

from __future__ import annotations

import json
import socketserver
import threading
import time
import tracemalloc

import pytest

from connector.mall.client import MallClient, RetryPolicy
from connector.mall.errors import MallBadResponse
from connector.mall.transport import DeadlineTransport
from connector.sync.ratelimit import http_transport_for, paced_transport

CLIENT_ID = "hostile-test-client-0001"
OK = {"result": {"code": 200, "status": "OK"}}


class Hostile(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, behave):
        self.behave = behave  # behave(sock, request_head) writes an answer
        self.requests = 0
        self.sent = 0  # body bytes written
        self.stop_sending = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_sending.set()
        self.shutdown()
        self.server_close()


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            data = self.request.recv(65536)
            if not data:
                return
            head += data
        self.server.requests += 1
        try:
            self.server.behave(self.server, self.request, head)
        except OSError:
            pass  # the client hung up: that is what it should do


def headers(length=None, extra=""):
    h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    h += f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return (h + extra + "\r\n").encode()


def send_json(body):
    def behave(server, sock, head):
        raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
        sock.sendall(headers(len(raw)) + raw)
        server.sent += len(raw)
    return behave


def client(url, **kwargs):
    return MallClient(url, CLIENT_ID, retry=RetryPolicy(max_attempts=3, sleep=lambda s: None), **kwargs)


def test_the_default_transport_and_the_daemons_transport_are_deadline_bound():
    assert DeadlineTransport().bounded
    assert http_transport_for("http://127.0.0.1:1").bounded
    assert paced_transport("http://127.0.0.1:1")._inner.bounded


def test_a_body_trickling_a_byte_at_a_time_ends_at_the_deadline():
    def trickle(server, sock, head):
        sock.sendall(headers(10_000) + b'{"result": {"code": 200, "status": "OK"}, "data": "')
        while not server.stop_sending.is_set() and server.sent < 10_000:
            sock.sendall(b"x")
            server.sent += 1
            time.sleep(0.02)

    with Hostile(trickle) as mall, client(mall.url, timeout_s=5, deadline_s=0.5) as c:
        with pytest.raises(MallBadResponse) as info:
            c.get_order(10085339302)
        sent = mall.sent
    err = info.value
    assert err.endpoint == "GET /v1/orders/10085339302" and err.limit == "deadline_s"
    assert "0.5 s" in str(err) and CLIENT_ID not in str(err)
    # Every read came within the 5 s read timeout; only the call deadline stopped it, long before the end.
    assert 0 < sent < 10_000
    assert mall.requests == 1  # the deadline covers retries too: not asked again


def test_headers_trickling_a_byte_at_a_time_end_at_the_deadline():
    def trickle_headers(server, sock, head):
        for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"y" * 10_000:
            if server.stop_sending.is_set():
                return
            sock.sendall(bytes([byte]))
            server.sent += 1
            time.sleep(0.02)

    with Hostile(trickle_headers) as mall, client(mall.url, timeout_s=5, deadline_s=0.5) as c:
        with pytest.raises(MallBadResponse) as info:
            c.list_unconfirmed()
    assert info.value.limit == "deadline_s" and info.value.endpoint == "GET /v1/orders/unconfirmed"
    assert mall.sent < 10_000 and mall.requests == 1


def test_an_endless_chunked_body_is_refused_at_max_response_bytes_in_bounded_memory():
    def endless(server, sock, head):
        sock.sendall(headers() + b"")
        chunk = b"x" * 65536
        frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        while not server.stop_sending.is_set() and server.sent < 500 * 1024 * 1024:
            sock.sendall(frame)
            server.sent += len(chunk)

    with Hostile(endless) as mall, client(mall.url, max_response_bytes=2 * 1024 * 1024) as c:
        tracemalloc.start()
        try:
            with pytest.raises(MallBadResponse) as info:
                c.list_orders()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    err = info.value
    assert err.limit == "max_response_bytes" and err.endpoint == "GET /v1/orders" and "2097152" in str(err)
    assert peak < 12 * 1024 * 1024
    assert mall.requests == 1


def test_a_declared_huge_body_is_refused_before_it_is_read():
    def huge(server, sock, head):
        sock.sendall(headers(300 * 1024 * 1024))
        while not server.stop_sending.is_set() and server.sent < 300 * 1024 * 1024:
            sock.sendall(b"x" * 65536)
            server.sent += 65536

    with Hostile(huge) as mall, client(mall.url) as c:
        with pytest.raises(MallBadResponse) as info:
            c.get_order(1)
    assert info.value.limit == "max_response_bytes"


def test_json_nested_10000_deep_over_http():
    body = b'{"result": {"code": 200, "status": "OK"}, "data": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    with Hostile(send_json(body)) as mall, client(mall.url) as c:
        with pytest.raises(MallBadResponse) as info:
            c.get_order(1)
    assert info.value.limit == "max_depth" and mall.requests == 1


def test_purchase_id_2_pow_63_over_http():
    body = {**OK, "data": {"id": 10085339302, "status": "open", "purchase_id": 2**63}}
    with Hostile(send_json(body)) as mall, client(mall.url) as c:
        with pytest.raises(MallBadResponse) as info:
            c.get_order(10085339302)
    assert info.value.field == "data.purchase_id" and mall.requests == 1


def test_a_billion_pages_over_http_costs_one_request():
    body = {**OK, "paging": {"total": 10**10, "pages": 10**9, "size": 10, "page": 1},
            "data": [{"id": 1, "status": "open"}]}
    with Hostile(send_json(body)) as mall, client(mall.url) as c:
        with pytest.raises(MallBadResponse) as info:
            c.list_unconfirmed()
    assert info.value.field == "paging.pages" and info.value.limit == "max_pages"
    assert mall.requests == 1
