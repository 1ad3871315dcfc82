"""``mall-connector sandbox``: run the local MALL look-alike in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import threading

import click

from connector.logs import register_secret
from connector.sandbox.control import ENDPOINTS
from connector.sandbox.faults import Faults
from connector.sandbox.server import SandboxServer

RATE = click.FloatRange(0.0, 1.0)


class ListenAddress(click.ParamType):
    """``HOST:PORT`` (IPv6 as ``[::1]:8800``); port 0 picks a free one."""

    name = "HOST:PORT"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        host, sep, port = str(value).rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            self.fail(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:8800", param, ctx)
        return host, int(port)


def _check_url(ctx, param, value):
    if value is not None and not value.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http(s) URL, e.g. http://127.0.0.1:8080/webhooks/mall/TOKEN")
    return value


@click.command("sandbox", context_settings={"max_content_width": 100}, epilog="""\b
Example (a second terminal then points the connector at it):
  mall-connector sandbox --client-id demo-client-id --orders 100 \\
      --webhook-url http://127.0.0.1:8080/webhooks/mall/TOKEN --webhook-interval 5
  curl 'http://127.0.0.1:8800/v1/orders/unconfirmed?client_id=demo-client-id&filter=basic'
  curl -X POST http://127.0.0.1:8800/_sandbox/orders -d '{"count": 3, "kind": "cod"}'
""")
@click.option("--listen", type=ListenAddress(), default="127.0.0.1:8800", show_default=True,
              help="Address to serve on. Keep it on loopback: the operator endpoints need no key.")
@click.option("--client-id", envvar="MALL_CLIENT_ID", required=True,
              help="The client_id the sandbox accepts (also $MALL_CLIENT_ID). Any string; "
                   "do not reuse your real MALL key.")
@click.option("--orders", type=click.IntRange(0, 100_000), default=50, show_default=True,
              help="Orders to seed, spread over all 8 statuses.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seed for the generated orders and the fault dice (same seed, same orders).")
@click.option("--webhook-url", callback=_check_url, default=None,
              help="Where to POST batches of changed order ids, as MALL's order webhook does.")
@click.option("--webhook-interval", type=click.FloatRange(0, min_open=True), default=60.0, show_default=True,
              metavar="SECONDS", help="At most one webhook batch per this many seconds (MALL: 60).")
@click.option("--error-rate", type=RATE, default=0.0, show_default=True,
              help="Share of API requests answered 500 without effect.")
@click.option("--rate-limit-rate", type=RATE, default=0.0, show_default=True,
              help="Share of API requests answered 429 with X-RateLimit-* headers.")
@click.option("--rate-limit-budget", type=click.IntRange(0), default=None,
              help="Allow this many API requests per --rate-limit-window, then 429 until it resets.")
@click.option("--rate-limit-window", type=click.FloatRange(0, min_open=True), default=60.0, show_default=True,
              metavar="SECONDS", help="Window of --rate-limit-budget.")
@click.option("--latency-ms", type=click.IntRange(0, 60_000), default=0, show_default=True,
              help="Delay added to every API answer.")
@click.option("--drop-rate", type=RATE, default=0.0, show_default=True,
              help="Share of API requests whose connection is closed without a reply.")
@click.option("--shop", type=click.Choice(["shoptet", "woocommerce"]), default=None,
              help="Also run a local simulator of this shop's API (on a free loopback port).")
def sandbox(listen, client_id, orders, seed, webhook_url, webhook_interval, error_rate, rate_limit_rate,
            rate_limit_budget, rate_limit_window, latency_ms, drop_rate, shop=None):
    """Run a local MALL Marketplace look-alike to try a mapping safely.

    It speaks MALL's order API (/v1/orders...) with MALL's status rules, sends MALL-style webhooks
    and lets you play MALL's part (pay, cancel, MALL Delivery events) through /_sandbox/
    endpoints. Orders live in memory and vanish when it stops (Ctrl+C or SIGTERM).
    """
    if not client_id.strip():
        raise click.BadParameter("must not be empty", param_hint="--client-id")
    register_secret(client_id)
    host, port = listen
    faults = Faults(seed=seed, error_rate=error_rate, rate_limit_rate=rate_limit_rate, latency_ms=latency_ms,
                    drop_rate=drop_rate, rate_limit_budget=rate_limit_budget, rate_limit_window_s=rate_limit_window)
    server = SandboxServer(client_id, host=host, port=port, orders=orders, seed=seed, webhook_url=webhook_url,
                           webhook_interval_s=webhook_interval, faults=faults)
    try:
        server.start()
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}") from None

    shop_sim = None
    if shop:
        from adapters.shared.sims import start_shop_simulator

        shop_sim, lines = start_shop_simulator(shop)
        for line in lines:
            click.echo(line)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        _banner(server, orders, webhook_url, webhook_interval)
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        if shop_sim is not None:
            shop_sim.stop()
    click.echo("sandbox stopped")


def _banner(server: SandboxServer, orders: int, webhook_url: str | None, interval: float) -> None:
    url = server.url
    click.echo(f"MALL sandbox listening on {url}")
    click.echo(f"  MALL API:  {url}/v1/orders?client_id=<your --client-id>   ({orders} seeded orders)")
    hook = f"POST to your --webhook-url at most every {interval:g} s" if webhook_url else "off (no --webhook-url)"
    click.echo(f"  webhooks:  {hook}")
    click.echo(f"  operator endpoints (no client_id), listed by GET {url}/_sandbox:")
    for route, what in ENDPOINTS.items():
        method, path = route.split(" ", 1)
        click.echo(f"    {method:<6} {url}{path}  {what}")
    click.echo("Press Ctrl+C to stop.")
