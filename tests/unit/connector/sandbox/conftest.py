"""Helpers for the sandbox tests: an httpx client for the sandbox and a tiny webhook receiver."""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import httpx
import pytest

from tests.conftest import TEST_CLIENT_ID

# One TLS context for every client: building one per httpx.Client costs ~50 ms (the CA bundle), and these are
# plain-HTTP loopback clients anyway.
TLS = ssl.create_default_context()


@pytest.fixture
def mall(sandbox) -> Iterator[httpx.Client]:
    """httpx client on the sandbox's MALL API with the right client_id."""
    with httpx.Client(base_url=sandbox.url, params={"client_id": TEST_CLIENT_ID}, timeout=5,
                      verify=TLS) as client:
        yield client


@pytest.fixture
def operator(sandbox) -> Iterator[httpx.Client]:
    """httpx client on the sandbox's operator endpoints (no client_id)."""
    with httpx.Client(base_url=f"{sandbox.url}/_sandbox", timeout=5, verify=TLS) as client:
        yield client


class Receiver:
    """Records webhook POSTs: (monotonic time, parsed body, content type). Answers ``status``."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, object, str]] = []
        self.status = 200
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.calls.append((time.monotonic(), json.loads(body), self.headers.get("Content-Type")))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhooks/mall/tok3n-abc"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def batches(self) -> list[list[int]]:
        with self._lock:
            return [body for _, body, _ in self.calls]

    def wait_for(self, n: int, timeout: float = 3.0) -> list[list[int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.batches()) >= n:
                return self.batches()
            time.sleep(0.01)
        raise AssertionError(f"expected {n} webhook batches, got {self.batches()}")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
