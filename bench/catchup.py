"""Catch-up: N pending changes after a long outage, drained against the sandbox's deterministic rate limit
(rate_limit_budget requests per rate_limit_window_s, then 429 until the window resets, with X-RateLimit-*
headers on every answer). Reports the time, the requests, every 429 and the longest run of 429s in a row."""

from __future__ import annotations

import argparse
import json

from bench.common import CLIENT_ID, SandboxProcess, Shop, now, shop_rows, tempdir


def _longest_429_run(requests: list[dict]) -> int:
    run = best = 0
    for r in sorted(requests, key=lambda r: r["seq"]):
        run = run + 1 if r["status_code"] == 429 else 0
        best = max(best, run)
    return best


def drain(n: int, *, budget: int, window_s: float, paced: bool = True, max_s: float = 900.0) -> dict:
    from connector.mall.client import MallClient
    from connector.sync.runner import Services

    with SandboxProcess() as sandbox, tempdir("catchup") as folder:
        ids = sandbox.create_orders(n)
        shop = Shop(folder, sandbox.url)
        config = shop.config()
        client = None if paced else MallClient(config.mall.base_url, CLIENT_ID, timeout_s=config.mall.timeout_s)
        services = Services(config, client=client)
        try:
            shop.write_feed(shop_rows(ids, "packing"))
            t = now()
            poll = services.outbound.poll_shop()
            poll_s = now() - t
            assert poll.new_changes == n, poll
            sandbox.clear_requests()
            sandbox.set_faults(rate_limit_budget=budget, rate_limit_window_s=window_s)
            t = now()
            pushed = passes = 0
            while now() - t < max_s:
                passes += 1
                result = services.outbound.push_due()
                pushed += result.pushed
                if not services.ledger.changes.count(states=("pending", "sending", "retry")):
                    break
            elapsed = now() - t
            sandbox.reset_faults()
            requests = sandbox.requests()
            pacer = getattr(services.client._http, "_transport", None)
        finally:
            services.close()
        applied: dict[int, int] = {}
        for r in requests:
            if r["method"] == "PUT" and r["applied"]:
                applied[r["order_id"]] = applied.get(r["order_id"], 0) + 1
        final = sandbox.orders()
    limited = [r for r in requests if r["status_code"] == 429]
    return {
        "changes": n, "budget": budget, "window_s": window_s, "paced": paced, "poll_s": poll_s,
        "seconds": elapsed, "pushed": pushed, "passes": passes, "requests": len(requests),
        "rate": len(requests) / elapsed, "budget_rate": budget / window_s,
        "http_429": len(limited), "longest_429_run": _longest_429_run(requests),
        "applied_once": all(applied.get(oid) == 1 for oid in ids),
        "all_shipping": all(final[oid]["status"] == "shipping" for oid in ids),
        "pacer_waits": getattr(pacer, "waits", None), "pacer_waited_s": getattr(pacer, "waited_s", None),
    }


def run(n: int = 10_000, *, budget: int = 1000, window_s: float = 10.0, compare_n: int = 2000) -> dict:
    out = {"paced": drain(n, budget=budget, window_s=window_s)}
    if compare_n:
        out["unpaced"] = drain(compare_n, budget=budget, window_s=window_s, paced=False)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=10_000)
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--compare", type=int, default=2000)
    a = p.parse_args()
    print(json.dumps(run(a.n, budget=a.budget, window_s=a.window, compare_n=a.compare), indent=2))
