"""A tiny systemd notify client (sd_notify(3) protocol), in-house because ``sdnotify`` is unmaintained.

With ``Type=notify`` systemd waits for ``READY=1`` before it calls the service started, and with
``WatchdogSec=`` it restarts the service when ``WATCHDOG=1`` pings stop. The daemon must ping from
a heartbeat that proves the scheduler runs (not from a free-running thread), so a stuck
scheduler gets restarted.

Every function is a no-op returning False outside systemd (``$NOTIFY_SOCKET`` unset) and never
raises: a lost notification must not take the daemon down (errors are logged at debug).
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("mall_connector.notify")


def _address() -> str | None:
    """``$NOTIFY_SOCKET`` as a socket address: a path, or "@name" for an abstract socket."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return None
    if addr.startswith("@"):
        return "\0" + addr[1:]
    if addr.startswith("/"):
        return addr
    log.debug("NOTIFY_SOCKET %r is not a path or abstract socket; ignored", addr)  # e.g. vsock:
    return None


def notify(state: str) -> bool:
    """Send one datagram of newline-separated ``KEY=VALUE`` lines. True if it was sent."""
    addr = _address()
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(state.encode("utf-8"))
        return True
    except OSError as e:
        log.debug("systemd notify %r failed: %s", state.split("\n", 1)[0], e)
        return False


def ready() -> bool:
    """Start-up (or a reload) finished: systemd now reports the service as active."""
    return notify("READY=1")


def stopping() -> bool:
    """We have begun a clean shutdown (finishing in-flight work)."""
    return notify("STOPPING=1")


def reloading() -> bool:
    """A reload (SIGHUP) began; call ``ready()`` when done. MONOTONIC_USEC is required by
    ``Type=notify-reload`` (systemd 253+) and ignored by older systemd."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def status(text: str) -> bool:
    """One line shown by ``systemctl status`` (e.g. "synced 12 orders, 0 failed")."""
    return notify("STATUS=" + " ".join(text.split()))


def _watchdog_is_ours() -> bool:
    pid = os.environ.get("WATCHDOG_PID")
    if not pid:
        return True
    try:
        return int(pid) == os.getpid()
    except ValueError:
        return False


def watchdog_interval_s() -> float | None:
    """The watchdog timeout in seconds (``$WATCHDOG_USEC``), or None when the watchdog is off or
    meant for another process (``$WATCHDOG_PID``). Ping at about half of it."""
    raw = os.environ.get("WATCHDOG_USEC")
    if not raw or not _watchdog_is_ours():
        return None
    try:
        usec = int(raw)
    except ValueError:
        log.debug("WATCHDOG_USEC %r is not a number; watchdog off", raw)
        return None
    return usec / 1_000_000 if usec > 0 else None


def watchdog() -> bool:
    """Tell systemd we are alive. Skipped when ``$WATCHDOG_PID`` names another process."""
    if not _watchdog_is_ours():
        return False
    return notify("WATCHDOG=1")
