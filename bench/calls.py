"""issue 17: MALL calls per new order and per pushed change, counted in the sandbox's request log.

    python -m bench.calls [--orders 588 --webhooks 300 --changes 1000]

``run()`` returns the figures (for bench/run.py and bench/report.py):

* ``calls_per_new_order``: every MALL call the inbound pipeline made for new orders arriving by webhook (the
  detail GET, the PUT confirmed, and the verification list calls of ``[sync] verify_window_s``), divided by the
  orders; ``detail_gets_per_order`` and ``confirm_puts_per_order`` are the normal path alone (goal: 1 + 1);
* ``calls_per_change``: every MALL call of a push pass over changes of orders the ledger never read (their
  states listed 100 a call), divided by the changes (goal ≤ 1.05); ``calls_per_change_page10`` is the same
  against a MALL that serves only 10 orders a page (as one recording did, docs/reference/mall-paging-and-mdp.md).

Counts, never times: the figures are the same on any machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

CLIENT_ID = "bench-calls-client-id-0123456789"
TOKEN = "bench-calls-token-" + "Xr4Tq9Lm2Vb7Nc5Hs8Kd3Jw"


def _kinds(entries) -> Counter:
    out: Counter = Counter()
    for e in entries:
        if e.method == "PUT" and e.body == {"confirmed": True}:
            out["confirm"] += 1
        elif e.method == "PUT":
            out["push"] += 1
        elif e.method == "GET" and e.path == "/v1/orders":
            out["list"] += 1
        elif e.method == "GET" and e.path == "/v1/orders/unconfirmed":
            out["sweep"] += 1
        elif e.method == "GET" and e.order_id is not None:
            out["read"] += 1
        else:
            out["other"] += 1
    return out


def _config(folder: Path, url: str, port: int | None = None, sync: str = "") -> Path:
    (folder / "outbox").mkdir(exist_ok=True)
    (folder / "shop.csv").write_text("mall_order_id,status,shop_order_id\n", encoding="utf-8")
    receiver = f'[receiver]\nlisten = "127.0.0.1:{port}"\ntokens = ["{TOKEN}"]\n' if port else ""
    path = folder / "config.toml"
    path.write_text(f"""[mall]
base_url = "{url}"
client_id = "{CLIENT_ID}"
[ledger]
url = "sqlite:///{folder / 'ledger.db'}"
[sync]
{sync}{receiver}[shop]
adapter = "generic_csv"
[shop.generic_csv]
source = "{folder / 'shop.csv'}"
outbox = "{folder / 'outbox'}"
settle_s = 0
""", encoding="utf-8")
    return path


def new_orders(orders: int = 588, webhooks: int = 300) -> dict:
    """``orders`` new orders arriving in ``webhooks`` webhook deliveries to the real receiver, one inbound pass
    after each; then the verification window passes and its check runs."""
    from connector.config import load_config
    from connector.ledger.rows import utcnow
    from connector.metrics import Metrics
    from connector.sandbox.server import SandboxServer
    from connector.sync.runner import Services
    from receiver.app import create_app
    from receiver.server import ReceiverServer

    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp, \
            SandboxServer(CLIENT_ID, max_page_size=100, webhook_interval_s=3600) as sandbox:
        folder = Path(tmp)
        services = Services(load_config(_config(folder, sandbox.url)), metrics=Metrics())
        server = ReceiverServer(create_app(ledger=services.ledger, tokens=[TOKEN], metrics=services.metrics),
                                "127.0.0.1", 0)
        server.start()
        sandbox.webhook_url = f"http://127.0.0.1:{server.port}/webhooks/mall/{TOKEN}"
        try:
            made = 0
            for w in range(webhooks):
                k = orders // webhooks + (1 if w < orders % webhooks else 0)
                if k:
                    sandbox.state.create_orders(k, kind="normal", status="open")
                    made += k
                    sandbox.flush_webhooks()
                    deadline = time.monotonic() + 10
                    while services.ledger.inbox.depth() < k and time.monotonic() < deadline:
                        time.sleep(0.01)
                services.inbound.run()
            window = services.config.sync.verify_window_s
            services.inbound.verify(now=utcnow() + timedelta(seconds=window + 1))
            services.inbound.run()
            kinds = _kinds(sandbox.request_log.entries())
        finally:
            server.stop()
            services.close()
    total = sum(kinds.values())
    return {"orders": made, "webhooks": webhooks, "calls": dict(kinds), "calls_total": total,
            "calls_per_new_order": total / made, "detail_gets_per_order": kinds["read"] / made,
            "confirm_puts_per_order": kinds["confirm"] / made, "verify_calls": kinds["list"],
            "goal_calls_per_new_order": 2.0}


def pushed_changes(changes: int = 1000, *, max_page_size: int = 100) -> dict:
    """One push pass over ``changes`` changes of orders the ledger has never read."""
    from connector.config import load_config
    from connector.sandbox.server import SandboxServer
    from connector.sync.runner import Services, sync_once

    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp, \
            SandboxServer(CLIENT_ID, max_page_size=max_page_size) as sandbox:
        folder = Path(tmp)
        ids = [o["id"] for o in sandbox.state.create_orders(changes, kind="normal", status="open")]
        sandbox.state.drain_changed()
        services = Services(load_config(_config(folder, sandbox.url)))
        try:
            lines = ["mall_order_id,status,shop_order_id"] + [f"{oid},packing,S{i}" for i, oid in enumerate(ids)]
            (folder / "shop.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
            summary = sync_once(services, sweep=False)
            kinds = _kinds(sandbox.request_log.entries())
        finally:
            services.close()
    total = sum(kinds.values())
    return {"changes": changes, "pushed": summary.push.pushed, "calls": dict(kinds), "calls_total": total,
            "calls_per_change": total / changes, "max_page_size": max_page_size, "goal_calls_per_change": 1.05}


def run(orders: int = 588, webhooks: int = 300, changes: int = 1000) -> dict:
    """The figures of issue 17 item 1: calls per new order and per pushed change (see the module docstring)."""
    inbound = new_orders(orders, webhooks)
    push = pushed_changes(changes)
    page10 = pushed_changes(min(changes, 200), max_page_size=10)
    normal_path = inbound["detail_gets_per_order"] + inbound["confirm_puts_per_order"]
    return {"new_orders": inbound, "push": push, "push_page10": page10,
            # bench/report.py's goal rows: the normal path of a new order (its detail GET and its confirm PUT),
            # and a pushed change with MALL serving 100 orders a page; the verification share is shown beside.
            "per_new_order": normal_path, "per_change": push["calls_per_change"],
            "calls_per_new_order": inbound["calls_per_new_order"], "calls_per_change": push["calls_per_change"],
            "calls_per_change_page10": page10["calls_per_change"],
            "met": {"calls_per_new_order": inbound["detail_gets_per_order"] + inbound["confirm_puts_per_order"] <= 2,
                    "calls_per_change": push["calls_per_change"] <= 1.05}}


def render(r: dict) -> list[str]:
    """The section's Markdown lines for docs/performance.md (bench/report.py)."""
    n, p, p10 = r["new_orders"], r["push"], r["push_page10"]

    def kinds(d: dict) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in sorted(d["calls"].items()))

    return [
        "Counted in the sandbox's request log, over real HTTP (`python -m bench.calls`).", "",
        "| scenario | MALL calls | per item | goal |", "|---|---|---|---|",
        f"| {n['orders']:,} new orders from {n['webhooks']:,} webhooks (the real receiver) | {kinds(n)} | "
        f"{n['detail_gets_per_order'] + n['confirm_puts_per_order']:.2f} on the normal path (detail GET + confirm "
        f"PUT); {n['calls_per_new_order']:.3f} with the batched verification ({n['verify_calls']} list calls) | ≤ 2 |",
        f"| {p['changes']:,} pushed changes, MALL serving 100 orders a page | {kinds(p)} | {p['calls_per_change']:.3f} "
        "| ≤ 1.05 |",
        f"| {p10['changes']:,} pushed changes, 10 orders a page (one MALL recording) | {kinds(p10)} | "
        f"{p10['calls_per_change']:.3f} | – |", "",
        "The batched verification (`[sync] verify_window_s`, docs/quota.md) adds one list call per 100 confirmed "
        "orders; pickup-branch orders are verified with a GET each, since MALL's list does not show the branch.", ""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=588)
    p.add_argument("--webhooks", type=int, default=300)
    p.add_argument("--changes", type=int, default=1000)
    a = p.parse_args(argv)
    print(json.dumps(run(a.orders, a.webhooks, a.changes), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
