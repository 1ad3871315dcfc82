"""`mall-connector labels ORDER_ID…` and `ledger show` as a partner runs them: real CLI, real sandbox."""

from __future__ import annotations

import json
import sys

import pytest

from tests.integration.mdp.test_labels_e2e import MdpShop, label_posts, mdp_orders, run

pytestmark = pytest.mark.e2e


@pytest.fixture
def printing_shop(tmp_path, sandbox):
    record = tmp_path / "printed.jsonl"
    script = tmp_path / "fake_lp.py"
    script.write_text("import json, sys\n"
                      f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    shop = MdpShop(tmp_path / "shop", sandbox,
                   mdp=f"print_command = {json.dumps([sys.executable, str(script), '-d', 'LABELS'])}\n")
    shop.record = record
    return shop


def printed(shop):
    return [json.loads(line) for line in shop.record.read_text().splitlines()] if shop.record.exists() else []


def test_labels_reprints_the_files_and_ledger_show_lists_files_and_barcodes(printing_shop, sandbox):
    shop = printing_shop
    a, b = mdp_orders(sandbox, 2)
    shop.write_rows([{"mall_order_id": a, "status": "packing", "parcel_count": 2},
                     {"mall_order_id": b, "status": "packing", "parcel_count": 1}])
    run(shop)
    (path,) = shop.label_files()
    assert printed(shop) == [["-d", "LABELS", str(path)]]  # printed once when made

    done = shop.cli("labels", str(a), str(b))
    assert done.returncode == 0, done.stderr
    assert f"order {a}: {path}" in done.stdout and f"order {b}: {path}" in done.stdout
    assert printed(shop)[-1] == ["-d", "LABELS", str(path)]  # one file for both: given once
    assert len(label_posts(sandbox)) == 1  # re-printing never asks MALL for new labels

    show = shop.cli("ledger", "show", str(a))
    assert show.returncode == 0, show.stderr
    barcodes = sandbox.state.consignments(a)[-1]["barcodes"]
    assert "labels and serial numbers" in show.stdout
    assert f"labels done: 2 parcel(s), barcodes {', '.join(barcodes)}, file {path}" in show.stdout


def test_labels_fetches_a_deleted_file_again_from_the_consignments(printing_shop, sandbox):
    shop = printing_shop
    (oid,) = mdp_orders(sandbox, 1)
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 3}])
    run(shop)
    (path,) = shop.label_files()
    path.unlink()
    sandbox.request_log.clear()
    done = shop.cli("labels", "--no-print", str(oid))
    assert done.returncode == 0, done.stderr
    assert "fetched again from MALL" in done.stdout
    (again,) = shop.label_files()
    assert again.read_bytes().startswith(b"%PDF")
    assert label_posts(sandbox) == [] and len(sandbox.request_log.gets(f"/v1/orders/{oid}/consignments")) == 1
    assert len(printed(shop)) == 1  # --no-print


def test_labels_for_an_order_without_labels_exits_2_with_a_reason(printing_shop, sandbox):
    shop = printing_shop
    (oid,) = [o["id"] for o in sandbox.state.create_orders(1, kind="normal", status="open")]
    done = shop.cli("labels", str(oid))
    assert done.returncode == 2
    assert f"order {oid}: no labels on MALL yet" in done.stderr and "Traceback" not in done.stderr


def test_sync_once_reports_the_labels_it_made(printing_shop, sandbox):
    shop = printing_shop
    (oid,) = mdp_orders(sandbox, 1)
    shop.write_rows([{"mall_order_id": oid, "status": "packing", "parcel_count": 2}])
    done = shop.cli("sync-once", "--no-sweep")
    assert done.returncode == 0, done.stderr
    assert "MALL Delivery: labels for 1 order(s) in 1 request(s); serial numbers of 0 item(s) sent" in done.stdout
