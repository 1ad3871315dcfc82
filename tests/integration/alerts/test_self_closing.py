"""Needs-action items that close themselves when the evidence appears, and `ledger done` in bulk.

A FastCentrik shop (XML export file) against the sandbox over HTTP, the real ledger, the CLI as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import select

from connector.ledger import schema as s
from connector.sync.runner import sync_once
from tests.support.worlds import FcShop

pytestmark = pytest.mark.e2e


@pytest.fixture
def fc(tmp_path, sandbox):
    shop = FcShop(tmp_path, sandbox)
    shop.write([])
    return shop


def cli(fc, *args):
    return subprocess.run([sys.executable, "-m", "connector", "--config", str(fc.config_path), *args],
                          capture_output=True, text=True, timeout=60, cwd=fc.folder)


def items(fc) -> list[dict]:
    r = cli(fc, "ledger", "list", "--needs-action", "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def actions(services) -> dict[int, dict]:
    with services.ledger.read() as c:
        return {r.id: dict(r._mapping) for r in c.execute(select(s.actions))}


def run(fc, **kw):
    services = fc.services()
    try:
        return sync_once(services, **kw), actions(services)
    finally:
        services.close()


def test_create_it_in_fastcentrik_closes_when_the_feed_lists_the_order(fc, sandbox):
    a, b = [o["id"] for o in sandbox.state.create_orders(2, status="open")]
    run(fc)
    listed = items(fc)
    new = {i["mall_order_id"]: i for i in listed if "create it in FastCentrik" in i["what to do"]}
    assert set(new) == {a, b}
    assert new[a]["kind"] == "shop_action" and new[a]["closes"] == "by itself when the shop feed lists the order"

    fc.write([{"MALL_ORDER_ID": a, "STATUS": "nevyřízená"}])  # the admin created order a in FastCentrik
    _, acts = run(fc, sweep=False)
    still = {i["mall_order_id"] for i in items(fc) if "create it in FastCentrik" in i["what to do"]}
    assert still == {b}
    closed = acts[new[a]["id"]]
    assert closed["closed_by"] == "itself" and f"the shop feed lists order {a}" in closed["done_note"]

    show = cli(fc, "ledger", "show", str(a))
    assert show.returncode == 0 and f"closed by itself" in show.stdout and f"the shop feed lists order {a}" in show.stdout
    assert "(times in Europe/Prague)" in show.stdout


def test_set_it_to_stornovano_closes_when_the_feed_shows_a_cancelled_status(fc, sandbox):
    (a,) = [o["id"] for o in sandbox.state.create_orders(1, status="open")]
    run(fc)
    fc.write([{"MALL_ORDER_ID": a, "STATUS": "nevyřízená"}])
    run(fc, sweep=False)
    sandbox.state.mall_event(a, "customer_cancel")
    run(fc)
    [cancel] = [i for i in items(fc) if "cancelled by the customer" in i["what to do"]]
    assert cancel["closes"] == "by itself when the shop feed shows it cancelled"

    fc.write([{"MALL_ORDER_ID": a, "STATUS": "vyřizuje se"}])  # not a cancel: stays open
    run(fc, sweep=False)
    assert cancel["id"] in {i["id"] for i in items(fc)}
    fc.write([{"MALL_ORDER_ID": a, "STATUS": "Stornováno"}])  # mapped to cancelled (case ignored)
    _, acts = run(fc, sweep=False)
    assert cancel["id"] not in {i["id"] for i in items(fc)}
    assert acts[cancel["id"]]["closed_by"] == "itself" and "(cancelled)" in acts[cancel["id"]]["done_note"]


def test_new_branch_closes_on_the_next_status_change(fc, sandbox):
    (a,) = [o["id"] for o in sandbox.state.create_orders(1, kind="pickup", status="open")]
    run(fc)
    fc.write([{"MALL_ORDER_ID": a, "STATUS": "nevyřízená"}])
    run(fc, sweep=False)
    branch = sandbox.state.get(a)["branch_id"]
    sandbox.state.mall_event(a, "change_branch", branch_id=branch + 1)
    run(fc)
    [moved] = [i for i in items(fc) if i["kind"] == "branch_change"]
    assert moved["closes"] == "by itself on the order's next status change"
    run(fc)  # nothing new happened: stays open
    assert moved["id"] in {i["id"] for i in items(fc)}

    fc.write([{"MALL_ORDER_ID": a, "STATUS": "vyřizuje se"}])  # the shop packs it (→ shipping on MALL)
    _, acts = run(fc, sweep=False)
    assert moved["id"] not in {i["id"] for i in items(fc)}
    assert acts[moved["id"]]["closed_by"] == "itself"


def test_credit_note_stays_open_until_done_by_hand(fc, sandbox):
    (a,) = [o["id"] for o in sandbox.state.create_orders(1, status="delivered")]
    fc.write([{"MALL_ORDER_ID": a, "STATUS": "stornováno"}])
    run(fc, sweep=False)
    [credit] = [i for i in items(fc) if i["kind"] == "credit_note"]
    assert credit["closes"] == "only by hand: mall-connector ledger done ID"
    fc.write([{"MALL_ORDER_ID": a, "STATUS": "vyřízená", "TRACKING_NUMBER": "X1", "CARRIER": "PPL"}])
    run(fc, sweep=False)  # later feed rows never close it
    assert credit["id"] in {i["id"] for i in items(fc)}
    r = cli(fc, "ledger", "done", str(credit["id"]), "--note", "credit note 2026/17 sent")
    assert r.returncode == 0 and "1 item(s) done" in r.stdout
    assert credit["id"] not in {i["id"] for i in items(fc)}
    show = cli(fc, "ledger", "show", str(a))
    assert "done by hand" in show.stdout and "credit note 2026/17 sent" in show.stdout


def test_done_with_several_ids_kind_and_all(fc, sandbox):
    ids = [o["id"] for o in sandbox.state.create_orders(5, status="open")]
    (d,) = [o["id"] for o in sandbox.state.create_orders(1, status="delivered")]
    fc.write([{"MALL_ORDER_ID": d, "STATUS": "stornováno"}])
    run(fc)
    listed = items(fc)
    new = sorted(i["id"] for i in listed if i["kind"] == "shop_action")
    assert len(new) == 5 and sum(i["kind"] == "credit_note" for i in listed) == 1

    r = cli(fc, "ledger", "done", str(new[0]), str(new[1]))
    assert r.returncode == 0 and f"2 item(s) done: {new[0]}, {new[1]}" in r.stdout
    r = cli(fc, "ledger", "done", str(new[0]), str(new[2]))  # one already done: named, the other still cleared
    assert r.returncode == 1 and f"no open needs-action item {new[0]}" in r.stderr and "1 item(s) done" in r.stdout
    r = cli(fc, "ledger", "done", "--kind", "shop_actoin")  # a typo: nothing closed, the open kinds named
    assert r.returncode == 0 and "no open needs-action item matched kind 'shop_actoin'" in r.stdout
    assert "open kinds: credit_note, shop_action" in r.stdout
    r = cli(fc, "ledger", "done", "--kind", "shop_action")
    assert r.returncode == 0 and "2 item(s) done" in r.stdout
    assert [i["kind"] for i in items(fc)] == ["credit_note"]
    r = cli(fc, "ledger", "done", "--all")
    assert r.returncode == 0 and items(fc) == []
    r = cli(fc, "ledger", "done")
    assert r.returncode == 2 and "give item ids, --kind KIND or --all" in r.stderr
    assert len(ids) == 5
