"""Issue 16 item 4: slow clients cannot starve the receiver.

The finding: 110 connections, each sending one header line every few seconds, took waitress down for
everyone (its 100-connection limit was full, and each trickled byte reset ``channel_timeout``). Here
the real app runs under the real server on loopback; the slow clients connect from other loopback
addresses (127.0.1.x, 127.0.2.x), the normal webhook from 127.0.0.1. Time appears only as client
timeouts and as bounds on waiting loops; what is asserted are counts (202s, closed connections).
"""

from __future__ import annotations

import selectors
import socket
import threading
import time

import httpx
import pytest

from tests.unit.receiver.conftest import HOOK, inbox

pytestmark = pytest.mark.e2e

SLOW_REQUEST_START = b"POST /webhooks/mall/guess HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\n"


class SlowClients:
    """``n`` connections that send a request head and then one header line every ``every_s``, never
    finishing the headers; counts how many the server has closed."""

    def __init__(self, port: int, sources: list[str], every_s: float = 0.5):
        self.socks: list[socket.socket] = []
        for src in sources:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((src, 0))
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", int(port)))
                s.sendall(SLOW_REQUEST_START)
            except OSError:
                pass  # closed at once by the server: counted as closed below
            s.setblocking(False)
            self.socks.append(s)
        self.closed: set[int] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._every_s = every_s
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        sel = selectors.DefaultSelector()
        for i, s in enumerate(self.socks):
            sel.register(s, selectors.EVENT_READ, i)
        n = 0
        while not self._stop.is_set() and n < 600:  # bounded: at most 600 rounds
            n += 1
            for key, _ in sel.select(timeout=self._every_s):
                try:
                    data = key.fileobj.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    with self._lock:
                        self.closed.add(key.data)
                    sel.unregister(key.fileobj)
            for i, s in enumerate(self.socks):
                if i in self.closed:
                    continue
                try:
                    s.send(f"X-Slow-{n}: {i}\r\n".encode())
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    with self._lock:
                        self.closed.add(i)
        sel.close()

    def closed_count(self) -> int:
        with self._lock:
            return len(self.closed)

    def wait_closed(self, count: int, limit_s: float = 60) -> int:
        """Wait (bounded) until at least ``count`` connections are closed; returns how many are."""
        end = time.monotonic() + limit_s
        while self.closed_count() < count and time.monotonic() < end:
            time.sleep(0.1)
        return self.closed_count()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for s in self.socks:
            s.close()


@pytest.fixture
def slow_clients():
    made: list[SlowClients] = []

    def make(port: int, sources: list[str]) -> SlowClients:
        sc = SlowClients(port, sources)
        made.append(sc)
        return sc

    yield make
    for sc in made:
        sc.close()


def distinct_sources(n: int) -> list[str]:
    return [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(n)]


def test_200_slow_connections_from_200_addresses_do_not_starve_a_webhook(make_app, serve, ledger, slow_clients):
    srv = serve(make_app(), request_timeout_s=5)
    slow = slow_clients(srv.port, distinct_sources(200))
    time.sleep(1)  # let the server accept them all and the trickle start (not an assertion)
    assert slow.closed_count() == 0  # they are all held open, trickling
    with httpx.Client(base_url=srv.url, timeout=15) as c:  # a fresh connection from 127.0.0.1
        r = c.post(HOOK, content=b"[4242]")
        assert r.status_code == 202
        assert c.get("/healthz").status_code == 200
    assert inbox(ledger) == [4242]
    # The whole-request deadline (5 s from each request's first byte) closes every slow one, although
    # each keeps sending a header line every 0.5 s (waitress's channel_timeout alone never would).
    assert slow.wait_closed(200) == 200
    assert srv.guard.timed_out == 200


def test_200_slow_connections_from_one_address_are_capped(make_app, serve, ledger, slow_clients, metrics):
    srv = serve(make_app(), max_connections_per_address=50, metrics=metrics)
    slow = slow_clients(srv.port, ["127.0.0.2"] * 200)
    assert slow.wait_closed(150) >= 150  # everything over the per-address limit is closed at once
    with httpx.Client(base_url=srv.url, timeout=15) as c:
        assert c.post(HOOK, content=b"[7]").status_code == 202
    assert srv.guard.refused == 150
    assert slow.closed_count() == 150  # the 50 it allowed are still open (their deadline is 10 s)
    assert inbox(ledger) == [7]
    with httpx.Client(base_url=srv.url, timeout=15) as c:  # and the operator sees it
        text = c.get("/metrics").text
    assert 'mall_connector_receiver_connections_closed_total{reason="per_address"} 150.0' in text


def test_a_trusted_proxy_is_exempt_from_the_per_address_limit(make_app, serve, slow_clients):
    srv = serve(make_app(trusted_proxies=["127.0.0.3"]), max_connections_per_address=5,
                trusted_proxies=["127.0.0.3"])
    proxied = slow_clients(srv.port, ["127.0.0.3"] * 20)
    other = slow_clients(srv.port, ["127.0.0.4"] * 20)
    assert other.wait_closed(15) == 15
    assert proxied.closed_count() == 0
    assert srv.guard.refused == 15


def test_the_deadline_counts_the_body_too(make_app, serve, ledger, metrics):
    """Headers complete, body trickled: still cut at the deadline, and nothing reaches the inbox."""
    srv = serve(make_app(), request_timeout_s=2, metrics=metrics)
    s = socket.create_connection(("127.0.0.1", int(srv.port)), timeout=5)
    try:
        s.sendall(f"POST {HOOK} HTTP/1.1\r\nHost: r\r\nContent-Length: 400\r\n\r\n[".encode())
        closed = False
        for _ in range(100):  # at most 100 × 0.2 s of trickling
            try:
                s.sendall(b"1,")
                s.settimeout(0.2)
                if s.recv(100) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = True
                break
        assert closed
    finally:
        s.close()
    assert srv.guard.timed_out == 1
    assert inbox(ledger) == []
    assert metrics.receiver_closed.labels("request_timeout")._value.get() == 1
