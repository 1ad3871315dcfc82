"""What the sandbox's MALL API was asked and how it answered, so tests can assert on the traffic.

Only MALL API requests (``/v1/...``) are recorded, not the operator endpoints (reading the log must not
change it). The client_id never enters the log: paths carry no query and the query dict drops it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar


E = TypeVar("E")


@dataclass(frozen=True)
class LoggedRequest:
    seq: int
    ts: float  # time.time() when the answer (or the drop) happened
    method: str
    path: str  # without the query string
    query: dict[str, str]  # without client_id
    body: Any  # parsed JSON, or None (no body or not JSON)
    status_code: int | None  # None when the connection was dropped
    applied: bool  # the request changed an order (a PUT that took effect)
    fault: str | None  # None | "5xx" | "5xx_after_apply" | "429" | "drop"
    order_id: int | None  # from /v1/orders/{id}[/...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SeqLog(Generic[E]):
    """Thread-safe, bounded (``maxlen``) list of entries, oldest first, each stamped with a sequence
    number and a time. ``entry_type`` is the frozen dataclass built by ``record``."""

    def __init__(self, entry_type: Callable[..., E], maxlen: int):
        self._entry_type = entry_type
        self._lock = threading.Lock()
        self._entries: deque[E] = deque(maxlen=maxlen)
        self._seq = 0

    def record(self, **fields: Any) -> E:
        with self._lock:
            self._seq += 1
            entry = self._entry_type(seq=self._seq, ts=time.time(), **fields)
            self._entries.append(entry)
            return entry

    def entries(self) -> list[E]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget the entries (sequence numbers keep counting)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[E]:
        return iter(self.entries())


class RequestLog(SeqLog[LoggedRequest]):
    """What the MALL API was asked, oldest first."""

    def __init__(self, maxlen: int = 100_000):
        super().__init__(LoggedRequest, maxlen)

    def find(self, method: str | None = None, path: str | None = None, *, order_id: int | None = None,
             status_code: int | None = None, fault: str | None = None) -> list[LoggedRequest]:
        """Entries matching every criterion given (path exact, method case-insensitive)."""
        return [
            e for e in self.entries()
            if (method is None or e.method == method.upper()) and (path is None or e.path == path)
            and (order_id is None or e.order_id == order_id) and (status_code is None or e.status_code == status_code)
            and (fault is None or e.fault == fault)
        ]

    def puts(self, order_id: int | None = None) -> list[LoggedRequest]:
        """Every PUT (status update and tracking), optionally for one order."""
        return self.find("PUT", order_id=order_id)

    def applied_puts(self, order_id: int | None = None) -> list[LoggedRequest]:
        """PUTs that changed the order, e.g. to assert "applied exactly once" after a retry."""
        return [e for e in self.puts(order_id) if e.applied]

    def gets(self, path: str | None = None) -> list[LoggedRequest]:
        return self.find("GET", path)

    def faults(self, kind: str | None = None) -> list[LoggedRequest]:
        """Entries where a fault was injected (of ``kind`` if given)."""
        return [e for e in self.entries() if e.fault is not None and (kind is None or e.fault == kind)]

    def last(self) -> LoggedRequest | None:
        with self._lock:
            return self._entries[-1] if self._entries else None
