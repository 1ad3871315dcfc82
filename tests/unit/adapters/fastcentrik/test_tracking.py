"""connector.tracking: tracking page URLs from a carrier name and a number."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from connector.config import ShopConfig
from connector.tracking import (CARRIERS, find_carrier, known_carriers, missing_template_message, normalize,
                                tracking_url_for)


@pytest.mark.parametrize("name, key", [
    ("PPL", "ppl"), ("ppl cz", "ppl"), ("PPL ParcelShop", "ppl"),
    ("DPD", "dpd_cz"), ("DPD CZ", "dpd_cz"), ("dpd-sk", "dpd_sk"), ("DPD Slovensko", "dpd_sk"),
    ("GLS", "gls_cz"), ("GLS SK", "gls_sk"),
    ("Zásilkovna", "packeta"), ("zasilkovna", "packeta"), ("PACKETA", "packeta"), ("Zásielkovňa", "packeta"),
    ("Česká pošta", "ceska_posta"), ("ceska posta", "ceska_posta"), ("CP", "ceska_posta"), ("ČP", "ceska_posta"),
    ("Česká  pošta, s.p.", "ceska_posta"),
    ("WE|DO", "wedo"), ("WEDO", "wedo"), ("We Do", "wedo"), ("Uloženka", "wedo"), ("ULOZENKA", "wedo"),
    ("Slovenská pošta", "slovenska_posta"), ("slovenska-posta", "slovenska_posta"),
    ("SPS", "sps"), ("Slovak Parcel Service", "sps"), ("SPS s.r.o.", "sps"),
    # the way shops name their delivery options: carrier first, then the service
    ("Zásilkovna - výdejní místo", "packeta"), ("PPL - doručení na adresu", "ppl"),
    ("DPD SK Pickup", "dpd_sk"), ("Česká pošta – Balík Do ruky", "ceska_posta"),
])
def test_carrier_names_are_matched_loosely(name, key):
    carrier = find_carrier(name)
    assert carrier is not None and carrier.key == key


@pytest.mark.parametrize("name", ["", "   ", "Doprava PPL", "Osobní odběr", "DHL", "Pošta"])
def test_unknown_carriers(name):
    assert find_carrier(name) is None
    assert tracking_url_for(name, "123") is None


def test_normalize():
    assert normalize("WE|DO") == "wedo"
    assert normalize(" Česká  pošta ") == "ceskaposta"
    assert normalize("Zásielkovňa") == "zasielkovna"


def test_every_builtin_template_is_an_https_url_with_the_number():
    for carrier in CARRIERS:
        number = "703-030-28751101" if carrier.key == "sps" else "AB123456789CZ"
        url = tracking_url_for(carrier.name, number)
        assert url is not None, carrier.key
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.netloc, url
        if carrier.key != "sps":
            assert url.endswith("AB123456789CZ") or "AB123456789CZ&" in url
    assert len({c.key for c in CARRIERS}) == len(CARRIERS)


def test_expected_urls():
    assert tracking_url_for("PPL", "40857241530") == "https://www.ppl.cz/vyhledat-zasilku?shipmentId=40857241530"
    assert tracking_url_for("Zásilkovna", "Z1234567890") == "https://tracking.packeta.com/cs/?id=Z1234567890"
    assert tracking_url_for("DPD SK", "13802012345678") == "https://tracking.dpd.de/status/sk_SK/parcel/13802012345678"
    assert tracking_url_for("Slovenská pošta", "RR123456789SK") == "https://tandt.posta.sk/zasielky/RR123456789SK"
    assert tracking_url_for("SPS", "703-030-28751101") == (
        "https://t-t.sps-sro.sk/result.php?cmd=SDG_SEARCH&sprache=SK&sdg_landnr=703&sdg_mandnr=030&sdg_lfdnr=28751101")
    assert tracking_url_for("SPS", "7030302875110112").endswith("sdg_lfdnr=28751101")
    assert tracking_url_for("SPS", "not-an-sps-number") is None


def test_number_is_trimmed_and_url_encoded():
    assert tracking_url_for("PPL", "  40857241530 ") == "https://www.ppl.cz/vyhledat-zasilku?shipmentId=40857241530"
    assert tracking_url_for("Packeta", "Z 123/45&x=1#y") == "https://tracking.packeta.com/cs/?id=Z%20123%2F45%26x%3D1%23y"
    assert tracking_url_for("PPL", "") is None and tracking_url_for("PPL", None) is None
    assert tracking_url_for(None, "123") is None


def test_overrides_win_also_by_alias():
    overrides = {"Zásilkovna": "https://example.cz/z?n={number}"}
    assert tracking_url_for("Packeta", "Z 1", overrides) == "https://example.cz/z?n=Z%201"
    assert tracking_url_for("zasilkovna - vydejni misto", "Z1", overrides) == "https://example.cz/z?n=Z1"
    assert tracking_url_for("PPL", "1", overrides) == "https://www.ppl.cz/vyhledat-zasilku?shipmentId=1"


def test_overrides_add_carriers_and_do_not_leak_to_other_builtins():
    overrides = {"Moje Doprava": "https://moje.cz/t/{number}", "DPD": "https://dpd.example/{number}"}
    assert tracking_url_for("MOJE DOPRAVA", "7", overrides) == "https://moje.cz/t/7"
    assert tracking_url_for("Moje doprava – expres", "7", overrides) == "https://moje.cz/t/7"
    assert tracking_url_for("DPD Pickup", "7", overrides) == "https://dpd.example/7"  # DPD = the CZ one
    assert tracking_url_for("DPD SK", "7", overrides) == "https://tracking.dpd.de/status/sk_SK/parcel/7"
    assert tracking_url_for("SPS", "7", {"sps": "https://sps.example/{number}"}) == "https://sps.example/7"


def test_overrides_come_from_the_shop_config():
    shop = ShopConfig(carrier_urls={"Geis": "https://geis.example/?id={number}"})
    assert tracking_url_for("GEIS", "G1", shop.carrier_urls) == "https://geis.example/?id=G1"


def test_known_carriers_and_the_message_for_an_unknown_one():
    names = known_carriers()
    for expected in ("PPL", "DPD (CZ)", "DPD (SK)", "GLS (CZ)", "Packeta / Zásilkovna", "Česká pošta",
                     "WE|DO / Uloženka", "Slovenská pošta", "SPS (Slovak Parcel Service)"):
        assert expected in names
    msg = missing_template_message("Toptrans")
    assert msg.startswith("no tracking URL template for carrier 'Toptrans': add it under [shop.carrier_urls]")
    assert '"Toptrans" = "https://carrier.example/track?n={number}"' in msg and "PPL" in msg
