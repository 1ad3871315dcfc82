"""Random sequences of shop feeds (and MALL-side changes) against the real engine and the real sandbox over
HTTP: no sequence makes the connector send MALL a transition it refuses, or a status twice, and whatever
MALL allows at the end has reached it.

Each example: a fresh sandbox and ledger, one to three orders (plain or MALL Delivery), then steps. A shop
step rewrites the feed (any status of the default mapping, an ignored one, an unmapped one; tracking and
delivery time present or not) and runs ``sync-once``'s pass. A MALL step changes an order as MALL would
(customer cancel, MALL Delivery ship/deliver/return, branch change) and lets the connector see it (sweep and
inbox, as the webhook would) before the shop moves on.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from connector.mall.statuses import Status
from connector.mapping import load_mapping
from connector.sandbox.server import SandboxServer
from connector.sandbox.state import SandboxError
from connector.sync.runner import Services, sync_once
from tests.conftest import TEST_CLIENT_ID
from tests.unit.property import PROFILE
from tests.unit.property.test_decide_properties import TRACKING, legal
from tests.support.worlds import CsvShop, status_puts

SHOP_STATUSES = ["new", "packing", "shipped", "delivered", "returned", "cancelled", "on hold"]  # on hold: unmapped
MALL_ACTIONS = ["customer_cancel", "mdp_ship", "mdp_deliver", "mdp_return", "change_branch"]

PATH = ["new", "packing", "shipped", "delivered"]  # where an order goes when the shop just works on it
# A shop step either moves the order one step along PATH (mostly) or jumps to any status (cancelled,
# returned, unmapped, back to new ...), with tracking and delivery time present or not.
often = st.sampled_from([True, True, True, False])
shop_step = st.tuples(st.just("shop"), st.integers(0, 2),
                      st.one_of(st.just("advance"), st.just("advance"), st.sampled_from(SHOP_STATUSES)), often, often)
mall_step = st.tuples(st.just("mall"), st.integers(0, 2), st.sampled_from(MALL_ACTIONS), st.just(False), st.just(False))
scenarios = st.fixed_dictionaries({
    "kinds": st.lists(st.sampled_from(["normal", "normal", "mdp", "pickup"]), min_size=1, max_size=3),
    "inbound_first": st.booleans(),  # the connector handed and confirmed the orders before the shop moved
    "steps": st.lists(st.one_of(shop_step, shop_step, shop_step, mall_step), min_size=2, max_size=8),
})


def _row(oid: int, status: str, tracking: bool, delivered: bool) -> dict:
    return {"mall_order_id": oid, "status": status,
            "tracking_number": f"TN{oid}" if tracking else "", "tracking_url": f"https://t.example/{oid}" if tracking else "",
            "delivered_at": "2026-11-20 10:00:00" if delivered else ""}


STATS: dict[str, int] = {}


def test_no_feed_sequence_makes_the_connector_send_an_illegal_transition():
    STATS.clear()
    _examples()
    # Not vacuous: the sequences did make the connector push, and some pushes carried the confirmation.
    assert STATS.get("applied", 0) >= 30 and STATS.get("examples", 0) >= 30, STATS


# No shrinking: each example is a few HTTP round trips, and shrinking a failure could outlast the test timeout;
# the failing scenario is printed as found.
@settings(PROFILE, max_examples=35, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(scenario=scenarios)
def _examples(scenario):
    with tempfile.TemporaryDirectory() as tmp, SandboxServer(TEST_CLIENT_ID, seed=7) as sandbox:
        shop = CsvShop(Path(tmp), sandbox, extra="", sync="refresh_age_s = 300\n")
        services = Services(shop.config())
        try:
            _play(scenario, sandbox, shop, services)
        finally:
            services.close()


def _play(scenario, sandbox, shop, services):
    ids = [sandbox.state.create_orders(1, kind=k, status="open")[0]["id"] for k in scenario["kinds"]]
    if scenario["inbound_first"]:
        sync_once(services)  # sweep → hand to the shop → confirm
    rows: dict[int, dict] = {}
    for kind, i, what, tracking, delivered in scenario["steps"]:
        oid = ids[i % len(ids)]
        if kind == "mall":
            try:
                extra = {"branch_id": 40000 + len(sandbox.state.history(oid))} if what == "change_branch" else {}
                sandbox.state.mall_event(oid, what, **extra)
            except SandboxError:
                continue  # MALL cannot do that to this order now
            services.inbound.sweep()
            services.inbound.run()
            continue
        if what == "advance":
            before = rows.get(oid, {}).get("status", "new")
            what = PATH[min(PATH.index(before) + 1, len(PATH) - 1)] if before in PATH else before
        rows[oid] = _row(oid, what, tracking, delivered)
        shop.write_feed(list(rows.values()))
        sync_once(services, retry_now=True, sweep=False)
    for _ in range(3):  # let deferred pushes (waiting for the inbound, or behind an older change) go through
        sync_once(services, retry_now=True)

    mapping = load_mapping(shop.config().mapping_path)
    STATS["examples"] = STATS.get("examples", 0) + 1
    STATS["applied"] = STATS.get("applied", 0) + sum(e.applied for e in status_puts(sandbox))
    for oid in ids:
        puts = status_puts(sandbox, oid)
        refused = [(e.body, e.status_code) for e in puts if e.status_code != 200]
        assert not refused, f"order {oid}: MALL refused {refused}\nhistory: {sandbox.state.history(oid)}"
        sent = [e.body["status"] for e in puts]
        assert len(sent) == len(set(sent)), f"order {oid}: a status sent twice: {sent}"
        row = rows.get(oid)
        if row is None:
            continue
        look = mapping.lookup(row["status"])
        order = sandbox.state.get(oid)
        current = order["status"]
        if look.kind != "mapped" or current == look.target:
            continue
        target = look.target.value
        complete = True
        if target == "shipped" and not order["mdp"]:
            complete = bool(row["tracking_number"]) and bool(TRACKING.match(row["tracking_number"]))
        if target == "delivered":
            complete = bool(row["delivered_at"])
        assert not (legal(current, target, order["mdp"]) and complete), (
            f"order {oid}: the shop says {row['status']!r}, MALL would take {target} from {current}, "
            f"but it was never pushed; ledger: {services.ledger.changes.list(order_id=oid)}")
    assert all(Status(sandbox.state.get(oid)["status"]) for oid in ids)
