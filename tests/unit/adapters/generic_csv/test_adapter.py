"""GenericCsvAdapter end to end, and make_adapter choosing it from the config."""

from __future__ import annotations

import os
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from adapters import make_adapter
from adapters.base import FeedUnavailable, MallChange
from adapters.generic_csv import GenericCsvAdapter
from connector.config import ConfigError, GenericCsvConfig, load_config

PRAGUE = ZoneInfo("Europe/Prague")


def settled(path, data: bytes):
    path.write_bytes(data)
    t = time.time() - 60
    os.utime(path, (t, t))


def test_read_feed_then_unchanged(tmp_path):
    feed = tmp_path / "feed.csv"
    settled(feed, "mall_order_id;status;delivered_at\r\n1001;Doručena;26.11.2026 10:15\r\nbad;x;\r\n".encode("cp1250"))
    adapter = GenericCsvAdapter(GenericCsvConfig(source=str(feed), outbox=tmp_path / "out", encoding="cp1250"), PRAGUE)
    assert adapter.name == "generic_csv"
    read = adapter.read_feed()
    assert [(r.mall_order_id, r.status) for r in read.rows] == [(1001, "Doručena")]
    assert read.rows[0].delivered_at == datetime(2026, 11, 26, 10, 15, tzinfo=PRAGUE)
    assert [p.line for p in read.problems] == [3] and read.problems[0].source == str(feed)
    assert read.fingerprint and not read.unchanged and not read.not_ready
    again = adapter.read_feed(previous_fingerprint=read.fingerprint)
    assert again.unchanged and again.rows == [] and again.fingerprint == read.fingerprint


def test_fresh_feed_not_ready(tmp_path):
    feed = tmp_path / "feed.csv"
    feed.write_text("mall_order_id,status\n1,x\n")
    adapter = GenericCsvAdapter(GenericCsvConfig(source=str(feed), settle_s=30), PRAGUE)
    read = adapter.read_feed()
    assert read.not_ready and read.rows == []


def test_missing_column_is_unavailable(tmp_path):
    feed = tmp_path / "feed.csv"
    settled(feed, b"order,status\n1,x\n")
    adapter = GenericCsvAdapter(GenericCsvConfig(source=str(feed)), PRAGUE)
    with pytest.raises(FeedUnavailable, match=f"^{feed}: the header has no column 'mall_order_id'"):
        adapter.read_feed()


def test_handoff_and_manual_steps(tmp_path):
    adapter = GenericCsvAdapter(GenericCsvConfig(source="x.csv", outbox=tmp_path / "out"), PRAGUE)
    change = MallChange(1, "cancelled", "", "2026-11-26 10:00:00", None, "cancelled on MALL")
    adapter.stage_handoff("changes-20261126T101500Z-000001", "changes", [change])
    assert adapter.publish_handoff("changes-20261126T101500Z-000001") is True
    assert adapter.publish_handoff("changes-20261126T101500Z-000001") is False
    assert (tmp_path / "out" / "changes-20261126T101500Z-000001.csv").exists()
    assert adapter.manual_steps(change) is None


def write_config(tmp_path, body: str):
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    return load_config(path, environ={})


def test_make_adapter_generic_csv_resolves_paths(tmp_path):
    cfg = write_config(tmp_path, '[shop]\nadapter = "generic_csv"\ntimezone = "Europe/Bratislava"\n'
                                 '[shop.generic_csv]\nsource = "feed.csv"\n')
    adapter = make_adapter(cfg)
    assert isinstance(adapter, GenericCsvAdapter)
    assert adapter.source.location == str(tmp_path / "feed.csv")
    assert adapter.outbox.folder == tmp_path / "outbox"
    assert adapter.tz == ZoneInfo("Europe/Bratislava")


def test_make_adapter_url_with_credentials_names_config_file_and_line(tmp_path):
    cfg = write_config(tmp_path, '[shop]\nadapter = "generic_csv"\n\n[shop.generic_csv]\n'
                                 'source = "https://shop:Pw-in-url-9@shop.example/feed.csv"\n')
    with pytest.raises(ConfigError) as info:
        make_adapter(cfg)
    err = info.value
    assert err.path == str(tmp_path / "config.toml") and err.line == 5 and err.key == "shop.generic_csv.source"
    assert "Pw-in-url-9" not in str(err)


def test_make_adapter_without_source(tmp_path):
    cfg = write_config(tmp_path, '[shop]\nadapter = "generic_csv"\n')
    with pytest.raises(ConfigError, match="shop.generic_csv.source: not set"):
        make_adapter(cfg)
