"""Run every benchmark against the bare stack and write the report: ``python -m bench.run --out docs/performance.md``.

Each part runs its servers in processes of their own on loopback (the MALL sandbox, the receiver, the load
generator, the daemon), so what is measured does not share an interpreter with what measures it.
``--quick`` is a smoke run (small sizes, short durations); its figures are not the ones to quote.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench import accounts, calls, catchup, idle, push, react, scaling, webhook
from bench.common import machine

#: calls: MALL calls per new order and per pushed change (issue 17 item 1); accounts: a sync pass at 1, 10 and
#: 100 MALL accounts (issue 18, docs/scaling.md).
PARTS = ("webhook", "push", "scaling", "catchup", "react", "idle", "calls", "accounts")


def _say(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/performance.md", help="the Markdown report to write")
    p.add_argument("--json", help="also write the raw figures here")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts to run ({', '.join(PARTS)})")
    p.add_argument("--quick", action="store_true", help="small sizes and short runs (a smoke test)")
    p.add_argument("--webhook-duration", type=float, default=15.0, help="seconds per webhook load phase")
    p.add_argument("--push-n", type=int, default=1000, help="changes per push measurement")
    p.add_argument("--push-repeats", type=int, default=5)
    p.add_argument("--scaling-sizes", default="1000,10000,100000,1000000", help="ledger sizes (orders)")
    p.add_argument("--feed-sizes", default="10000,100000", help="feed rows to parse")
    p.add_argument("--catchup", type=int, default=10_000, help="pending changes to drain (the brief's 10 000)")
    p.add_argument("--catchup-budget", type=int, default=1000, help="sandbox rate limit: requests per window")
    p.add_argument("--catchup-window", type=float, default=10.0, help="sandbox rate limit window, seconds")
    p.add_argument("--catchup-compare", type=int, default=2000,
                   help="changes for the comparison run without pacing (0: skip)")
    p.add_argument("--idle", type=float, default=600.0, help="seconds of idle to measure (10 min: the no-growth run)")
    p.add_argument("--react-samples", type=int, default=20, help="feed renames timed to their PUT")
    a = p.parse_args(argv)
    if a.quick:
        a.webhook_duration, a.push_n, a.push_repeats = 3.0, 200, 1
        a.scaling_sizes, a.feed_sizes = "1000,10000", "10000"
        a.catchup, a.catchup_budget, a.catchup_window, a.catchup_compare = 300, 100, 2.0, 0
        a.idle, a.react_samples = 10.0, 3
    parts = [x.strip() for x in a.only.split(",") if x.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        p.error(f"unknown part(s): {', '.join(sorted(unknown))}")

    started = time.monotonic()
    results: dict = {"machine": machine(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "args": vars(a), "errors": {}}
    _say(f"machine: {results['machine']['CPU']}, {results['machine']['cores']}")
    steps = {
        "webhook": lambda: webhook.run(a.webhook_duration),
        "push": lambda: push.run(a.push_n, a.push_repeats),
        "scaling": lambda: scaling.run(tuple(int(x) for x in a.scaling_sizes.split(",")),
                                       tuple(int(x) for x in a.feed_sizes.split(","))),
        "catchup": lambda: catchup.run(a.catchup, budget=a.catchup_budget, window_s=a.catchup_window,
                                       compare_n=a.catchup_compare),
        "idle": lambda: idle.run(a.idle),
        "react": lambda: react.run(a.react_samples),
        "calls": lambda: calls.run(orders=60, webhooks=30, changes=100) if a.quick else calls.run(),
        "accounts": lambda: accounts.run((1, 10), 5) if a.quick else accounts.run(),
    }
    for name in parts:
        _say(f"{name} ...")
        t = time.monotonic()
        try:
            results[name] = steps[name]()
        except Exception:  # noqa: BLE001 - report what failed and carry on with the other parts
            results["errors"][name] = traceback.format_exc()
            _say(f"{name} FAILED:\n{results['errors'][name]}")
        results.setdefault("durations", {})[name] = time.monotonic() - t
        _say(f"{name} done in {time.monotonic() - t:.0f} s")
    results["total_s"] = time.monotonic() - started

    from bench.report import render

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(results), encoding="utf-8")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    _say(f"wrote {out} (whole run {results['total_s'] / 60:.1f} min)")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
