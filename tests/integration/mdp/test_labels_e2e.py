"""MALL Delivery labels and serial numbers end to end: a CSV shop, the real ledger, the sandbox over real HTTP.

Counts MALL calls (they are the partner's money): one POST /v1/orders/labels per pass, never a second label set
after an interrupted request, one PUT per item's serial numbers.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from pathlib import Path

import pytest

from connector.sandbox.faults import Faults
from connector.sync import labels as labels_mod
from connector.sync.runner import Services, sync_once
from tests.support.worlds import CsvShop

pytestmark = pytest.mark.e2e

COLUMNS = ["mall_order_id", "status", "shop_order_id", "parcel_count"]


class MdpShop(CsvShop):
    """The CSV shop of the sync tests, with a parcel_count column, [mdp] settings and a serials file."""

    def __init__(self, folder: Path, sandbox, *, mdp: str = ""):
        extra = 'serials = "serials.csv"\n[mdp]\nlabels_dir = "labels"\n' + mdp
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(folder, sandbox, extra=extra)
        self.labels_dir = folder / "labels"
        self.serials = folder / "serials.csv"

    def write_rows(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
        tmp = self.feed.with_suffix(".tmp")
        tmp.write_text(buf.getvalue(), encoding="utf-8")
        os.replace(tmp, self.feed)
        self._bump = getattr(self, "_bump", 0) + 1
        t = time.time() - 5 + self._bump * 0.001
        os.utime(self.feed, (t, t))

    def write_serials(self, rows: list[tuple[int, str, str]]) -> None:
        text = "mall_order_id,item_id,serial_number\n" + "".join(f"{o},{i},{s}\n" for o, i, s in rows)
        tmp = self.serials.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.serials)
        self._sbump = getattr(self, "_sbump", 0) + 1
        t = time.time() - 5 + self._sbump * 0.001
        os.utime(self.serials, (t, t))

    def label_files(self) -> list[Path]:
        return sorted(p for p in self.labels_dir.iterdir() if not p.name.startswith(".")) \
            if self.labels_dir.exists() else []


@pytest.fixture
def shop(tmp_path, sandbox):
    return MdpShop(tmp_path, sandbox)


def run(shop, **kw):
    services = Services(shop.config())
    try:
        return sync_once(services, sweep=kw.pop("sweep", False), **kw), services.ledger
    finally:
        services.close()


def ledger_of(shop):
    from connector.ledger import open_ledger

    return open_ledger(shop.config().ledger.url)


def label_posts(sandbox):
    return sandbox.request_log.find("POST", "/v1/orders/labels")


def mdp_orders(sandbox, n, status="open"):
    return [o["id"] for o in sandbox.state.create_orders(n, kind="mdp", status=status)]


def pdf_text(path: Path) -> str:
    return path.read_bytes().decode("latin-1")


def test_an_mdp_order_to_shipping_with_2_parcels_gets_a_label_file_with_2_barcodes(shop, sandbox):
    (oid,) = mdp_orders(sandbox, 1)
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 2}])
    summary, _ = run(shop)
    assert summary.push.pushed == 1 and summary.push.labels_made == 1
    assert sandbox.state.get(oid)["status"] == "shipping"

    (post,) = label_posts(sandbox)
    assert post.body == {"labels_type": "pdf", "first_position": 1, "labels_per_page": 4,
                         "labels": [{"order_id": oid, "parcel_count": 2}]}
    (made,) = sandbox.state.consignments(oid)
    assert len(made["barcodes"]) == 2

    (path,) = shop.label_files()
    assert path.name.startswith("labels-") and path.name.endswith(f"-{oid}.pdf")
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    content = path.read_bytes()
    assert content.startswith(b"%PDF-1.4") and content.rstrip().endswith(b"%%EOF")
    for code in made["barcodes"]:
        assert code in pdf_text(path)

    ledger = ledger_of(shop)
    try:
        (row,) = ledger.mdp.labels_of(oid)
        assert (row.state, row.parcel_count, row.barcodes, row.file) == ("done", 2, made["barcodes"], str(path))
    finally:
        ledger.close()

    # Another pass with the same feed: no new labels, no call.
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 2}])
    run(shop)
    assert len(label_posts(sandbox)) == 1 and len(shop.label_files()) == 1


def test_orders_pushed_in_one_pass_share_one_labels_request_and_one_file(shop, sandbox):
    mdp = mdp_orders(sandbox, 3)
    (normal,) = [o["id"] for o in sandbox.state.create_orders(1, kind="normal", status="open")]
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": n}
                     for oid, n in zip(mdp + [normal], (1, 2, 3, 1))])
    summary, _ = run(shop)
    assert summary.push.pushed == 4 and summary.push.labels_calls == 1
    (post,) = label_posts(sandbox)
    assert post.body["labels"] == [{"order_id": oid, "parcel_count": n} for oid, n in zip(mdp, (1, 2, 3))]
    (path,) = shop.label_files()
    assert path.name.endswith("-" + "-".join(str(i) for i in mdp) + ".pdf")
    text = pdf_text(path)
    for oid in mdp:
        for code in sandbox.state.consignments(oid)[-1]["barcodes"]:
            assert code in text
    assert sandbox.state.consignments(normal) == []  # not MALL Delivery: no labels


def test_zpl_labels_and_page_settings_go_to_mall(tmp_path, sandbox):
    shop = MdpShop(tmp_path, sandbox, mdp='labels_type = "zpl"\nlabels_per_page = 1\n')
    (oid,) = mdp_orders(sandbox, 1)
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 3}])
    run(shop)
    (post,) = label_posts(sandbox)
    assert post.body["labels_type"] == "zpl" and post.body["labels_per_page"] == 1
    (path,) = shop.label_files()
    text = path.read_text()
    assert path.suffix == ".zpl" and text.count("^XA") == 3 and text.count("^XZ") == 3
    for code in sandbox.state.consignments(oid)[-1]["barcodes"]:
        assert f"^FD{code}^FS" in text


def test_an_ambiguous_labels_answer_is_settled_from_the_consignments_without_a_second_set(shop, sandbox):
    mdp = mdp_orders(sandbox, 2)
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 2} for oid in mdp])
    # MALL makes the labels, then the answer is lost (500 after applying it).
    sandbox.faults = Faults(error_after_apply_rate=1.0, methods=("POST",))
    run(shop)
    assert len(label_posts(sandbox)) == 1
    assert shop.label_files() == []
    sandbox.faults = Faults()
    sandbox.request_log.clear()
    summary, _ = run(shop)
    assert label_posts(sandbox) == []  # never asked again ...
    assert [e.order_id for e in sandbox.request_log.gets() if e.path.endswith("/consignments")] == mdp  # ... read
    assert summary.push.labels_made == 2
    assert all(len(sandbox.state.consignments(oid)) == 1 for oid in mdp)  # one label set per order
    files = shop.label_files()
    assert len(files) == 2 and all(f.read_bytes().startswith(b"%PDF") for f in files)
    ledger = ledger_of(shop)
    try:
        for oid in mdp:
            (row,) = ledger.mdp.labels_of(oid)
            assert row.state == "done" and row.barcodes == sandbox.state.consignments(oid)[0]["barcodes"]
    finally:
        ledger.close()


def test_a_crash_after_mall_made_the_labels_is_resent_without_a_duplicate_set(shop, sandbox, monkeypatch):
    mdp = mdp_orders(sandbox, 2)
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 1} for oid in mdp])

    class Killed(BaseException):
        """Stands for kill -9 between MALL's answer and the ledger's record."""

    def die(*a, **kw):
        raise Killed()

    monkeypatch.setattr(labels_mod, "write_label_file", die)
    with pytest.raises(Killed):
        run(shop)
    monkeypatch.undo()
    assert len(label_posts(sandbox)) == 1
    ledger = ledger_of(shop)
    try:
        assert {r.state for oid in mdp for r in ledger.mdp.labels_of(oid)} == {"sending"}
    finally:
        ledger.close()

    run(shop)  # the restarted connector
    assert len(label_posts(sandbox)) == 1
    assert all(len(sandbox.state.consignments(oid)) == 1 for oid in mdp)
    assert len(shop.label_files()) == 2


def test_a_request_that_never_reached_mall_is_asked_again_after_reading_the_consignments(shop, sandbox):
    (oid,) = mdp_orders(sandbox, 1)
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 2}])
    sandbox.faults = Faults(error_rate=1.0, methods=("POST",), error_status=503)
    run(shop)
    assert sandbox.state.consignments(oid) == []
    sandbox.faults = Faults()
    run(shop)
    assert len(sandbox.state.consignments(oid)) == 1 and len(shop.label_files()) == 1


def test_a_parcel_count_change_before_shipped_asks_for_new_labels(shop, sandbox):
    (oid,) = mdp_orders(sandbox, 1)
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 1}])
    run(shop)
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 3}])
    run(shop)
    posts = label_posts(sandbox)
    assert [p.body["labels"] for p in posts] == [[{"order_id": oid, "parcel_count": 1}],
                                                 [{"order_id": oid, "parcel_count": 3}]]
    ledger = ledger_of(shop)
    try:
        rows = ledger.mdp.labels_of(oid)
        assert [(r.state, r.parcel_count, len(r.barcodes)) for r in rows] == [("done", 1, 1), ("done", 3, 3)]
    finally:
        ledger.close()


def test_a_parcel_count_change_after_shipped_is_refused_with_a_reason(shop, sandbox):
    (oid,) = mdp_orders(sandbox, 1)
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 2}])
    run(shop)
    sandbox.state.mall_event(oid, "mdp_ship")  # the carrier took it: MALL sets shipped
    run(shop, sweep=True)  # the connector learns it
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 4}])
    run(shop)
    assert len(label_posts(sandbox)) == 1  # never asked MALL for the frozen order
    ledger = ledger_of(shop)
    try:
        rows = ledger.mdp.labels_of(oid)
        assert [(r.state, r.parcel_count) for r in rows] == [("done", 2), ("refused", 4)]
        assert "after MALL has the order shipped" in rows[-1].reason and "2 parcel(s) stay valid" in rows[-1].reason
        assert any("labels refused" in m for _, _, m in ledger.orders.events_for(oid))
        (action,) = [a for a in ledger.actions.open() if a["mall_order_id"] == oid]
        assert action["kind"] == "labels" and "no labels for 4 parcel(s)" in action["message"]
    finally:
        ledger.close()
    run(shop)  # refused once, not again and again
    ledger = ledger_of(shop)
    try:
        assert len(ledger.mdp.labels_of(oid)) == 2
    finally:
        ledger.close()


def test_the_sandbox_refuses_a_new_parcel_count_once_shipped(shop, sandbox):
    """When the ledger has not seen shipped yet, MALL's own refusal lands in the ledger as the reason."""
    (oid,) = mdp_orders(sandbox, 1)
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 2}])
    run(shop)
    sandbox.state.mall_event(oid, "mdp_ship")
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 5}])
    run(shop)
    assert [p.status_code for p in label_posts(sandbox)] == [200, 400]
    ledger = ledger_of(shop)
    try:
        last = ledger.mdp.labels_of(oid)[-1]
        assert last.state == "refused" and "frozen" in last.reason
    finally:
        ledger.close()


def test_the_print_command_gets_the_files_as_arguments_never_through_a_shell(tmp_path, sandbox):
    record = tmp_path / "printed.json"
    script = tmp_path / "fake_lp.py"
    script.write_text("import json, sys\n"
                      f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    canary = tmp_path / "pwned"
    command = json.dumps([sys.executable, str(script), "-d", f"LABELS; touch {canary}", f"$(touch {canary})"])
    shop = MdpShop(tmp_path / "shop", sandbox, mdp=f"print_command = {command}\n")
    mdp = mdp_orders(sandbox, 2)
    shop.write_rows([{"mall_order_id": oid, "status": "packing"} for oid in mdp])
    run(shop)
    (argv,) = [json.loads(line) for line in record.read_text().splitlines()]
    (path,) = shop.label_files()
    assert argv == ["-d", f"LABELS; touch {canary}", f"$(touch {canary})", str(path)]
    assert not canary.exists()
    ledger = ledger_of(shop)
    try:
        assert any(f"printed {path.name}" in m for _, _, m in ledger.orders.events_for(mdp[0]))
    finally:
        ledger.close()


def test_a_failing_print_command_is_recorded_and_the_labels_stay_made(tmp_path, sandbox):
    shop = MdpShop(tmp_path / "shop", sandbox, mdp='print_command = ["/nonexistent/lp", "-d", "X"]\n')
    (oid,) = mdp_orders(sandbox, 1)
    shop.write_rows([{"mall_order_id": oid, "status": "packing"}])
    summary, _ = run(shop)
    assert summary.push.labels_made == 1 and summary.exit_code == 0
    ledger = ledger_of(shop)
    try:
        assert ledger.mdp.labels_of(oid)[0].state == "done"
        assert any("not found" in m and "not printed" in m for _, _, m in ledger.orders.events_for(oid))
    finally:
        ledger.close()


def test_a_bad_parcel_count_in_the_feed_names_the_line(shop, sandbox):
    (oid,) = mdp_orders(sandbox, 1)
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 101}])
    summary, _ = run(shop)
    (problem,) = summary.poll.problems
    assert problem.line == 2 and "parcel_count '101'" in problem.message and "1 to 100" in problem.message
    assert label_posts(sandbox) == []


# -- serial numbers -------------------------------------------------------------------------------------------------


def serial_puts(sandbox):
    return [e for e in sandbox.request_log.puts() if e.path.endswith("/serial-numbers")]


def test_serial_numbers_are_sent_once_and_again_when_they_change(shop, sandbox):
    (order,) = sandbox.state.create_orders(1, kind="normal", status="open")
    oid, item = order["id"], order["items"][0]["id"]
    shop.write_serials([(oid, item, "SN-1"), (oid, item, "SN-2")])
    summary, _ = run(shop)
    (put,) = serial_puts(sandbox)
    assert put.body == ["SN-1", "SN-2"] and summary.push.serials_sent == 1
    assert sandbox.state.get(oid)["items"][0]["serial_numbers"] == ["SN-1", "SN-2"]
    shop.write_serials([(oid, item, "SN-1"), (oid, item, "SN-2")])  # rewritten, same lists
    run(shop)
    run(shop)
    assert len(serial_puts(sandbox)) == 1
    shop.write_serials([(oid, item, "SN-1"), (oid, item, "SN-3")])
    run(shop)
    assert [p.body for p in serial_puts(sandbox)] == [["SN-1", "SN-2"], ["SN-1", "SN-3"]]


def test_an_unknown_item_is_a_failed_change_with_the_reason_and_the_rest_is_sent(shop, sandbox):
    (order,) = sandbox.state.create_orders(1, kind="normal", status="open")
    oid, item = order["id"], order["items"][0]["id"]
    shop.write_serials([(oid, "NO-SUCH-ITEM", "X1"), (oid, item, "SN-9")])
    summary, _ = run(shop)
    assert [p.status_code for p in serial_puts(sandbox)] == [404, 200]
    assert sandbox.state.get(oid)["items"][0]["serial_numbers"] == ["SN-9"]
    ledger = ledger_of(shop)
    try:
        rows = {r.item_id: r for r in ledger.mdp.serials_of(oid)}
        assert rows["NO-SUCH-ITEM"].state == "failed" and "NO-SUCH-ITEM" in rows["NO-SUCH-ITEM"].reason
        assert rows[item].state == "done"
    finally:
        ledger.close()
    run(shop)
    assert len(serial_puts(sandbox)) == 2  # the failed item is not hammered


def test_an_unusable_labels_dir_keeps_the_labels_made_and_says_how_to_get_the_file(tmp_path, sandbox):
    shop = MdpShop(tmp_path / "shop", sandbox)
    shop.labels_dir.write_text("not a folder")  # mkdir fails
    (oid,) = mdp_orders(sandbox, 1)
    shop.write_rows([{"mall_order_id": oid, "status": "packing"}])
    run(shop)
    run(shop)
    assert len(label_posts(sandbox)) == 1 and len(sandbox.state.consignments(oid)) == 1  # no loop, no second set
    ledger = ledger_of(shop)
    try:
        (row,) = ledger.mdp.labels_of(oid)
        assert row.state == "done" and row.file is None
        assert "could not be written" in row.reason and f"mall-connector labels {oid}" in row.reason
    finally:
        ledger.close()


def test_kill_9_while_the_labels_request_is_in_flight_makes_no_second_set(shop, sandbox):
    """The real thing: `sync-once` is SIGKILLed while MALL is still working on the labels request (the sandbox
    answers it 2 s late but makes the labels). The next `sync-once` re-reads the consignments: no second POST."""
    import signal
    import sqlite3

    mdp = mdp_orders(sandbox, 2)
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 2} for oid in mdp])
    sandbox.faults = Faults(latency_ms=2000, methods=("POST",))
    proc = shop.popen("sync-once", "--no-sweep")
    db = shop.folder / "ledger.db"

    def sending() -> int:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
                return con.execute("SELECT count(*) FROM mdp_labels WHERE state = 'sending'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    deadline = time.monotonic() + 60
    while sending() < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # The ledger says "sending" before the request leaves; kill only once MALL has the request in hand (it then
    # works on it for 2 s), or the kill may land before MALL ever saw it and there would be nothing to finish.
    while sandbox.arrived("POST", "/v1/orders/labels") < 1:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while not all(sandbox.state.consignments(oid) for oid in mdp):  # MALL finishes the request it got
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sandbox.faults = Faults()
    assert shop.label_files() == []

    done = shop.cli("sync-once", "--no-sweep")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(label_posts(sandbox)) == 1
    assert all(len(sandbox.state.consignments(oid)) == 1 for oid in mdp)
    assert len(shop.label_files()) == 2  # one per order, from the consignments
