"""issue 14: a misspelled section or key gets a did-you-mean and its line; a duplicate key is named with its line."""

from __future__ import annotations

import pytest

from connector.config import ConfigError, load_config


def error_for(tmp_path, text: str) -> ConfigError:
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(p, environ={})
    return info.value


def test_misspelled_section(tmp_path):
    e = error_for(tmp_path, '[mall]\nclient_id = "x"\n\n[reciever]\nlisten = "127.0.0.1:8080"\n')
    assert e.line == 4 and e.key == "reciever"
    assert "did you mean 'receiver'?" in str(e) and str(e).startswith(f"{tmp_path / 'config.toml'}:4:")


def test_misspelled_key(tmp_path):
    e = error_for(tmp_path, "[sync]\ndrain_interval_s = 5\npol_interval_s = 10\n")
    assert e.line == 3 and e.key == "sync.pol_interval_s" and "did you mean 'poll_interval_s'?" in str(e)


def test_misspelled_nested_key(tmp_path):
    e = error_for(tmp_path, '[shop.generic_csv]\nsourse = "feed.csv"\n')
    assert e.line == 2 and "did you mean 'source'?" in str(e)


def test_unknown_key_far_from_any_known_one_has_no_guess(tmp_path):
    e = error_for(tmp_path, "[sync]\nzzzz = 1\n")
    assert "unknown key" in str(e) and "did you mean" not in str(e) and e.line == 2


def test_duplicate_key_named_with_both_lines(tmp_path):
    e = error_for(tmp_path, "[sync]\npoll_interval_s = 30\nsweep_interval_s = 600\npoll_interval_s = 10\n")
    assert e.line == 4 and e.key == "sync.poll_interval_s"
    assert "duplicate key 'poll_interval_s'" in str(e) and "first set at line 2" in str(e)
    assert "Cannot overwrite" not in str(e)


def test_duplicate_section(tmp_path):
    e = error_for(tmp_path, "[sync]\npoll_interval_s = 30\n[mall]\n[sync]\nbatch_size = 5\n")
    assert e.line == 4 and "[sync] appears twice (first at line 1)" in str(e) and "Cannot declare" not in str(e)
