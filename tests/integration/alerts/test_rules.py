"""Each alert rule against the real parts: a CSV shop, the sandbox over HTTP, the ledger, a real SMTP
sink and a real webhook sink. Per rule: raised once, sent in the digest (or at once when urgent),
not repeated within repeat_after_s, and resolved once when it clears."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest

from connector.mapping import load_mapping
from connector.sync.deadlines import check_deadlines
from tests.integration.alerts.conftest import DIGEST_S, REPEAT_S

pytestmark = pytest.mark.e2e

WAITING = "Čeká na dodavatele"


def open_orders(sandbox, n):
    return [o["id"] for o in sandbox.state.create_orders(n, status="open")]


def quiet_evaluations(world, n=5, step=30):
    """n evaluations spread over n*step seconds; returns how many messages went out meanwhile."""
    before = len(world.mails) + len(world.posts)
    for _ in range(n):
        world.later(step)
        world.evaluate()
    return len(world.mails) + len(world.posts) - before


def test_unmapped_status_per_status_with_count_example_and_the_line_to_add(world):
    a, b, c = open_orders(world.sandbox, 3)
    world.shop.write_feed([{"mall_order_id": a, "status": WAITING}, {"mall_order_id": b, "status": WAITING},
                           {"mall_order_id": c, "status": "packing"}])
    world.sync()
    world.evaluate()
    assert world.mails == [] and world.posts == []  # not urgent: it waits for the digest

    world.later(DIGEST_S)
    world.evaluate()
    assert len(world.mails) == 1 and len(world.posts) == 1  # one message per channel
    body = world.mails[0]["body"]
    title = world.posts[0]["title"]
    assert WAITING in title and "2 orders" in title
    assert f"for example order {min(a, b)}" in body
    mapping = world.services.mapping()
    assert f'statuses = ["new", "{WAITING}"]' in body  # the exact [ignore] line for this mapping file
    assert f'"{WAITING}" = "shipping"' in body and str(mapping.path) in body

    assert quiet_evaluations(world, n=10) == 0  # raised once: not in every digest

    # The admin adds the line; the reloaded mapping resolves it.
    text = mapping.path.read_text(encoding="utf-8").replace('statuses = ["new"]', f'statuses = ["new", "{WAITING}"]')
    fixed = world.shop.folder / "mapping.toml"
    fixed.write_text(text, encoding="utf-8")
    world.services.mapping.replace(load_mapping(fixed))
    world.evaluate()
    world.later(DIGEST_S)
    world.evaluate()
    assert [p["title"] for p in world.posts][-1].startswith("Resolved: ")
    assert WAITING in world.posts[-1]["title"]
    assert quiet_evaluations(world) == 0


def test_rejected_rows_per_kind_with_file_line_examples(world):
    (a, b) = open_orders(world.sandbox, 2)
    world.shop.write_feed([{"mall_order_id": a, "status": "packing"},
                           {"mall_order_id": b, "status": "delivered", "delivered_at": "2026-13-01"},
                           {"mall_order_id": "12x", "status": "packing"}])
    world.sync()
    world.evaluate()
    world.later(DIGEST_S)
    world.evaluate()
    assert len(world.posts) == 1
    text = world.posts[0]["text"]
    assert "2 new" in world.posts[0]["title"]
    feed = str(world.shop.feed)
    assert f"{feed}:3: order {b}: delivered_at" in text and "2026-13-01" in text  # the bad date, file:line
    assert f"{feed}:4: mall_order_id '12x'" in text  # the bad id, its own kind
    assert "a date that is not a valid date" in text and "mall_order_id missing or not a positive" in text
    world.sync()  # the same feed again
    assert quiet_evaluations(world) == 0  # raised once

    world.shop.write_feed([{"mall_order_id": a, "status": "packing"},
                           {"mall_order_id": b, "status": "delivered", "delivered_at": "2026-12-01 10:00"}])
    world.sync()
    world.evaluate()
    world.later(DIGEST_S)
    world.evaluate()
    assert world.posts[-1]["title"] == "2 resolved"
    assert "Resolved (2):" in world.posts[-1]["text"]


def test_feed_unreadable_is_urgent_and_resolves(world):
    os.remove(world.shop.feed)
    for _ in range(world.services.config.shop.unreadable_polls_alert - 1):
        world.sync()
        world.evaluate()
    assert world.posts == []  # under [shop] unreadable_polls_alert
    world.sync()
    world.evaluate()  # no clock move: urgent goes out at once
    assert [p["title"] for p in world.posts] == ["shop feed unreadable"] and len(world.mails) == 1
    assert "file not found" in world.posts[0]["text"] and "URGENT" in world.posts[0]["text"]
    assert quiet_evaluations(world) == 0

    world.shop.write_feed([])
    world.sync()
    world.evaluate()
    world.later(DIGEST_S)
    world.evaluate()
    assert world.posts[-1]["title"] == "Resolved: shop feed unreadable"
    assert "The shop feed is readable again." in world.posts[-1]["text"]


def test_missing_required_column_is_urgent(world):
    world.shop.feed.write_text("id,status\n1,packing\n", encoding="utf-8")
    os.utime(world.shop.feed, (1, 1))
    summary = world.sync()
    assert summary.exit_code == 65
    world.evaluate()
    assert [p["title"] for p in world.posts] == ["shop feed unusable"]
    assert "no column 'mall_order_id'" in world.posts[0]["text"]
    # Not also reported as "unreadable" after more polls: it was read, it is the wrong shape.
    for _ in range(4):
        world.sync()
        world.evaluate()
    assert [p["title"] for p in world.posts] == ["shop feed unusable"]


def test_empty_feed_after_orders_is_urgent(world):
    (a,) = open_orders(world.sandbox, 1)
    world.shop.write_feed([{"mall_order_id": a, "status": "new"}])
    assert world.sync().exit_code == 0
    world.shop.write_feed([])
    summary = world.sync()
    assert summary.exit_code == 65 and "no order rows, while the previous read had 1" in summary.poll.unavailable
    assert world.sync().exit_code == 65  # unchanged since: still unusable
    world.evaluate()
    assert [p["title"] for p in world.posts] == ["shop feed unusable"]
    world.shop.write_feed([{"mall_order_id": a, "status": "new"}])
    assert world.sync().exit_code == 0
    world.evaluate()
    world.later(DIGEST_S)
    world.evaluate()
    assert world.posts[-1]["title"] == "Resolved: shop feed unusable"


def test_failed_change_in_digest_then_resolved_when_skipped(world):
    (a,) = open_orders(world.sandbox, 1)
    world.shop.write_feed([{"mall_order_id": a, "status": "shipped"}])  # no tracking number
    summary = world.sync()
    assert summary.push.failed == 1
    world.evaluate()
    assert world.posts == []
    world.later(DIGEST_S - 1)
    world.evaluate()
    assert world.posts == []  # not before digest_s
    world.later(1)
    world.evaluate()
    assert [p["title"] for p in world.posts] == [f"order {a}: change failed"]
    assert "tracking number" in world.posts[0]["text"] and "ledger retry" in world.posts[0]["text"]
    assert quiet_evaluations(world) == 0
    [ch] = world.ledger.changes.list(states=("failed",))
    assert world.shop.cli("ledger", "skip", str(ch.id), "--reason", "sent by hand").returncode == 0
    world.evaluate()
    world.later(DIGEST_S)
    world.evaluate()
    assert world.posts[-1]["title"] == f"Resolved: order {a}: change failed"


def test_mall_401_and_403_are_urgent(world, sandbox):
    from connector.mall.client import MallClient, RetryPolicy
    from connector.mall.errors import MallUnauthorized

    codes = []
    client = MallClient(sandbox.url, "wrong-client-id-000000", retry=RetryPolicy(max_attempts=1),
                        on_response=lambda endpoint, code: codes.append(code))
    with pytest.raises(MallUnauthorized):
        client.list_unconfirmed()
    client.close()
    assert codes == [401]  # what the daemon's response hook sees from the real sandbox
    world.mall_rejected = codes[-1]
    world.evaluate()
    assert [p["title"] for p in world.posts] == ["MALL rejects the account"]
    assert "401" in world.posts[0]["text"]
    world.mall_rejected = 403  # same problem, still open: not sent again
    assert quiet_evaluations(world) == 0
    world.mall_rejected = None
    world.evaluate()
    world.later(DIGEST_S)
    world.evaluate()
    assert world.posts[-1]["title"] == "Resolved: MALL rejects the account"


def test_order_near_the_24h_limit_escalates_to_urgent_within_2_hours(world):
    (a,) = open_orders(world.sandbox, 1)
    world.sync(sweep=True)  # the sweep reads it from MALL: the ledger has its open time
    opened = world.ledger.orders.get(a)
    from connector.sync.inbound import order_from_snapshot

    opened_at = order_from_snapshot(opened.snapshot).open
    at_21h = opened_at + timedelta(hours=21)
    assert check_deadlines(world.ledger, now=at_21h, warn_after_h=20, tz="Europe/Prague") == 1
    [item] = [i for i in world.ledger.actions.open() if i["kind"] == "deadline"]
    from zoneinfo import ZoneInfo

    since = opened_at.astimezone(ZoneInfo("Europe/Prague")).strftime("%Y-%m-%d %H:%M:%S")
    assert f"(since {since})" in item["message"] and "times in Europe/Prague" in item["message"]
    world.evaluate(now=at_21h)
    assert world.posts == []  # 3 h left: in the digest
    world.later(DIGEST_S)
    world.evaluate(now=at_21h + timedelta(seconds=DIGEST_S))
    assert [p["title"] for p in world.posts] == [f"order {a} due in 2.9 h"]

    at_22h30 = opened_at + timedelta(hours=22.5)
    world.later(60)
    world.evaluate(now=at_22h30)  # 1.5 h left: urgent, at once, although it was told 60 s ago
    assert len(world.posts) == 2 and world.posts[1]["title"] == f"order {a} due in 1.5 h"
    assert "URGENT" in world.posts[1]["text"]

    # The shop packs it: the item closes by itself and the alert resolves.
    world.shop.write_feed([{"mall_order_id": a, "status": "packing"}])
    world.sync()
    check_deadlines(world.ledger, now=at_22h30, warn_after_h=20)
    world.evaluate(now=at_22h30)
    world.later(DIGEST_S)
    world.evaluate(now=at_22h30)
    assert world.posts[-1]["title"] == f"Resolved: order {a} due in 1.5 h"


def test_handoff_that_cannot_be_written_then_resolved(world):
    outbox = world.shop.outbox
    if outbox.exists():
        os.rmdir(outbox)
    outbox.write_text("not a folder")  # the outbox cannot be written
    open_orders(world.sandbox, 1)
    world.sync(sweep=True)
    world.evaluate()
    world.later(DIGEST_S)
    world.evaluate()
    assert [p["title"] for p in world.posts] == ["cannot hand MALL orders to the shop"]
    assert "The last error: orders-" in world.posts[0]["text"] and str(outbox) in world.posts[0]["text"]
    world.sync()
    assert quiet_evaluations(world) == 0
    outbox.unlink()
    outbox.mkdir()
    world.sync(retry_now=True)  # the core backs a failing hand-off off; retry_now does not wait it out
    world.evaluate()
    world.later(DIGEST_S)
    world.evaluate()
    assert world.posts[-1]["title"] == "Resolved: cannot hand MALL orders to the shop"


def test_open_problem_is_repeated_at_most_once_per_repeat_after(world):
    (a,) = open_orders(world.sandbox, 1)
    world.shop.write_feed([{"mall_order_id": a, "status": WAITING}])
    world.sync()
    world.evaluate()
    world.later(DIGEST_S)
    world.evaluate()
    assert len(world.posts) == 1
    for _ in range(REPEAT_S // 60 - 6):  # just under an hour of polls a minute apart
        world.later(60)
        world.evaluate()
    assert len(world.posts) == 1
    for _ in range(12):
        world.later(60)
        world.evaluate()
    assert len(world.posts) == 2
    assert world.posts[1]["title"].startswith("Still open: ")
    text = world.posts[1]["text"]
    m = re.search(r"open since (\d\d:\d\d:\d\d) \((1 h \d+ min|1 h)\), seen on (\d+) polls", text)
    assert m, text
    assert int(m.group(3)) > 50
    assert not re.search(r"reported \d+x", text) and "Times in Europe/Prague" in text


def test_orders_held_by_an_unmapped_status_move_once_the_mapping_maps_it(world):
    from tests.support.worlds import applied_status_puts

    a, b = open_orders(world.sandbox, 2)
    world.shop.write_feed([{"mall_order_id": a, "status": "Balíme"}, {"mall_order_id": b, "status": "Balíme"}])
    world.sync()
    assert applied_status_puts(world.sandbox) == []
    mapping = world.services.mapping()
    text = mapping.path.read_text(encoding="utf-8").replace('[to_mall]\n', '[to_mall]\n"Balíme" = "shipping"\n', 1)
    fixed = world.shop.folder / "mapping.toml"
    fixed.write_text(text, encoding="utf-8")
    world.services.mapping.replace(load_mapping(fixed))
    world.sync()  # the same, unchanged feed
    assert sorted(p.order_id for p in applied_status_puts(world.sandbox)) == sorted([a, b])
    assert {world.sandbox.state.get(x)["status"] for x in (a, b)} == {"shipping"}
    world.sync()
    world.sync()
    assert len(applied_status_puts(world.sandbox)) == 2  # replayed once, pushed once
    from connector.ledger.alerting import replay_remapped

    assert replay_remapped(world.ledger, world.services.mapping()) == []  # nothing left to replay


def test_alert_evaluation_never_scans_a_table_that_grows_with_the_ledger(world):
    """The rules run after every job: each query must SEARCH by an index, never SCAN a growing table."""
    import re as _re

    from tests.integration.perf.conftest import count_sql, fill_ledger

    fill_ledger(world.ledger, 1, 2_000)
    (a,) = open_orders(world.sandbox, 1)
    world.shop.write_feed([{"mall_order_id": a, "status": WAITING}])
    world.sync()
    with count_sql(world.ledger.engine) as sql:
        world.evaluate()
        world.later(DIGEST_S)
        world.evaluate()
    assert world.posts, "the evaluation did find the unmapped status"
    scans = []
    raw = world.ledger.engine.raw_connection()
    try:
        for q, params in {(q, tuple(p) if isinstance(p, (list, tuple)) else p) for q, p in sql.statements
                          if q.lstrip().upper().startswith("SELECT")}:
            for row in raw.cursor().execute("EXPLAIN QUERY PLAN " + q, params or ()).fetchall():
                m = _re.match(r"SCAN (\w+)", row[-1])
                if m and m.group(1) in ("orders", "changes", "events", "actions", "handoffs", "alerts"):
                    scans.append((row[-1], q))
    finally:
        raw.close()
    assert not scans, scans


def test_needs_action_item_is_alerted_once_and_resolved_when_it_closes_by_itself(world):
    (a,) = [o["id"] for o in world.sandbox.state.create_orders(1, kind="pickup", status="open")]
    world.sync(sweep=True)
    branch = world.sandbox.state.get(a)["branch_id"]
    world.sandbox.state.mall_event(a, "change_branch", branch_id=branch + 1)
    world.sync(sweep=True)
    world.evaluate()
    world.later(DIGEST_S)
    world.evaluate()
    [post] = world.posts
    assert post["title"] == f"order {a} needs a human"
    assert "closes by itself on the order's next status change" in post["text"]
    assert quiet_evaluations(world) == 0
    world.shop.write_feed([{"mall_order_id": a, "status": "packing"}])  # the next status change
    world.sync()
    world.evaluate()
    world.later(DIGEST_S)
    world.evaluate()
    assert world.posts[-1]["title"] == f"Resolved: order {a} needs a human"
    assert len(world.posts) == 2
