"""issue 14: `orders list` shows the delivery method's name where MALL's data has one."""

from __future__ import annotations

import json

from connector.sync.inbound import store_snapshot


def _rows(cli) -> dict[int, dict]:
    result = cli("orders", "list", "--status", "all", "--format", "json")
    assert result.exit_code == 0, result.output
    return {r["order"]: r for r in json.loads(result.stdout)}


def test_mall_delivery_codes_get_their_name_others_keep_the_code(mall, cli, ledger):
    mdp = mall.create(3, "mdp")
    normal = mall.create(2)
    orders = {o.id: o for o in mall.record(*mdp, *normal)}
    rows = _rows(cli)
    for oid in mdp:
        code = orders[oid].delivery_method
        assert rows[oid]["delivery"].startswith("MALL Delivery") and rows[oid]["delivery"].endswith(f"({code})")
    for oid in normal:
        assert rows[oid]["delivery"] == orders[oid].delivery_method  # no name in MALL's data: the code


def test_a_name_sent_with_the_order_is_shown(mall, cli, ledger):
    (oid,) = mall.create(1)
    (order,) = mall.record(oid)
    named = order.model_copy(update={"delivery_method_name": "PPL Parcel CZ Private"})
    with ledger.write() as c:
        store_snapshot(ledger, c, named)
    assert _rows(cli)[oid]["delivery"] == f"PPL Parcel CZ Private ({order.delivery_method})"
