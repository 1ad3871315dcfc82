"""Fetching a feed file: settle time, fingerprints, missing files."""

from __future__ import annotations

import os
import threading
import time

import pytest

from adapters.base import FeedUnavailable
from adapters.generic_csv import FeedSource


def old_file(path, text="mall_order_id,status\n1,shipped\n", age_s=60):
    path.write_text(text, encoding="utf-8")
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_settled_file_is_read_with_fingerprint(tmp_path):
    f = old_file(tmp_path / "feed.csv")
    with FeedSource(str(f), settle_s=2).fetch() as got:
        assert got.stream.read() == b"mall_order_id,status\n1,shipped\n"
        st = f.stat()
        assert got.fingerprint == f"file:{st.st_mtime_ns}:{st.st_size}"
        assert not got.not_ready and not got.unchanged


def test_fresh_file_is_not_ready(tmp_path):
    f = tmp_path / "feed.csv"
    f.write_text("mall_order_id,status\n", encoding="utf-8")
    got = FeedSource(str(f), settle_s=5).fetch(previous_fingerprint="file:1:2")
    assert got.not_ready and got.stream is None
    assert got.fingerprint == "file:1:2"  # nothing read: the caller keeps what it had


def test_settle_zero_reads_at_once(tmp_path):
    f = tmp_path / "feed.csv"
    f.write_text("x", encoding="utf-8")
    with FeedSource(str(f), settle_s=0).fetch() as got:
        assert got.stream is not None


def test_wait_for_settle_waits_until_the_writer_stops(tmp_path):
    f = tmp_path / "feed.csv"
    f.write_text("mall_order_id,status\n", encoding="utf-8")

    def writer():  # keeps appending for a while, like a slow export
        for i in range(3):
            time.sleep(0.15)
            with open(f, "a", encoding="utf-8") as out:
                out.write(f"{i + 1},shipped\n")

    t = threading.Thread(target=writer)
    t0 = time.monotonic()
    t.start()
    with FeedSource(str(f), settle_s=0.4).fetch(wait_for_settle=True) as got:
        elapsed = time.monotonic() - t0
        assert got.stream.read().decode().count("shipped") == 3  # the complete file
    t.join()
    assert elapsed >= 0.45 + 0.4 - 0.1


def test_unchanged_file_is_not_read_again_until_it_changes(tmp_path):
    f = old_file(tmp_path / "feed.csv")
    src = FeedSource(str(f), settle_s=1)
    with src.fetch() as first:
        pass
    again = src.fetch(previous_fingerprint=first.fingerprint)
    assert again.unchanged and again.stream is None and again.fingerprint == first.fingerprint
    old_file(f, "mall_order_id,status\n1,delivered\n", age_s=30)
    with src.fetch(previous_fingerprint=first.fingerprint) as changed:
        assert not changed.unchanged and changed.fingerprint != first.fingerprint


def test_missing_file_is_unavailable_naming_it(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(FeedUnavailable, match=f"{path}: file not found"):
        FeedSource(str(path)).fetch()
