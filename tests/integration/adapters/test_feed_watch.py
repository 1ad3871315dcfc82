"""The feed watcher (adapters/shared/watch.py) and the daemon's coalesced trigger: unit tests. The end-to-end proof
with the daemon as a subprocess is tests/system/daemon/test_feed_watch_e2e.py."""

from __future__ import annotations

import logging
import os
import threading
import time

from adapters.shared.source import FeedSource
from adapters.shared.watch import FeedWatcher, feed_watch_path


class _Adapter:
    def __init__(self, location: str):
        self.source = FeedSource(location)


def _wait(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_only_a_local_file_feed_is_watched(tmp_path):
    assert feed_watch_path(_Adapter(str(tmp_path / "shop.csv"))) == tmp_path / "shop.csv"
    assert feed_watch_path(_Adapter("https://shop.example/export.csv")) is None
    assert feed_watch_path(object()) is None  # an API shop has no feed


def test_a_rename_over_the_feed_triggers_once_settled_and_other_files_do_not(tmp_path):
    feed = tmp_path / "shop.csv"
    feed.write_text("old\n")
    os.utime(feed, (time.time() - 60, time.time() - 60))
    fired = threading.Event()
    w = FeedWatcher(feed, 0.5, fired.set)
    w.start()
    try:
        _wait(lambda: w.active)
        (tmp_path / "outbox-other.csv").write_text("not the feed\n")
        time.sleep(0.5)
        assert w.triggers == 0
        tmp = tmp_path / ".shop.csv.part"
        tmp.write_text("new\n")
        os.replace(tmp, feed)
        assert fired.wait(30)
        assert time.time() - feed.stat().st_mtime >= 0.5  # it waited for the file to settle
        assert w.triggers == 1
    finally:
        w.stop()


def test_without_inotify_it_logs_once_and_leaves_the_poll(tmp_path, monkeypatch, caplog):
    import watchfiles

    def broken(*a, **kw):
        raise OSError("OS file watch limit reached")

    monkeypatch.setattr(watchfiles, "watch", broken)
    w = FeedWatcher(tmp_path / "shop.csv", 0.0, lambda: None, poll_interval_s=30)
    with caplog.at_level(logging.WARNING, logger="mall_connector.adapters.watch"):
        w.start()
        w.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "is not watched" in lines[0] and "polled every 30 s" in lines[0]
    assert "watch limit" in lines[0] and not w.active


def test_a_missing_folder_falls_back_to_the_poll(tmp_path, caplog):
    w = FeedWatcher(tmp_path / "nowhere" / "shop.csv", 0.0, lambda: None)
    with caplog.at_level(logging.WARNING, logger="mall_connector.adapters.watch"):
        w.start()
        w.stop()
    assert ["does not exist" in r.getMessage() for r in caplog.records] == [True]


class _Scheduler:
    def __init__(self):
        self.jobs = []

    def add_job(self, fn, args=(), id=None, **kw):  # noqa: A002 - APScheduler's name
        self.jobs.append((fn, args, id))


def test_watcher_passes_are_coalesced_one_running_one_waiting(tmp_path, sandbox, monkeypatch):
    from connector.daemon import Daemon
    from tests.support.worlds import CsvShop

    shop = CsvShop(tmp_path, sandbox)
    monkeypatch.chdir(tmp_path)  # the ledger URL is relative to the working folder, as for `run`
    d = Daemon(shop.config())
    try:
        d.scheduler = _Scheduler()
        for _ in range(5):
            d._feed_changed()
        assert len(d.scheduler.jobs) == 2  # one to run now, one to read whatever changed meanwhile
        fn, (name, body), _ = d.scheduler.jobs[0]
        assert name == "poll"
        fn(name, body)  # the first pass runs (through the same job wrapper as the poll)
        d._feed_changed()
        assert len(d.scheduler.jobs) == 3 and len({j[2] for j in d.scheduler.jobs}) == 3
    finally:
        d.services.close()


def test_feed_settle_s_is_a_feed_key_with_a_default():
    from adapters.shared.sections import FeedSection

    assert FeedSection().settle_s == 2.0
    assert FeedSection(settle_s=0.5).settle_s == 0.5
