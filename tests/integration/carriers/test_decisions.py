"""The pure delivery decisions, against hand-written expectations (issue 15)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from carriers import guess_by_name, guess_by_number, registry
from connector.carrier_config import CarriersConfig
from connector.sync.common import PRAGUE
from connector.sync.delivery import Candidate, choose_carrier, choose_delivery, next_poll_at


def t(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=PRAGUE)


SHIPPED = t("2026-12-01 10:00")
NOW = t("2026-12-03 12:00")


@pytest.mark.parametrize("cands, expect_at, expect_first, expect_source, refused", [
    # one plausible source
    ([Candidate("shop", t("2026-12-02 11:30"))], "2026-12-02 11:30", None, "shop", 0),
    # disagreeing sources: the earliest plausible wins
    ([Candidate("shop", t("2026-12-02 15:00")), Candidate("carrier packeta", t("2026-12-02 11:30"))],
     "2026-12-02 11:30", None, "carrier packeta", 0),
    # the earliest is implausible (before shipped): refused, the next one wins
    ([Candidate("shop", t("2026-12-01 09:00")), Candidate("carrier ppl", t("2026-12-02 08:00"))],
     "2026-12-02 08:00", None, "carrier ppl", 1),
    # in the future (beyond a 5-minute skew): refused
    ([Candidate("shop", t("2026-12-03 12:10"))], None, None, None, 1),
    # within the skew: fine
    ([Candidate("shop", t("2026-12-03 12:03"))], "2026-12-03 12:03", None, "shop", 0),
    # first attempt: earliest one between shipped and delivered, from any plausible source
    ([Candidate("shop", t("2026-12-02 15:00"), t("2026-12-02 09:00")),
      Candidate("carrier packeta", t("2026-12-02 14:00"), t("2026-12-02 10:00"))],
     "2026-12-02 14:00", "2026-12-02 09:00", "carrier packeta", 0),
    # a first attempt after the chosen delivery is dropped
    ([Candidate("shop", t("2026-12-02 09:00"), t("2026-12-02 10:00"))], "2026-12-02 09:00", None, "shop", 0),
    # date only on the shipping day: the shipped time; on a later day: that day's start
    ([Candidate("carrier ceska_posta", t("2026-12-01 00:00"), date_only=True)], "2026-12-01 10:00", None,
     "carrier ceska_posta", 0),
    ([Candidate("carrier ceska_posta", t("2026-12-02 00:00"), date_only=True)], "2026-12-02 00:00", None,
     "carrier ceska_posta", 0),
    # date only, a day before shipping: refused
    ([Candidate("carrier ceska_posta", t("2026-11-30 00:00"), date_only=True)], None, None, None, 1),
])
def test_choose_delivery(cands, expect_at, expect_first, expect_source, refused):
    choice = choose_delivery(cands, shipped_at=SHIPPED, now=NOW)
    fmt = lambda d: d.strftime("%Y-%m-%d %H:%M") if d else None  # noqa: E731
    assert (fmt(choice.delivered_at), fmt(choice.first_attempt), choice.source, len(choice.refused)) == \
        (expect_at, expect_first, expect_source, refused)


def test_refusal_reasons_name_the_source_and_both_times():
    choice = choose_delivery([Candidate("shop", t("2026-12-01 09:00"))], shipped_at=SHIPPED, now=NOW)
    assert choice.refused == ("shop delivery time 2026-12-01 09:00:00 is before MALL shipped the order "
                              "(2026-12-01 10:00:00 Prague time)",)


@pytest.mark.parametrize("feed, method, number, methods, expect", [
    ("Zásilkovna", None, "12345", {}, ("packeta", "feed")),
    ("ZASILKOVNA", "pplCz", "00000000001", {"pplCz": "ppl"}, ("packeta", "feed")),  # the feed comes first
    ("Česká pošta", None, None, {}, ("ceska_posta", "feed")),
    ("GLS", None, "Z1234567890", {}, (None, "the feed's carrier 'GLS' has no tracker")),  # never second-guessed
    (None, "pplCz", "Z1234567890", {"pplCz": "ppl"}, ("ppl", "delivery_method")),
    ("", "zasilkovna", "Z1234567890", {}, ("packeta", "number")),
    (None, None, "DR9016151977C", {}, ("ceska_posta", "number")),
    (None, None, "40000000001", {}, ("ppl", "number")),
    (None, None, "1234567890", {}, ("packeta", "number")),
    ("Zásilkovna - Z-BOX", None, None, {}, ("packeta", "feed")),
    ("PPL Parcel CZ Private", None, None, {}, ("ppl", "feed")),
    ("Česká pošta, Balík Do ruky", None, None, {}, ("ceska_posta", "feed")),
    ("DPD Pickup", None, "Z1234567890", {}, (None, "the feed's carrier 'DPD Pickup' has no tracker")),
])
def test_choose_carrier(feed, method, number, methods, expect):
    got = choose_carrier(feed_carrier=feed, delivery_method=method, tracking_number=number,
                         delivery_methods=methods, known=registry())
    assert got == expect


def test_an_unknown_number_shape_chooses_no_carrier():
    name, why = choose_carrier(feed_carrier=None, delivery_method="1", tracking_number="XYZ",
                               delivery_methods={}, known=registry())
    assert name is None and "fits no single carrier" in why
    assert guess_by_name("DHL") is None and guess_by_number("") is None


def test_poll_schedule_4h_then_24h_after_3_days_and_backoff_capped_by_it():
    cfg = CarriersConfig()
    young = SHIPPED + timedelta(days=1)
    old = SHIPPED + timedelta(days=4)
    assert next_poll_at(SHIPPED, young, cfg) - young == timedelta(hours=4)
    assert next_poll_at(SHIPPED, old, cfg) - old == timedelta(hours=24)
    assert [next_poll_at(SHIPPED, young, cfg, failures=n) - young for n in (1, 2, 3, 7)] == \
        [timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=20), timedelta(hours=4)]
    assert next_poll_at(SHIPPED, young, cfg, failures=1, retry_after_s=900) - young == timedelta(minutes=15)


def test_every_registered_carrier_has_a_simulator_and_a_settings_model():
    from carriers import load_simulator

    assert {"packeta", "ceska_posta", "ppl"} <= set(registry())
    for name, cls in registry().items():
        sim = load_simulator(name)
        assert sim.name == name and cls.settings_model().base_url.startswith("https://")


# -- the delivery job's step under the one error policy (issue 15 after the core merge) -----------------
def test_policy_for_a_parcels_step():
    from connector.mall.errors import MallNotFound, MallServerError, MallUnauthorized
    from connector.sync.policy import Kind, Op, outcome_for

    ep = "GET /v1/orders/{id}"
    assert outcome_for(Op.DELIVERY_READ, MallNotFound(ep, 404, "no such order")).kind == Kind.DROP
    assert outcome_for(Op.DELIVERY_READ, MallUnauthorized(ep, 401, "bad key")).kind == Kind.STOP
    assert outcome_for(Op.DELIVERY_READ, MallServerError(ep, 503, "down")).kind == Kind.RETRY
    assert outcome_for(Op.DELIVERY_READ, ValueError("carrier sent garbage")).kind == Kind.RETRY
