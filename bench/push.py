"""Push throughput: changes/s pushed end to end (poll the CSV feed, map, decide, PUT, ledger) to the sandbox,
against bare httpx PUTs to the same sandbox in the same run."""

from __future__ import annotations

import argparse
import json
import statistics

import httpx

from bench.common import CLIENT_ID, SandboxProcess, Shop, StatementCounter, http_counts, now, shop_rows, tempdir


def bare_puts(mall_url: str, ids: list[int]) -> float:
    """Seconds for one PUT per order over one keep-alive connection, as lean as httpx gets."""
    with httpx.Client(base_url=mall_url, params={"client_id": CLIENT_ID}, timeout=30,
                      headers={"Accept": "application/json", "Content-Type": "application/json"}) as c:
        t = now()
        for oid in ids:
            r = c.put(f"/v1/orders/{oid}", content=json.dumps({"confirmed": True, "status": "shipping"}))
            if r.status_code != 200:
                raise RuntimeError(f"bare PUT {oid}: HTTP {r.status_code} {r.text[:200]}")
        return now() - t


def client_puts(mall_url: str, ids: list[int]) -> float:
    """Seconds for the same PUTs through MallClient (typed errors, retry policy, pydantic body), no engine."""
    from connector.mall.client import MallClient
    from connector.mall.models import StatusUpdate

    with MallClient(mall_url, CLIENT_ID, timeout_s=30) as client:
        t = now()
        for oid in ids:
            client.update_order(oid, StatusUpdate(status="shipping", confirmed=True))
        return now() - t


def engine_pass(sandbox: SandboxProcess, ids: list[int], *, synchronous: str | None = None) -> dict:
    """Poll a feed with one changed row per order and push every change: seconds, requests, statements.

    Logging is set up as `mall-connector run` does (INFO, to a file): a push writes a log line."""
    from connector.logs import setup_logging
    from connector.sync.outbound import OutboundSync
    from connector.sync.runner import Services

    with tempdir("push") as folder:
        log_file = open(folder / "connector.log", "w", encoding="utf-8")
        setup_logging("info", "text", stream=log_file)
        list_s = [0.0]
        real_refresh = OutboundSync._refresh_listed

        def timed_refresh(self, *a, **kw):  # how long the batched state reads take (the sandbox's list scan)
            t = now()
            try:
                return real_refresh(self, *a, **kw)
            finally:
                list_s[0] += now() - t

        OutboundSync._refresh_listed = timed_refresh
        shop = Shop(folder, sandbox.url)
        services = Services(shop.config())
        try:
            if synchronous:
                from sqlalchemy import event

                @event.listens_for(services.ledger.engine, "connect")
                def _sync(dbapi_conn, _record):  # bench-only: what synchronous=FULL costs
                    dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")

                services.ledger.engine.dispose()
            shop.write_feed(shop_rows(ids, "packing"))
            sandbox.clear_requests()
            counter = StatementCounter(services.ledger.engine)
            t = now()
            poll = services.outbound.poll_shop()
            t_poll = now() - t
            push = services.outbound.push_due()
            elapsed = now() - t
            counter.close()
        finally:
            OutboundSync._refresh_listed = real_refresh
            services.close()
            import logging

            logging.getLogger().handlers.clear()
            log_file.close()
    if push.pushed != len(ids):
        raise RuntimeError(f"engine pushed {push.pushed} of {len(ids)} ({push})")
    return {"seconds": elapsed, "poll_seconds": t_poll, "list_seconds": list_s[0], "new_changes": poll.new_changes,
            "pushed": push.pushed,
            "statements": counter.count, "commits": counter.commits, "http": http_counts(sandbox.requests())}


def run(n: int = 1000, repeats: int = 3) -> dict:
    """``repeats`` rounds, each on a fresh sandbox: bare PUTs for n/2 orders, MallClient PUTs for n/2, the engine
    for n (synchronous=FULL, as shipped), the engine with synchronous=NORMAL (bench-only, to price the fsync),
    bare PUTs for n/2 more. The bare runs bracket the others, so drift on a shared machine hits all alike."""
    rounds = []
    for _ in range(repeats):
        with SandboxProcess() as sandbox:
            warm = sandbox.create_orders(300)
            bare_puts(sandbox.url, warm[:100])  # warm every path: imports, connections, the sandbox
            client_puts(sandbox.url, warm[100:200])
            engine_pass(sandbox, warm[200:])
            half = n // 2
            ids = iter(sandbox.create_orders(4 * n))
            take = lambda k: [next(ids) for _ in range(k)]  # noqa: E731
            t_bare = bare_puts(sandbox.url, take(half))
            t_client = client_puts(sandbox.url, take(half))
            engine = engine_pass(sandbox, take(n))
            normal = engine_pass(sandbox, take(n), synchronous="NORMAL")
            t_bare += bare_puts(sandbox.url, take(half))
            rounds.append({"bare_rate": 2 * half / t_bare, "client_rate": half / t_client, "engine": engine,
                           "engine_rate": n / engine["seconds"], "normal_rate": n / normal["seconds"],
                           "ratio": n / engine["seconds"] / (2 * half / t_bare)})
    mid = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]  # the round with the median ratio
    eng = mid["engine"]
    list_ms = 1000 * eng["list_seconds"] / n
    return {
        "n": n, "repeats": repeats, "rounds": rounds,
        "bare_rate": mid["bare_rate"], "client_rate": mid["client_rate"], "engine_rate": mid["engine_rate"],
        "ratio": mid["ratio"], "ratios": [r["ratio"] for r in rounds],
        "client_ratio": statistics.median(r["client_rate"] / r["bare_rate"] for r in rounds),
        "engine_normal_rate": mid["normal_rate"],
        "normal_ratio": statistics.median(r["normal_rate"] / r["bare_rate"] for r in rounds),
        "engine": eng, "list_ms_per_change": list_ms,
        "per_change": {"statements": eng["statements"] / n, "commits": eng["commits"] / n,
                       "http": eng["http"]["total"] / n, "ms": 1000 / mid["engine_rate"],
                       "bare_ms": 1000 / mid["bare_rate"]},
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    print(json.dumps(run(a.n, a.repeats), indent=2, default=str))
