"""Mapping file validation: every error names file, key, line and reason; lookups normalise names."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from connector.config import ConfigError
from connector.mall.statuses import Status
from connector.mapping import Lookup, MappingError, load_mapping, mapping_from_text
from mappings import default_mapping_path

GOOD = """\
[to_mall]
"Expedována" = "shipped"
"Stornována" = "cancelled"
[from_mall]
cancelled = "Stornována"
[ignore]
statuses = ["Nová"]
[options]
case_sensitive = false
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "mapping.toml"
    p.write_text(text, encoding="utf-8")
    return p


def error_for(tmp_path: Path, text: str) -> MappingError:
    path = write(tmp_path, text)
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    err = info.value
    assert isinstance(err, ConfigError)  # so the CLI exits 78
    assert err.path == str(path)
    assert str(path) in str(err)
    return err


def test_good_mapping_lookups(tmp_path):
    m = load_mapping(write(tmp_path, GOOD))
    assert m.path == tmp_path / "mapping.toml"
    assert m.lookup("Expedována") == Lookup("mapped", Status.SHIPPED)
    assert m.lookup("  expedována ") == Lookup("mapped", Status.SHIPPED)
    assert m.lookup("Nová") == Lookup("ignored", None)
    assert m.lookup("Vyřizuje se") == Lookup("unmapped", None)
    assert m.lookup("") == Lookup("unmapped", None)
    assert m.shop_status_for(Status.CANCELLED) == "Stornována"
    assert m.shop_status_for("cancelled") == "Stornována"
    assert m.shop_status_for("shipped") == ""
    assert m.unknown_statuses(["Expedována", "NOVÁ", "Vyřizuje se ", "", "Zaplacena"]) == {"Vyřizuje se", "Zaplacena"}
    sections = [(r.section, r.shop_status, r.mall_status) for r in m.rows()]
    assert sections == [
        ("to_mall", "Expedována", "shipped"),
        ("to_mall", "Stornována", "cancelled"),
        ("ignore", "Nová", ""),
        ("from_mall", "Stornována", "cancelled"),
    ]


def test_nfc_and_case_folding(tmp_path):
    """A name typed on a Mac (decomposed) matches the composed one in the feed, in any case."""
    decomposed = unicodedata.normalize("NFD", "Expedována")
    assert decomposed != "Expedována"
    m = load_mapping(write(tmp_path, f'[to_mall]\n"{decomposed}" = "shipped"\n'))
    assert m.lookup("EXPEDOVÁNA").target is Status.SHIPPED
    assert m.lookup(unicodedata.normalize("NFD", "EXPEDOVÁNA")).target is Status.SHIPPED


def test_case_sensitive_option(tmp_path):
    m = load_mapping(write(tmp_path, '[to_mall]\n"Shipped" = "shipped"\n"shipped" = "delivered"\n'
                                     '[options]\ncase_sensitive = true\n'))
    assert m.lookup("Shipped").target is Status.SHIPPED
    assert m.lookup("shipped").target is Status.DELIVERED
    assert m.lookup("SHIPPED").kind == "unmapped"
    assert m.lookup(unicodedata.normalize("NFD", " Shipped ")).target is Status.SHIPPED  # NFC + trim still apply


def test_did_you_mean_for_a_misspelt_mall_status(tmp_path):
    err = error_for(tmp_path, '[to_mall]\n"Expedována" = "shiped"\n')
    assert "'shiped' is not a MALL status; did you mean 'shipped'?" in str(err)
    assert err.key == 'to_mall."Expedována"'
    assert err.line == 2


@pytest.mark.parametrize("target,why", [
    ("open", "MALL sets open itself"),
    ("blocked", "waits for the customer's payment"),
    ("lost", "only MALL sets lost"),
])
def test_mapping_onto_a_status_partners_cannot_set(tmp_path, target, why):
    err = error_for(tmp_path, f'# comment\n[to_mall]\n"A" = "shipped"\n"Nová" = "{target}"\n')
    assert err.line == 4
    assert err.key == 'to_mall."Nová"'
    assert f"a partner can never set {target}" in err.reason
    assert why in err.reason
    assert "[ignore]" in err.reason  # tells what to do instead


def test_status_both_mapped_and_ignored(tmp_path):
    err = error_for(tmp_path, '[to_mall]\n"Nová" = "shipping"\n\n[ignore]\nstatuses = [\n  "x",\n  "NOVÁ",\n]\n')
    assert err.key == "ignore.statuses"
    assert err.line == 7
    assert "both mapped" in err.reason and "'NOVÁ'" in err.reason


def test_two_keys_equal_after_normalisation(tmp_path):
    composed = "Expedována"
    decomposed = unicodedata.normalize("NFD", composed)
    err = error_for(tmp_path, f'[to_mall]\n"{composed}" = "shipped"\n"{decomposed} " = "shipped"\n')
    assert err.line == 3
    assert "same shop status" in err.reason


def test_two_keys_differing_in_case_only(tmp_path):
    err = error_for(tmp_path, '[to_mall]\n"Shipped" = "shipped"\n"SHIPPED" = "delivered"\n')
    assert err.line == 3 and err.key == "to_mall.SHIPPED"
    assert "ignoring case" in err.reason


def test_from_mall_key_must_be_a_mall_status(tmp_path):
    err = error_for(tmp_path, '[from_mall]\ncanceled = "Stornována"\n')
    assert err.key == "from_mall.canceled" and err.line == 2
    assert "did you mean 'cancelled'?" in err.reason


def test_from_mall_value_must_be_text(tmp_path):
    err = error_for(tmp_path, "[from_mall]\ncancelled = 3\n")
    assert err.key == "from_mall.cancelled" and err.line == 2


def test_unknown_section(tmp_path):
    err = error_for(tmp_path, '[to_mall]\n"a" = "shipped"\n[ignored]\nstatuses = []\n')
    assert err.key == "ignored" and err.line == 3
    assert "did you mean 'ignore'?" in err.reason


def test_unknown_option_and_ignore_key(tmp_path):
    err = error_for(tmp_path, "[options]\ncase_sensitiv = true\n")
    assert err.key == "options.case_sensitiv" and err.line == 2
    assert "did you mean 'case_sensitive'?" in err.reason
    err = error_for(tmp_path, '[ignore]\nstatus = ["a"]\n')
    assert err.key == "ignore.status" and "did you mean 'statuses'?" in err.reason


def test_option_must_be_bool(tmp_path):
    err = error_for(tmp_path, '[options]\ncase_sensitive = "yes"\n')
    assert "true or false" in err.reason


def test_invalid_toml_has_a_line(tmp_path):
    err = error_for(tmp_path, '[to_mall]\n"a" = "shipped"\n"b" = shipped\n')
    assert err.line == 3
    assert "not valid TOML" in str(err)
    assert f"{tmp_path / 'mapping.toml'}:3:" in str(err)


def test_missing_file(tmp_path):
    with pytest.raises(MappingError, match="not found"):
        load_mapping(tmp_path / "nope.toml")


def test_literal_quoted_key_line(tmp_path):
    err = error_for(tmp_path, "[to_mall]\n'a' = \"shipped\"\n'b.c' = \"opne\"\n")
    assert err.line == 3 and err.key == 'to_mall."b.c"'
    assert "did you mean 'open'?" in err.reason


def test_error_message_format(tmp_path):
    err = error_for(tmp_path, '[to_mall]\n"Expedována" = "shiped"\n')
    assert str(err) == (f'{tmp_path / "mapping.toml"}:2: to_mall."Expedována": \'shiped\' is not a MALL status; '
                        "did you mean 'shipped'? (a shop status can map onto: cancelled, delivered, returned, "
                        "shipped, shipping)")


def test_mapping_from_text_without_file():
    m = mapping_from_text(GOOD)
    assert m.lookup("stornována").target is Status.CANCELLED


@pytest.mark.parametrize("adapter", ["generic_csv"])
def test_shipped_mapping_is_valid(adapter):
    m = load_mapping(default_mapping_path(adapter))
    assert m.lookup("Shipped").target is Status.SHIPPED
    assert m.lookup("packing").target is Status.SHIPPING
    assert m.lookup("new").kind == "ignored"
    assert m.shop_status_for("cancelled") == "cancelled"
