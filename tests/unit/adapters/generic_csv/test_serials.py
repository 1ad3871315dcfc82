"""The generic CSV adapter's serials source (docs/mdp.md): parsed within bounds, bad rows named by file and line."""

from __future__ import annotations


import pytest

from adapters.generic_csv import serials as mod
from adapters.generic_csv.serials import read_serials_file


def write(tmp_path, text, name="serials.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_lists_per_item_in_file_order_without_duplicates(tmp_path):
    path = write(tmp_path, "mall_order_id;item_id;serial_number\n11;A;S1\n11;A;S2\n11;A;S1\n12;B;S9\n\n")
    got = read_serials_file(path)
    assert got.wanted == {(11, "A"): ["S1", "S2"], (12, "B"): ["S9"]} and got.problems == []
    assert read_serials_file(path, previous_fingerprint=got.fingerprint).unchanged


def test_bad_rows_are_named_and_skipped(tmp_path):
    path = write(tmp_path, "serial_number,mall_order_id,item_id\nS1,abc,A\nS2,11\n,11,A\nS3,11,A\n")
    got = read_serials_file(path)
    assert got.wanted == {(11, "A"): ["S3"]}
    assert [p.split(": ", 1)[0] for p in got.problems] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "not a positive whole number" in got.problems[0] and "fewer values" in got.problems[1]


def test_a_missing_column_or_file_names_the_file(tmp_path):
    with pytest.raises(ValueError, match="no column serial_number"):
        read_serials_file(write(tmp_path, "mall_order_id,item_id\n1,A\n"))
    with pytest.raises(ValueError, match="does not exist"):
        read_serials_file(tmp_path / "missing.csv")


def test_bounds(tmp_path, monkeypatch):
    monkeypatch.setattr(mod, "MAX_BYTES", 100)
    with pytest.raises(ValueError, match="more than the 100 allowed"):
        read_serials_file(write(tmp_path, "mall_order_id,item_id,serial_number\n" + "1,A,S\n" * 50))
    monkeypatch.setattr(mod, "MAX_BYTES", 10**6)
    monkeypatch.setattr(mod, "MAX_PER_ITEM", 2)
    got = read_serials_file(write(tmp_path, "mall_order_id,item_id,serial_number\n1,A,S1\n1,A,S2\n1,A,S3\n"
                                  f"1,A,{'x' * 101}\n", name="b.csv"))
    assert got.wanted == {(1, "A"): ["S1", "S2"]}
    assert "more than 2 serial numbers" in got.problems[0] and "1 to 100 characters" in got.problems[1]
