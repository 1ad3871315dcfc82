"""Tracking page URLs for common Czech and Slovak carriers.

MALL counts an order as "tracked" only when it carries a tracking number *and* a tracking URL,
but most shop feeds only have a carrier name and a number. This table builds the URL from
those two. It knows carriers, not shops: shop feeds name carriers freely ("Zásilkovna -
výdejní místo", "WE|DO", "ČP Balík Do ruky"), so names are matched loosely.

The templates are the carriers' public tracking pages as commonly linked at the time of
writing. Carriers move these pages now and then: admins should open one link per carrier
they use and, if it is wrong, put the right one under ``[shop.carrier_urls]`` (it wins).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

#: Placeholder every template must contain.
NUMBER = "{number}"


@dataclass(frozen=True)
class Carrier:
    key: str
    name: str  # shown to admins
    template: str
    aliases: tuple[str, ...] = ()


# Verify these before relying on them (see the module docstring). Least sure: WE|DO (the
# Uloženka page moved to wedo.cz) and SPS. A bare "DPD" or "GLS" means the Czech page; Slovak
# shops name them "DPD SK" / "GLS SK" or override the template.
CARRIERS: tuple[Carrier, ...] = (
    Carrier("ppl", "PPL", "https://www.ppl.cz/vyhledat-zasilku?shipmentId={number}",
            ("PPL CZ", "PPL Parcel", "PPL ParcelShop", "PPL Parcel Connect")),
    Carrier("dpd_cz", "DPD (CZ)", "https://tracking.dpd.de/status/cs_CZ/parcel/{number}",
            ("DPD", "DPD CZ", "DPD Pickup", "DPD Private", "DPD Classic")),
    Carrier("dpd_sk", "DPD (SK)", "https://tracking.dpd.de/status/sk_SK/parcel/{number}",
            ("DPD SK", "DPD Slovensko", "DPD Slovakia", "DPD Pickup SK")),
    Carrier("gls_cz", "GLS (CZ)", "https://gls-group.com/CZ/cs/sledovani-zasilek?match={number}",
            ("GLS", "GLS CZ", "GLS ParcelShop")),
    Carrier("gls_sk", "GLS (SK)", "https://gls-group.com/SK/sk/sledovanie-zasielok?match={number}",
            ("GLS SK", "GLS Slovensko")),
    Carrier("packeta", "Packeta / Zásilkovna", "https://tracking.packeta.com/cs/?id={number}",
            ("Packeta", "Zásilkovna", "Zásielkovňa", "Packeta SK", "Packetery")),
    Carrier("ceska_posta", "Česká pošta", "https://www.postaonline.cz/trackandtrace/-/zasilka/cislo?parcelNumbers={number}",
            ("Česká pošta", "ČP", "CP", "Czech Post", "Balík Do ruky", "Balík Na poštu", "Balíkovna")),
    Carrier("wedo", "WE|DO / Uloženka", "https://www.wedo.cz/sledovani-zasilky?code={number}",
            ("WE|DO", "WEDO", "WE DO", "Uloženka", "Uloženka by WE|DO", "WEDO Uloženka")),
    Carrier("slovenska_posta", "Slovenská pošta", "https://tandt.posta.sk/zasielky/{number}",
            ("Slovenská pošta", "Slovak Post", "Pošta SK", "SK Pošta")),
    # SPS publishes tracking by the parcel number split into three parts (703-030-28751101);
    # numbers that do not have that shape get no URL (put a template in [shop.carrier_urls]).
    Carrier("sps", "SPS (Slovak Parcel Service)",
            "https://t-t.sps-sro.sk/result.php?cmd=SDG_SEARCH&sprache=SK&sdg_landnr={land}&sdg_mandnr={mand}&sdg_lfdnr={lfd}",
            ("SPS", "Slovak Parcel Service", "SPS sro", "SPS s.r.o.")),
)

_SPS_NUMBER = re.compile(r"^(\d{3})-?(\d{3})-?(\d{8})(\d{2})?$")


def normalize(name: str) -> str:
    """Lower case, no diacritics, no spaces or punctuation: "WE|DO" -> "wedo", "Česká pošta" -> "ceskaposta"."""
    return "".join(_tokens(name))


def _tokens(name: str) -> list[str]:
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.findall(r"[a-z0-9]+", plain)


_ALIASES: dict[str, Carrier] = {}
for _c in CARRIERS:
    for _alias in (_c.key, _c.name, *_c.aliases):
        _ALIASES.setdefault(normalize(_alias), _c)
del _c, _alias


def _lookup(name: str, table: dict[str, object]) -> object | None:
    """Exact normalized match, else the longest leading run of words that matches.

    So "Zásilkovna - výdejní místo" finds "zasilkovna" and "DPD SK Pickup" finds "dpdsk"
    before "dpd"; a word in the middle ("Doprava PPL") does not count, to avoid guessing.
    """
    tokens = _tokens(name)
    for n in range(len(tokens), 0, -1):
        hit = table.get("".join(tokens[:n]))
        if hit is not None:
            return hit
    return None


def find_carrier(name: str | None) -> Carrier | None:
    """The built-in carrier a free-text name refers to, or None."""
    if not name or not name.strip():
        return None
    return _lookup(name, _ALIASES)  # type: ignore[return-value]


def known_carriers() -> list[str]:
    """Display names of the built-in carriers, for messages."""
    return [c.name for c in CARRIERS]


def missing_template_message(carrier: str) -> str:
    return (
        f"no tracking URL template for carrier {carrier!r}: add it under [shop.carrier_urls], e.g. "
        f'"{carrier}" = "https://carrier.example/track?n={{number}}" (built in: {", ".join(known_carriers())})'
    )


def tracking_url_for(carrier: str | None, number: str | None, overrides: dict[str, str] | None = None) -> str | None:
    """The tracking page URL for ``number`` sent by ``carrier``, or None when we have no template.

    ``overrides`` are ``[shop] carrier_urls`` (name -> template with ``{number}``); they win over
    the built-in table, also when they name the carrier by an alias ("Zásilkovna" covers "Packeta").
    """
    if not carrier or not carrier.strip() or not number or not number.strip():
        return None
    number = number.strip()
    encoded = quote(number, safe="")
    builtin = find_carrier(carrier)
    template = _override_for(carrier, builtin, overrides or {})
    if template is not None:
        return template.replace(NUMBER, encoded)
    if builtin is None:
        return None
    if builtin.key == "sps":
        m = _SPS_NUMBER.match(number.replace(" ", ""))
        if not m:
            return None
        return builtin.template.format(land=m.group(1), mand=m.group(2), lfd=m.group(3))
    return builtin.template.replace(NUMBER, encoded)


def _override_for(carrier: str, builtin: Carrier | None, overrides: dict[str, str]) -> str | None:
    """The admin's template for this carrier: same name, else same built-in carrier, else a name prefix.

    A prefix match ("DPD" for "DPD SK") is not used when it would point at another built-in
    carrier than the name itself does.
    """
    by_name = {normalize(k): (k, v) for k, v in overrides.items() if normalize(k)}
    exact = by_name.get(normalize(carrier))
    if exact is not None:
        return exact[1]
    if builtin is not None:
        for k, v in overrides.items():
            if find_carrier(k) is builtin:
                return v
    hit = _lookup(carrier, by_name)
    if hit is not None:
        k, v = hit  # type: ignore[misc]
        if builtin is None or find_carrier(k) is builtin:
            return v
    return None
