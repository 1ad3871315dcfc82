"""Delivery from the carrier, over real HTTP: the MALL sandbox and each carrier's simulator (issue 15 item 2/6).

Covers delivered, returned, not found, outage, 5xx, timeout and a garbage answer; calls are counted on the
simulators and MALL's PUTs on the sandbox. Time moves by the delivery job's clock, never by sleeping.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from connector.ledger import schema as s
from connector.sync.common import PRAGUE
from connector.sync.runner import Services, sync_once
from tests.integration.carriers.conftest import FMT, PACKETA_API_SECRET, PPL_CLIENT_SECRET, after, carriers_toml, shipped_order
from tests.support.worlds import CsvShop

pytestmark = pytest.mark.e2e


def make_shop(tmp_path, sandbox, sims, **kw) -> tuple[CsvShop, Services]:
    shop = CsvShop(tmp_path, sandbox, extra=carriers_toml(sims, **kw))
    return shop, Services(shop.config())


def parcel(services, oid) -> dict:
    with services.ledger.read() as c:
        return dict(c.execute(s.parcels.select().where(s.parcels.c.mall_order_id == oid)).one()._mapping)


def puts(sandbox, oid, status):
    return [r.body for r in sandbox.request_log.puts(oid) if (r.body or {}).get("status") == status]


def alerts_for(services) -> list[tuple[str, str]]:
    """The alerts the daemon's rules send for the ledger as it is (one evaluation, a recording sender)."""
    from connector.alerts import Alerter
    from connector.daemon import evaluate_alerts

    sent = []

    class Sink:
        name = "test"

        def send(self, title, text):
            sent.append((title, text))

    from tests.support.sinks import FakeClock

    clock = FakeClock()  # issue 14: a problem that is not urgent goes out in the next digest ([alerts] digest_s)
    alerter = Alerter(services.config.alerts, services.ledger, senders=[Sink()], clock=clock)
    evaluate_alerts(alerter, services.ledger, services.config, unauthorized=False, rate_limited_for_s=None)
    clock.advance(services.config.alerts.digest_s)
    evaluate_alerts(alerter, services.ledger, services.config, unauthorized=False, rate_limited_for_s=None)
    return sent


def at_clock(services, dt: datetime):
    services.delivery.clock = lambda: dt.astimezone(timezone.utc)


def test_packeta_reports_delivered_and_mall_gets_the_carriers_time(tmp_path, sandbox, sims):
    oid, shipped = shipped_order(sandbox)
    delivered, attempt = after(shipped, 0.6), after(shipped, 0.3)
    sims["packeta"].deliver("Z1234567890", delivered, attempt=attempt, shipped=shipped)
    shop, services = make_shop(tmp_path, sandbox, sims)
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "Z1234567890",
                      "carrier": "Zásilkovna"}])
    try:
        first = sync_once(services, sweep=False)
        second = sync_once(services, sweep=False)
        p = parcel(services, oid)
    finally:
        services.close()
    order = sandbox.state.get(oid)
    assert order["status"] == "delivered"
    assert order["delivered_at"] == delivered.strftime(FMT) and order["first_delivery_attempt"] == attempt.strftime(FMT)
    assert len(puts(sandbox, oid, "delivered")) == 1
    assert sims["packeta"].request_count("/api/rest") == 1  # one call; the second pass asks nobody
    assert first.delivery.calls == 1 and second.delivery.calls == 0
    assert p["state"] == "delivered" and p["carrier"] == "packeta" and p["carrier_by"] == "feed" and p["polls"] == 1


def test_carrier_chosen_by_delivery_method_then_by_number_shape(tmp_path, sandbox, sims):
    a, sa = shipped_order(sandbox)
    b, sb = shipped_order(sandbox)
    sims["ppl"].deliver("40000000001", after(sa), shipped=sa)
    sims["ceska_posta"].deliver("DR9016151977C", after(sb), shipped=sb)
    method_a = sandbox.state.get(a)["delivery_method"]
    shop, services = make_shop(tmp_path, sandbox, sims, extra=f'delivery_methods = {{"{method_a}" = "ppl"}}')
    shop.write_feed([{"mall_order_id": a, "status": "shipped", "tracking_number": "40000000001"},
                     {"mall_order_id": b, "status": "shipped", "tracking_number": "DR9016151977C"}])
    try:
        sync_once(services, sweep=False)
        pa, pb = parcel(services, a), parcel(services, b)
    finally:
        services.close()
    assert (pa["carrier"], pa["carrier_by"]) == ("ppl", "delivery_method")
    assert (pb["carrier"], pb["carrier_by"]) == ("ceska_posta", "number")
    assert sandbox.state.get(a)["status"] == "delivered" and sandbox.state.get(b)["status"] == "delivered"
    # Česká pošta gives the date only: the earliest plausible moment of that day is pushed.
    day = after(sb).date()
    expect = max(datetime(day.year, day.month, day.day, tzinfo=PRAGUE), sb)
    assert sandbox.state.get(b)["delivered_at"] == expect.strftime(FMT)


def test_returned_parcel_raises_a_needs_action_item_and_pushes_nothing_by_default(tmp_path, sandbox, sims):
    oid, shipped = shipped_order(sandbox)
    sims["ceska_posta"].add_parcel("NB1249245895U", [("accepted", shipped), ("returned", after(shipped))])
    shop, services = make_shop(tmp_path, sandbox, sims)
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "NB1249245895U",
                      "carrier": "Balíkovna"}])
    try:
        summary = sync_once(services, sweep=False)
        actions = [a for a in services.ledger.actions.open() if a["mall_order_id"] == oid]
    finally:
        services.close()
    assert summary.delivery.returned == 1
    assert [a["kind"] for a in actions] == ["parcel_returned"] and "returned to the sender" in actions[0]["message"]
    assert sandbox.request_log.puts(oid) == [] and sandbox.state.get(oid)["status"] == "shipped"


def test_returned_is_pushed_with_push_returned(tmp_path, sandbox, sims):
    oid, shipped = shipped_order(sandbox)
    sims["ppl"].add_parcel("40000000002", [("accepted", shipped), ("returned", after(shipped))])
    shop, services = make_shop(tmp_path, sandbox, sims, extra="push_returned = true")
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "40000000002", "carrier": "PPL"}])
    try:
        sync_once(services, sweep=False)
        sync_once(services, sweep=False)
    finally:
        services.close()
    assert sandbox.state.get(oid)["status"] == "returned" and len(puts(sandbox, oid, "returned")) == 1


def test_not_found_keeps_asking_on_schedule_within_the_call_budget(tmp_path, sandbox, sims):
    oid, shipped = shipped_order(sandbox)
    shop, services = make_shop(tmp_path, sandbox, sims, extra="max_calls_per_parcel = 2")
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "40000000003", "carrier": "PPL"}])
    now = datetime.now(timezone.utc)
    try:
        sync_once(services, sweep=False)
        p1 = parcel(services, oid)
        sync_once(services, sweep=False)  # not due yet: nobody is asked
        calls_before_due = sims["ppl"].request_count("/shipment")
        for hours in (5, 10, 15):  # three more due times, but the budget is 2 calls
            at_clock(services, now + timedelta(hours=hours))
            sync_once(services, sweep=False)
        p2 = parcel(services, oid)
    finally:
        services.close()
    assert p1["carrier_outcome"] == "not_found" and p1["polls"] == 1 and "not found" in p1["last_error"]
    assert timedelta(hours=3, minutes=59) < p1["next_poll_at"] - now.replace(tzinfo=None) <= timedelta(hours=4, minutes=1)
    assert calls_before_due == 1
    assert p2["polls"] == 2 and sims["ppl"].request_count("/shipment") == 2
    assert sandbox.request_log.puts(oid) == []


@pytest.mark.parametrize("fault", [{"outage": 1}, {"error": 1, "error_status": 503}, {"garbage": 1},
                                   {"delay": 1, "delay_s": 2.5}])
def test_outage_5xx_timeout_and_garbage_are_retried_with_backoff(tmp_path, sandbox, sims, fault):
    oid, shipped = shipped_order(sandbox)
    delivered = after(shipped)
    sims["packeta"].deliver("Z2000000001", delivered, shipped=shipped)
    sims["packeta"].set_faults(**fault)
    shop, services = make_shop(tmp_path, sandbox, sims)
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "Z2000000001",
                      "carrier": "Packeta"}])
    now = datetime.now(timezone.utc)
    try:
        first = sync_once(services, sweep=False)
        p1 = parcel(services, oid)
        at_clock(services, now + timedelta(seconds=30))  # before the backoff (retry_base_s = 60 s) ends: not asked
        sync_once(services, sweep=False)
        calls_during_backoff = sims["packeta"].request_count("/api/rest")
        at_clock(services, now + timedelta(seconds=70))
        sync_once(services, sweep=False)
        p2 = parcel(services, oid)
    finally:
        services.close()
    assert first.delivery.failed_calls == 1 and p1["failures"] == 1 and p1["state"] == "open"
    assert p1["last_error"].startswith("packeta: ")
    assert calls_during_backoff == 1
    assert p2["state"] == "delivered" and p2["failures"] == 0
    assert sandbox.state.get(oid)["delivered_at"] == delivered.strftime(FMT)
    assert len(puts(sandbox, oid, "delivered")) == 1


def test_one_bad_carrier_is_contained_to_its_parcels(tmp_path, sandbox, sims):
    a, sa = shipped_order(sandbox)
    b, sb = shipped_order(sandbox)
    sims["packeta"].set_faults(garbage=-1)
    sims["ppl"].deliver("40000000004", after(sb), shipped=sb)
    shop, services = make_shop(tmp_path, sandbox, sims)
    shop.write_feed([{"mall_order_id": a, "status": "shipped", "tracking_number": "Z3000000001", "carrier": "Packeta"},
                     {"mall_order_id": b, "status": "shipped", "tracking_number": "40000000004", "carrier": "PPL"}])
    try:
        sync_once(services, sweep=False)
        pa = parcel(services, a)
    finally:
        services.close()
    assert pa["failures"] == 1 and "garbage" in pa["last_error"]
    assert sandbox.state.get(b)["status"] == "delivered" and sandbox.state.get(a)["status"] == "shipped"


def test_wrong_credentials_never_reach_logs_errors_or_the_ledger(tmp_path, sandbox, sims, caplog):
    oid, shipped = shipped_order(sandbox)
    sims["packeta"].deliver("Z4000000001", after(shipped), shipped=shipped)
    wrong_password_secret = "wrong-packeta-password-0002"
    shop, services = make_shop(tmp_path, sandbox, sims, packeta_password=wrong_password_secret)
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "Z4000000001",
                      "carrier": "Packeta"}])
    caplog.set_level(logging.DEBUG)
    try:
        sync_once(services, sweep=False)
        p = parcel(services, oid)
        sent = alerts_for(services)
        with services.ledger.read() as c:
            dump = "\n".join(str(tuple(r)) for t in (s.parcels, s.events, s.changes, s.actions)
                             for r in c.execute(t.select()))
    finally:
        services.close()
    assert "IncorrectApiPasswordFault" in p["last_error"]
    assert [t for t, _ in sent if "carrier packeta" in t] == ["carrier packeta refuses the credentials"]
    for secret in (wrong_password_secret, PACKETA_API_SECRET, PPL_CLIENT_SECRET):
        assert secret not in dump and secret not in caplog.text and secret not in repr(sent)


def test_shop_date_and_carrier_both_report_delivered_once_earliest_plausible_wins(tmp_path, sandbox, sims):
    """The shop's time is refused (in the future), so the carrier is asked; its time is pushed, once; when the
    shop then sends a plausible but later time, nothing more goes to MALL."""
    oid, shipped = shipped_order(sandbox)
    carrier_time = after(shipped, 0.4)
    sims["packeta"].deliver("Z5000000001", carrier_time, shipped=shipped)
    shop, services = make_shop(tmp_path, sandbox, sims)
    future = (datetime.now(PRAGUE) + timedelta(days=2)).strftime(FMT)
    row = {"mall_order_id": oid, "status": "shipped", "tracking_number": "Z5000000001", "carrier": "Packeta"}
    shop.write_feed([{**row, "delivered_at": future}])
    try:
        sync_once(services, sweep=False)
        shop.write_feed([{**row, "delivered_at": after(shipped, 0.8).strftime(FMT)}])
        sync_once(services, sweep=False)
        p = parcel(services, oid)
    finally:
        services.close()
    assert sandbox.state.get(oid)["delivered_at"] == carrier_time.strftime(FMT)
    assert len(puts(sandbox, oid, "delivered")) == 1
    assert p["state"] == "delivered" and p["refused"] is not None and "in the future" in p["refused"]


def test_stuck_shipped_order_becomes_a_needs_action_item_and_tracking_stops_after_max_age(tmp_path, sandbox, sims):
    oid, shipped = shipped_order(sandbox)
    shop, services = make_shop(tmp_path, sandbox, sims)
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "Z6000000001",
                      "carrier": "Packeta"}])
    try:
        sync_once(services, sweep=False)
        at_clock(services, shipped + timedelta(days=11))
        sync_once(services, sweep=False)
        actions = [a for a in services.ledger.actions.open() if a["mall_order_id"] == oid]
        at_clock(services, shipped + timedelta(days=31))
        sync_once(services, sweep=False)
        calls = sims["packeta"].request_count("/api/rest")
        at_clock(services, shipped + timedelta(days=40))
        sync_once(services, sweep=False)
        p = parcel(services, oid)
        sent = alerts_for(services)
    finally:
        services.close()
    assert [a["kind"] for a in actions] == ["not_delivered"]
    assert any("MALL pays only after delivered" in text for _, text in sent)
    assert actions[0]["message"].startswith("MALL pays only after delivered: check the parcel")
    assert p["state"] == "expired" and sims["packeta"].request_count("/api/rest") == calls


def test_calls_are_counted_in_metrics_and_shown_by_check(tmp_path, sandbox, sims):
    from click.testing import CliRunner

    from connector.cli import main
    from connector.metrics import Metrics

    oid, shipped = shipped_order(sandbox)
    sims["packeta"].deliver("Z7000000001", after(shipped), shipped=shipped)
    shop = CsvShop(tmp_path, sandbox, extra=carriers_toml(sims))
    shop.write_feed([{"mall_order_id": oid, "status": "shipped", "tracking_number": "Z7000000001",
                      "carrier": "Packeta"}])
    metrics = Metrics()
    services = Services(shop.config(), metrics=metrics)
    try:
        sync_once(services, sweep=False)
    finally:
        services.close()
    text = metrics.render().decode()
    assert 'mall_connector_carrier_calls_total{carrier="packeta",outcome="delivered"} 1.0' in text
    assert 'mall_connector_parcels{state="delivered"} 1.0' in text
    assert "mall_connector_carrier_calls_max_per_parcel 1.0" in text
    result = CliRunner().invoke(main, ["--config", str(shop.config_path), "check"])
    assert "carrier packeta (Packeta / Zásilkovna)" in result.stdout and "credentials set (api_password)" in result.stdout
    assert "1 carrier call(s) so far (packeta 1); most for one parcel 1 of at most 60" in result.stdout
    assert PACKETA_API_SECRET not in result.stdout


def test_each_carriers_batch_limit_is_kept(tmp_path, sandbox, sims):
    """12 Česká pošta parcels: two ParcelHistory calls (ČP takes at most 10 numbers); 3 PPL parcels: one call."""
    rows, cp, ppl = [], [], []
    for i in range(12):
        oid, shipped = shipped_order(sandbox)
        number = f"DR{9000000000 + i}C"
        sims["ceska_posta"].deliver(number, after(shipped), shipped=shipped)
        rows.append({"mall_order_id": oid, "status": "shipped", "tracking_number": number, "carrier": "Česká pošta"})
        cp.append(oid)
    for i in range(3):
        oid, shipped = shipped_order(sandbox)
        number = f"4000000010{i}"
        sims["ppl"].deliver(number, after(shipped), shipped=shipped)
        rows.append({"mall_order_id": oid, "status": "shipped", "tracking_number": number, "carrier": "PPL"})
        ppl.append(oid)
    shop, services = make_shop(tmp_path, sandbox, sims)
    shop.write_feed(rows)
    try:
        summary = sync_once(services, sweep=False)
    finally:
        services.close()
    assert sims["ceska_posta"].request_count("/services/ParcelHistory/getDataAsJson") == 2
    assert sims["ppl"].request_count("/shipment") == 1 and sims["ppl"].request_count("/login/getAccessToken") == 1
    assert summary.delivery.calls == 4 and summary.delivery.polled == 15
    assert all(sandbox.state.get(oid)["status"] == "delivered" for oid in cp + ppl)


def test_a_corrected_tracking_number_is_followed_at_its_carrier(tmp_path, sandbox, sims):
    """The shop first typed a Packeta number, then corrected it to a PPL one: the carrier is chosen again."""
    oid, shipped = shipped_order(sandbox)
    sims["ppl"].deliver("40000000201", after(shipped), shipped=shipped)
    shop, services = make_shop(tmp_path, sandbox, sims)
    row = {"mall_order_id": oid, "status": "shipped"}
    shop.write_feed([{**row, "tracking_number": "Z9100000001"}])
    try:
        sync_once(services, sweep=False)
        before = parcel(services, oid)
        shop.write_feed([{**row, "tracking_number": "40000000201", "carrier": "PPL"}])
        at_clock(services, datetime.now(timezone.utc) + timedelta(minutes=1))  # not yet due for Packeta's 4 h
        sync_once(services, sweep=False)
        p = parcel(services, oid)
    finally:
        services.close()
    assert (before["carrier"], before["carrier_by"], before["carrier_outcome"]) == ("packeta", "number", "not_found")
    assert (p["carrier"], p["carrier_by"], p["state"]) == ("ppl", "feed", "delivered")
    assert sandbox.state.get(oid)["status"] == "delivered"
