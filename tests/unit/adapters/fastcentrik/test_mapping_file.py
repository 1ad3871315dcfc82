"""mappings/fastcentrik.toml loads with connector.mapping and maps every CZ and SK status as intended."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.fastcentrik import parse_orders_xml
from connector.config import FastCentrikFields, config_from_dict
from connector.mall.statuses import Status
from connector.mapping import load_mapping, mapping_from_text
from mappings import default_mapping_path
from tests.unit.adapters.fastcentrik.conftest import FIXTURES, PRAGUE

PATH = default_mapping_path("fastcentrik")


@pytest.fixture(scope="module")
def mapping():
    return load_mapping(PATH)


@pytest.mark.parametrize("shop_status, target", [
    ("vyřizuje se", Status.SHIPPING), ("Vybavuje sa", Status.SHIPPING),
    ("vyřízená", Status.SHIPPED), ("Vybavená", Status.SHIPPED),
    ("stornováno", Status.CANCELLED), ("Stornovaná", Status.CANCELLED),
    # as the admin may write them
    ("Vyřizuje se", Status.SHIPPING), ("VYBAVENÁ", Status.SHIPPED), (" stornováno ", Status.CANCELLED),
])
def test_pushed_statuses(mapping, shop_status, target):
    assert mapping.lookup(shop_status).kind == "mapped"
    assert mapping.lookup(shop_status).target == target


@pytest.mark.parametrize("shop_status", ["nevyřízená", "Nevybavená", "částečně vyřízená", "Čiastočne vybavená",
                                         "Nevyřízená", "čiastočne vybavená"])
def test_ignored_statuses(mapping, shop_status):
    assert mapping.lookup(shop_status).kind == "ignored"


def test_decomposed_unicode_still_matches(mapping):
    import unicodedata

    assert mapping.lookup(unicodedata.normalize("NFD", "vyřízená")).target == Status.SHIPPED


def test_from_mall(mapping):
    assert mapping.shop_status_for("open") == "nevyřízená"
    assert mapping.shop_status_for("cancelled") == "stornováno"
    assert mapping.shop_status_for("shipping") == "vyřizuje se"
    assert mapping.shop_status_for("shipped") == "vyřízená"
    assert mapping.shop_status_for("delivered") == "vyřízená"
    for status in ("returned", "lost", "blocked"):  # no FastCentrik status: manual_steps explains
        assert mapping.shop_status_for(status) == ""


def test_exactly_ten_names_known(mapping):
    assert len(mapping.to_mall) == 6 and len(mapping.ignored) == 4
    assert mapping.case_sensitive is False


def test_every_status_in_the_fixture_feeds_is_known(mapping):
    seen = set()
    for name in ("orders_cz_utf8.xml", "orders_sk_cp1250.xml"):
        with open(FIXTURES / name, "rb") as f:
            parsed = parse_orders_xml(f, source=name, fields=FastCentrikFields(), tz=PRAGUE)
        seen |= {r.status for r in parsed.read.rows}
    assert len(seen) == 10
    assert mapping.unknown_statuses(seen) == set()


def test_the_commented_alternative_for_partly_settled_is_valid():
    """The file tells admins how to push částečně vyřízená as shipping; doing so must load."""
    text = PATH.read_text(encoding="utf-8")
    text = text.replace('    "částečně vyřízená",\n    "Čiastočne vybavená",\n', "")
    text = text.replace('"Stornovaná" = "cancelled"\n',
                        '"Stornovaná" = "cancelled"\n"částečně vyřízená" = "shipping"\n"Čiastočne vybavená" = "shipping"\n')
    changed = mapping_from_text(text, "edited.toml")
    assert changed.lookup("částečně vyřízená").target == Status.SHIPPING
    assert changed.lookup("Čiastočne vybavená").target == Status.SHIPPING
    assert changed.lookup("nevyřízená").kind == "ignored"


def test_the_commented_slovak_from_mall_is_valid():
    text = PATH.read_text(encoding="utf-8")
    start = text.index("[from_mall]")
    end = text.index("[ignore]")
    section = text[start:end]
    slovak = "\n".join(line[2:] for line in section.splitlines() if line.startswith("# ") and " = " in line)
    text = text[:start] + "[from_mall]\n" + slovak + "\n\n" + text[end:]
    sk = mapping_from_text(text, "sk.toml")
    assert sk.shop_status_for("open") == "Nevybavená"
    assert sk.shop_status_for("cancelled") == "Stornovaná"


def test_config_mapping_path_default():
    cfg = config_from_dict({"shop": {"adapter": "fastcentrik"}}, Path("/tmp/config.toml"))
    assert cfg.mapping_path == PATH
