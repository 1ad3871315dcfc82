"""`mapping check` and `config check` through the real click entry point."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from connector.cli import main


@pytest.fixture(autouse=True)
def _drop_cli_log_handlers():
    """The CLI installs a stderr handler on the root logger; CliRunner's stderr is gone afterwards."""
    yield
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_mall_connector", False):
            root.removeHandler(h)


@pytest.fixture
def setup(tmp_path):
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[to_mall]\n"Expedována" = "shipped"\n[ignore]\nstatuses = ["Nová"]\n'
                       '[from_mall]\ncancelled = "Stornována"\n', encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text('[shop]\nadapter = "generic_csv"\nmapping = "mapping.toml"\n'
                      '[shop.generic_csv]\nsource = "feed.csv"\n', encoding="utf-8")
    return config, mapping


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_mapping_check_file_prints_table(setup):
    _, mapping = setup
    result = run("mapping", "check", str(mapping))
    assert result.exit_code == 0, result.output
    assert "Expedována" in result.stdout and "-> shipped" in result.stdout
    assert "Nová" in result.stdout
    assert "cancelled" in result.stdout and "Stornována" in result.stdout
    assert "✓" in result.stdout


def test_mapping_check_defaults_to_config_mapping(setup):
    config, mapping = setup
    result = run("--config", str(config), "mapping", "check")
    assert result.exit_code == 0, result.output
    assert str(mapping) in result.stdout


def test_mapping_check_invalid_exits_78_naming_file_line_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[to_mall]\n"Expedována" = "shiped"\n', encoding="utf-8")
    result = run("mapping", "check", str(bad))
    assert result.exit_code == 78
    assert f"{bad}:2:" in result.stderr
    assert 'to_mall."Expedována"' in result.stderr
    assert "did you mean 'shipped'?" in result.stderr
    assert result.stdout == ""


def test_mapping_check_missing_file_exits_78(tmp_path):
    result = run("mapping", "check", str(tmp_path / "none.toml"))
    assert result.exit_code == 78
    assert "not found" in result.stderr


def test_config_check_ok(setup):
    config, mapping = setup
    result = run("--config", str(config), "config", "check")
    assert result.exit_code == 0, result.output
    assert f"✓ config {config}" in result.stdout
    assert f"✓ mapping {mapping}" in result.stdout


def test_config_check_bad_config_exits_78(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[sync]\npoll_interval_s = 0\n", encoding="utf-8")
    result = run("--config", str(config), "config", "check")
    assert result.exit_code == 78
    assert f"{config}:2: sync.poll_interval_s" in result.stderr


def test_config_check_bad_mapping_exits_78(setup):
    config, mapping = setup
    mapping.write_text('[to_mall]\n"Nová" = "open"\n', encoding="utf-8")
    result = run("--config", str(config), "config", "check")
    assert result.exit_code == 78
    assert "✓ config" in result.stdout
    assert f"{mapping}:2:" in result.stderr and "a partner can never set open" in result.stderr


def test_config_check_uses_shipped_mapping_by_default(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[shop]\nadapter = \"generic_csv\"\n", encoding="utf-8")
    result = run("--config", str(config), "config", "check")
    assert result.exit_code == 0, result.output
    assert "generic_csv.toml" in result.stdout


@pytest.mark.parametrize("args", [["mapping"], ["mapping", "check"], ["config"], ["config", "check"]])
def test_help_has_examples(args):
    result = run(*args, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout and "mall-connector" in result.stdout
