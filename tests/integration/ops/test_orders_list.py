"""`mall-connector orders list`: the overview from the ledger, its formats, filters and --refresh."""

from __future__ import annotations

import csv
import io
import json

from connector.ledger import schema as s
from connector.sync.inbound import order_from_snapshot


def _json(result) -> list[dict]:
    assert result.exit_code == 0, result.output + getattr(result, "stderr", "")
    return json.loads(result.stdout)


def _setup(mall):
    """Two open orders, one shipping, one delivered, one test order, one cancelled; all recorded."""
    a, b, c = mall.create(3)
    pickup = mall.create(1, "pickup")[0]
    test = mall.create(1, "test")[0]
    cancelled = mall.create(1)[0]
    mall.to_shipping(b)
    mall.to_delivered(c, "2026-11-10 12:00:00")
    mall.put(cancelled, confirmed=True, status="cancelled")
    mall.record(a, b, c, pickup, test, cancelled)
    return a, b, c, pickup, test, cancelled


def test_json_lists_active_orders_with_totals_and_sorted(mall, cli, ledger):
    a, b, c, pickup, test, cancelled = _setup(mall)
    # ship dates differ so the sort is visible: a ships last.
    with ledger.write() as c_:
        ledger.orders.ensure(c_, a, ship_date="2099-01-02")
    with ledger.write() as c_:
        ledger.orders.ensure(c_, pickup, ship_date="2000-01-01")

    rows = _json(cli("orders", "list", "--format", "json"))

    assert [r["order"] for r in rows] == [pickup, b, a]  # open, shipping (shipped none); by ship date then id
    by_id = {r["order"]: r for r in rows}
    wire = mall.wire(pickup)
    assert by_id[pickup]["status"] == "open"
    assert by_id[pickup]["confirmed"] is False
    assert by_id[b]["confirmed"] is True and by_id[b]["status"] == "shipping"
    assert by_id[pickup]["delivery"] == wire["delivery_method"]
    assert by_id[pickup]["branch"] == wire["branch_id"]
    assert by_id[pickup]["customer"] == wire["address"]["name"]
    goods = sum(round(it["price"] * 100) * it["quantity"] for it in wire["items"])
    expected = goods + round(wire["delivery_price"] * 100) + round(wire.get("cod_price", 0) * 100) \
        - round(wire.get("discount", 0) * 100)
    assert by_id[pickup]["total"] == f"{expected // 100}.{expected % 100:02d}"
    assert by_id[pickup]["currency"] == wire["currency"]


def test_status_all_test_and_since(mall, cli):
    a, b, c, pickup, test, cancelled = _setup(mall)

    everything = {r["order"] for r in _json(cli("orders", "list", "--status", "all", "--format", "json"))}
    assert everything == {a, b, c, pickup, cancelled}  # test order left out by default
    with_test = {r["order"] for r in _json(cli("orders", "list", "--status", "all", "--test", "--format", "json"))}
    assert with_test == everything | {test}
    closed = [r["order"] for r in _json(cli("orders", "list", "--status", "delivered,cancelled", "--format", "json"))]
    assert sorted(closed) == sorted([c, cancelled])

    # All were created today (sandbox clock = now): a far-future --since leaves nothing, a past one everything.
    assert _json(cli("orders", "list", "--status", "all", "--since", "2999-01-01", "--format", "json")) == []
    assert len(_json(cli("orders", "list", "--status", "all", "--since", "2000-01-01", "--format", "json"))) == 5


def test_last_sync_is_the_newest_change(mall, cli, ledger):
    a, *_ = _setup(mall)
    with ledger.write() as c:
        ledger.changes.insert(c, key=f"mall:{a}:new", order_id=a, origin="mall", kind="new_order",
                             target_status="open", state="done", reason="handed to the shop in orders-1")
        ledger.changes.insert(c, key=f"shop:{a}:shipping", order_id=a, origin="shop", kind="status",
                             target_status="shipping", state="retry", reason=None)
        c.execute(s.changes.update().where(s.changes.c.key == f"shop:{a}:shipping")
                  .values(last_error="MALL answered 503"))
    with ledger.write() as c_:
        ledger.orders.ensure(c_, a, shop_status="Vyřizuje se")

    rows = {r["order"]: r for r in _json(cli("orders", "list", "--format", "json"))}
    assert rows[a]["last_sync"] == "shipping to MALL retry: MALL answered 503"
    assert rows[a]["shop_status"] == "Vyřizuje se"


def test_table_and_csv(mall, cli):
    a, b, c, pickup, test, cancelled = _setup(mall)

    table = cli("orders", "list")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["order", "status", "confirmed", "ship_date", "delivery", "branch", "customer",
                                "total", "currency", "shop_status", "last_sync"]
    assert set(lines[1]) <= {"-", " "}
    assert {int(ln.split()[0]) for ln in lines[2:]} == {a, b, pickup}
    assert any(str(mall.wire(pickup)["branch_id"]) in ln for ln in lines[2:])

    out = cli("orders", "list", "--format", "csv")
    assert out.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {int(r["order"]) for r in rows} == {a, b, pickup}
    assert {r["confirmed"] for r in rows} == {"yes", "no"}


def test_empty_ledger_says_so(cli, ledger):  # an empty ledger; a missing one is an error (tests/integration/deploy)
    result = cli("orders", "list")
    assert result.exit_code == 0
    assert "no orders in the ledger match" in result.stdout


def test_refresh_reads_only_the_requested_statuses(mall, sandbox, cli, ledger):
    open_ids = mall.create(3)
    shipping = mall.create(1)[0]
    delivered = mall.create(1)[0]
    cancelled = mall.create(1)[0]
    mall.to_shipping(shipping)
    mall.to_delivered(delivered, "2026-11-10 10:00:00")
    mall.put(cancelled, confirmed=True, status="cancelled")
    # The ledger last saw `moved` while open; since then it shipped and the webhook never came.
    moved = open_ids[2]
    mall.record(moved)
    mall.to_shipped(moved)
    sandbox.request_log.clear()

    result = cli("orders", "list", "--status", "open,shipping", "--refresh", "--format", "json")
    rows = _json(result)

    assert sorted(r["order"] for r in rows) == sorted(open_ids[:2] + [shipping])
    lists = sandbox.request_log.find("GET", "/v1/orders")
    assert lists, "the refresh must list orders"
    assert {e.query.get("status") for e in lists} == {"in:open,shipping"}
    details = {e.order_id for e in sandbox.request_log.gets() if e.order_id is not None}
    assert details == set(open_ids) | {shipping}  # never the delivered or cancelled ones
    assert not sandbox.request_log.puts()
    stored = ledger.orders.get_many(open_ids + [shipping, delivered, cancelled])
    assert delivered not in stored and cancelled not in stored
    assert stored[moved].mall_status == "shipped"
    assert order_from_snapshot(stored[shipping].snapshot).status == "shipping"
    assert ("re-read from MALL: 3 listed, 1 no longer listed in these statuses (read one by one), 4 stored"
            in result.stderr)


def test_refresh_pages_and_final_statuses_are_never_listed(mall, sandbox, cli, ledger, monkeypatch):
    from connector.exports import orders as orders_mod

    ids = mall.create(5)
    sandbox.request_log.clear()
    real = orders_mod.refresh
    monkeypatch.setattr(orders_mod, "refresh", lambda *a, **kw: real(*a, **{**kw, "page_size": 2}))

    result = cli("orders", "list", "--status", "open,delivered,cancelled", "--refresh", "--format", "json")

    assert sorted(r["order"] for r in _json(result)) == sorted(ids)
    pages = [e.query for e in sandbox.request_log.find("GET", "/v1/orders")]
    assert [p["page"] for p in pages] == ["1", "2", "3"]
    assert {p["status"] for p in pages} == {"in:open"}
    assert "not re-read from MALL (closed statuses): delivered, cancelled" in result.stderr


def test_refresh_of_closed_statuses_only_asks_mall_nothing(mall, sandbox, cli):
    mall.create(1)
    sandbox.request_log.clear()
    result = cli("orders", "list", "--status", "delivered", "--refresh")
    assert result.exit_code == 0
    assert sandbox.request_log.entries() == []


def test_bad_input_is_one_clear_line(cli):
    for args, needle in [
        (("orders", "list", "--status", "open,opne"), "'opne' is not a MALL status"),
        (("orders", "list", "--status", ","), "give at least one status"),
        (("orders", "list", "--since", "2026-13-01"), "--since"),
        (("orders", "list", "--format", "xml"), "--format"),
    ]:
        result = cli(*args)
        assert result.exit_code == 2, args
        assert needle in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout


def test_refresh_failure_is_one_line_without_the_client_id(mall, sandbox, cli, config_file):
    from tests.conftest import TEST_CLIENT_ID

    mall.create(1)
    config_file.write_text(config_file.read_text().replace(TEST_CLIENT_ID, "wrong-client-id-0123456789"))

    result = cli("orders", "list", "--refresh")

    assert result.exit_code == 1
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: could not re-read the orders from MALL:"), err
    assert "401" in err[0] and "wrong-client-id" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
