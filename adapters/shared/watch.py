"""Watching a file feed with inotify (watchfiles), so a shop change is picked up in seconds, not at the next poll.

The watcher runs in a thread of its own and only *triggers*: when the feed file changed and has settled (its
mtime is ``settle_s`` old, as ``FeedSource`` requires before reading it), it calls ``on_settled()``; the daemon
then runs a sync pass through its scheduler (one worker, coalesced). The poll stays as the fallback: an HTTP
feed is never watched, and when inotify cannot be used (no watchfiles, the folder missing, the kernel's watch
limit) the watcher logs that once and ends, and the poll interval applies as before.

The folder is watched, not the file: a shop writes a temp file and renames it over the feed, which replaces
the file's inode (a watch on the file itself would be left on the old one).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from adapters.shared.source import CLOCK_SKEW_S, FeedSource

log = logging.getLogger("mall_connector.adapters.watch")

DEBOUNCE_MS = 50  # events within this are one batch (a rename is several inotify events)


def feed_watch_path(adapter: object) -> Path | None:
    """The file an adapter's feed is read from, when it is a local file (an HTTP feed is polled, never watched)."""
    source = getattr(adapter, "source", None)
    if not isinstance(source, FeedSource) or source.url:
        return None
    return Path(source.location).absolute()


class FeedWatcher:
    """Calls ``on_settled()`` after each change of ``path`` once the file is ``settle_s`` old (see module doc)."""

    def __init__(self, path: Path, settle_s: float, on_settled: Callable[[], None], *,
                 poll_interval_s: float | None = None):
        self.path = Path(path)
        self.settle_s = settle_s
        self.on_settled = on_settled
        self.poll_interval_s = poll_interval_s
        self.triggers = 0  # settled changes reported (tests, bench)
        self.active = False  # True while inotify watches the folder
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="feed-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _fallback(self, why: str) -> None:
        every = f"every {self.poll_interval_s:g} s" if self.poll_interval_s else "at the poll interval"
        log.warning("shop feed %s is not watched (%s); it is polled %s instead", self.path, why, every)

    def _run(self) -> None:
        try:
            from watchfiles import watch
        except ImportError as e:
            return self._fallback(f"watchfiles cannot be imported: {e}")
        folder = self.path.parent
        if not folder.is_dir():
            return self._fallback(f"its folder {folder} does not exist")
        target = str(self.path)
        try:
            batches = watch(folder, watch_filter=lambda _change, p: p == target, stop_event=self._stop,
                            debounce=DEBOUNCE_MS, step=DEBOUNCE_MS, recursive=False, yield_on_timeout=False,
                            raise_interrupt=False, force_polling=False)
            self.active = True
            log.info("watching shop feed %s (inotify); a change is picked up once %g s old", self.path, self.settle_s)
            for _changes in batches:
                if self._stop.is_set():
                    break
                if self._wait_settled():
                    self.triggers += 1
                    try:
                        self.on_settled()
                    except Exception:  # noqa: BLE001 - a failed trigger must not end the watch; the poll remains
                        log.exception("shop feed %s: could not start a sync pass after a change", self.path)
        except Exception as e:  # noqa: BLE001 - inotify limits, permissions: fall back to the poll, once
            self._fallback(f"inotify failed: {e.__class__.__name__}: {e}")
        finally:
            self.active = False

    def _wait_settled(self) -> bool:
        """Sleep until the feed's mtime is ``settle_s`` old (a writer that keeps writing moves it on). False when
        the file is gone (deleted, or between a shop's unlink and rename: the next event brings it back)."""
        while not self._stop.is_set():
            try:
                mtime = os.stat(self.path).st_mtime
            except FileNotFoundError:
                return False
            except OSError:
                return True  # let the poll report what is wrong with it
            age = time.time() - mtime
            if age >= self.settle_s or age <= -CLOCK_SKEW_S:
                return True
            self._stop.wait(min(self.settle_s - age, self.settle_s) + 0.01)
        return False
