"""Load generator for bench.webhook, run as a process of its own: keep-alive HTTP/1.1 POSTs over raw sockets
(lighter than any client library, so the server is what is measured). Prints one JSON line.

``--mode closed``: ``--conns`` connections each send the next delivery as soon as the last is answered
(sustained throughput). ``--mode rate``: deliveries are due at a fixed ``--rate``; latency counts from the
moment a delivery was due, so a server that falls behind is charged for the queue (no coordinated omission).
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import threading
import time

from bench.common import TOKEN, percentile

IDS_PER_DELIVERY = 3


class Conn:
    def __init__(self, port: int):
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = s, b""
        return s

    def post(self, path: bytes, body: bytes) -> int:
        s = self.sock or self._connect()
        s.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (path, len(body), body))
        buf = self.buf
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        while len(rest) < length:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            rest += chunk
        self.buf = rest[length:]
        if close:
            s.close()
            self.sock = None
        return status


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=("closed", "rate"), required=True)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--id-base", type=int, default=1)
    a = p.parse_args()

    path = f"/webhooks/mall/{TOKEN}".encode()
    seq = itertools.count()
    lock = threading.Lock()
    lat: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    start = time.perf_counter() + 0.2
    measure_from = start + a.warmup
    end = measure_from + a.duration

    def body() -> bytes:
        i = next(seq)
        first = a.id_base + i * IDS_PER_DELIVERY
        return json.dumps(list(range(first, first + IDS_PER_DELIVERY))).encode()

    def record(due: float, done: float, status: int) -> None:
        if done >= measure_from and due < end:
            with lock:
                lat.append(done - due)
                statuses[status] = statuses.get(status, 0) + 1

    def closed_worker() -> None:
        c = Conn(a.port)
        while time.perf_counter() < start:
            time.sleep(0.001)
        while True:
            t = time.perf_counter()
            if t >= end:
                return
            try:
                status = c.post(path, body())
            except OSError as e:
                errors.append(repr(e))
                c.sock = None
                continue
            record(t, time.perf_counter(), status)

    slots = itertools.count()

    def rate_worker() -> None:
        c = Conn(a.port)
        while True:
            with lock:
                i = next(slots)
            due = start + i / a.rate
            if due >= end:
                return
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            try:
                status = c.post(path, body())
            except OSError as e:
                errors.append(repr(e))
                c.sock = None
                continue
            record(due, time.perf_counter(), status)

    worker = closed_worker if a.mode == "closed" else rate_worker
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ms = [x * 1000 for x in lat]
    print(json.dumps({
        "mode": a.mode, "conns": a.conns, "target_rate": a.rate if a.mode == "rate" else None,
        "duration_s": a.duration, "deliveries": len(ms), "rate": len(ms) / a.duration,
        "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90), "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"), "statuses": statuses, "errors": len(errors),
        "first_errors": errors[:3], "ids_sent": next(seq) * IDS_PER_DELIVERY,
    }))


if __name__ == "__main__":
    main()
