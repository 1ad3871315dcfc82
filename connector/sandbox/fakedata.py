"""Tables the order generator draws from: Czech/Slovak customers, addresses, products, delivery methods.

All data are invented. Delivery method codes for MALL Delivery follow mall-api.md §7 (CZ 29/20/21,
SK 32/49); the partner-side codes and the tracking URL patterns are only illustrative.
"""

from __future__ import annotations

from dataclasses import dataclass

CZ_MEN = [("Josef", "Novák"), ("Jan", "Svoboda"), ("Petr", "Novotný"), ("Pavel", "Dvořák"), ("Martin", "Černý"),
          ("Tomáš", "Procházka"), ("Jiří", "Kučera"), ("Lukáš", "Veselý"), ("Ondřej", "Horák"), ("Jaroslav", "Němec")]
CZ_WOMEN = [("Jana", "Nováková"), ("Marie", "Svobodová"), ("Eva", "Novotná"), ("Hana", "Dvořáková"),
            ("Lucie", "Černá"), ("Kateřina", "Procházková"), ("Tereza", "Kučerová"), ("Petra", "Veselá"),
            ("Veronika", "Horáková"), ("Alena", "Němcová")]
SK_MEN = [("Ján", "Horváth"), ("Peter", "Kováč"), ("Michal", "Varga"), ("Juraj", "Tóth"), ("Marek", "Nagy"),
          ("Martin", "Baláž"), ("Tomáš", "Szabó"), ("Lukáš", "Molnár")]
SK_WOMEN = [("Mária", "Horváthová"), ("Anna", "Kováčová"), ("Zuzana", "Vargová"), ("Katarína", "Tóthová"),
            ("Jana", "Nagyová"), ("Lucia", "Balážová"), ("Monika", "Szabóová"), ("Simona", "Molnárová")]

CZ_CITIES = [("Praha 7", "17000"), ("Praha 4", "14000"), ("Brno", "60200"), ("Ostrava", "70200"), ("Plzeň", "30100"),
             ("Olomouc", "77900"), ("Liberec", "46001"), ("České Budějovice", "37001"),
             ("Hradec Králové", "50002"), ("Pardubice", "53002"), ("Zlín", "76001"), ("Jihlava", "58601")]
SK_CITIES = [("Bratislava", "81101"), ("Košice", "04001"), ("Žilina", "01001"), ("Nitra", "94901"),
             ("Banská Bystrica", "97401"), ("Prešov", "08001"), ("Trnava", "91701"), ("Trenčín", "91101")]
CZ_STREETS = ["U Garáží", "Dlouhá", "Nádražní", "Husova", "Masarykova", "Palackého", "Komenského", "Školní",
              "Zahradní", "Lidická", "Na Příkopě", "Jungmannova"]
SK_STREETS = ["Hlavná", "Štúrova", "Obchodná", "Mlynská", "Kpt. Nálepku", "Námestie SNP", "Hurbanova", "Poštová"]
CZ_MAIL_DOMAINS = ["seznam.cz", "email.cz", "gmail.com", "centrum.cz"]
SK_MAIL_DOMAINS = ["azet.sk", "zoznam.sk", "gmail.com", "centrum.sk"]
COMPANY_SUFFIXES = ["s.r.o.", "a.s.", "spol. s r.o."]


@dataclass(frozen=True)
class Product:
    id: str  # the partner's own product/variant id (a string on MALL's wire)
    article_id: int  # MALL's article number
    title: str
    price_czk: int
    vat_cz: int
    commission: int  # percent


PRODUCTS = [
    Product("F192621", 100000249018, "Kávovar DeLonghi Magnifica S ECAM 22.110.B", 8990, 21, 12),
    Product("104570", 100094165277, "Káva zrnková Lavazza Qualità Oro 1 kg", 459, 12, 15),
    Product("PL-4-174", 100021458830, "Plenky Pampers Premium Care 4 (174 ks)", 1199, 21, 10),
    Product("KN-KRTEK", 100055602117, "Kniha Krtek a kalhotky", 199, 0, 18),
    Product("T429507", 100038811920, "Vysavač Rowenta X-Force Flex 9.60", 7490, 21, 12),
    Product("LEGO-42151", 100090131844, "LEGO Technic 42151 Bugatti Bolide", 1299, 21, 14),
    Product("SLU-XM5", 100087720513, "Sluchátka Sony WH-1000XM5 černá", 8490, 21, 8),
    Product("MLEKO-KJ", 100062200471, "Kojenecké mléko Nutrilon 2 800 g", 569, 12, 10),
    Product("PAN-28", 100047125596, "Pánev Tefal Unlimited 28 cm", 899, 21, 16),
    Product("OLEJ-5W30", 100011839202, "Motorový olej Castrol Edge 5W-30 4 l", 1049, 21, 13),
    Product("KR-CAT-10", 100073385910, "Krmivo pro kočky Purina One 10 kg", 1389, 12, 11),
    Product("TRIKO-M-BL", 100080017763, "Pánské tričko bavlněné modré M", 349, 21, 20),
]

#: Slovak VAT rates (since 2025) matching the Czech standard/reduced/zero-rated groups of the products above.
SK_VAT = {21: 23, 12: 19, 0: 5}
CZK_PER_EUR = 25


@dataclass(frozen=True)
class Delivery:
    code: str  # delivery_method
    method_id: int  # delivery_method_id
    country: str
    pickup: bool  # delivered to a pickup branch (order carries branch_id)
    mdp: bool  # MALL Delivery
    price: float  # in the country's currency
    tracking_url: str  # with {} for the number
    tracking_prefix: str
    tracking_digits: int


DELIVERIES = [
    Delivery("pplCz", 2, "CZ", False, False, 89, "https://www.ppl.cz/vyhledat-zasilku?shipmentId={}", "", 11),
    Delivery("1", 1, "CZ", False, False, 79, "https://tracking.dpd.de/status/cs_CZ/parcel/{}", "", 14),
    Delivery("zasilkovna", 7, "CZ", True, False, 69, "https://tracking.packeta.com/cs/?id={}", "Z", 10),
    Delivery("ulozenka", 5, "CZ", True, False, 59, "https://tracking.ulozenka.cz/{}", "U", 10),
    Delivery("29", 29, "CZ", False, True, 79, "https://tracking.mallgroup.com/{}", "MDP", 10),
    Delivery("20", 20, "CZ", True, True, 39, "https://tracking.mallgroup.com/{}", "MDP", 10),
    Delivery("21", 21, "CZ", True, True, 49, "https://tracking.mallgroup.com/{}", "MDP", 10),
    Delivery("dpdSk", 9, "SK", False, False, 3.5, "https://tracking.dpd.de/status/sk_SK/parcel/{}", "", 14),
    Delivery("packetaSk", 10, "SK", True, False, 2.9, "https://tracking.packeta.com/sk/?id={}", "Z", 10),
    Delivery("32", 32, "SK", False, True, 3.9, "https://tracking.mallgroup.com/{}", "MDP", 10),
    Delivery("49", 49, "SK", True, True, 2.5, "https://tracking.mallgroup.com/{}", "MDP", 10),
]

#: Cash-on-delivery fee per currency.
COD_FEE = {"CZK": 39, "EUR": 1.5}
