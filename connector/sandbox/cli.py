"""``mall-connector sandbox``: run the local MALL look-alike in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from connector.logs import register_secret
from connector.sandbox.control import ENDPOINTS
from connector.sandbox.faults import Faults
from connector.sandbox.query import MAX_PAGE_SIZE
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


def _epilog() -> str:
    """The example, then every operator endpoint (issue 14: `sandbox --help` lists them), from ENDPOINTS itself."""
    lines = ["\b", "Operator endpoints (play MALL's part; no key, so keep --listen on loopback):"]
    lines += [f"  {route:<36} {what}" for route, what in ENDPOINTS.items()]
    return _EXAMPLE + "\n" + "\n".join(lines) + "\n"


_EXAMPLE = """\b
Example (a second terminal then points the connector at it). Secrets from the environment or a file,
never on the command line (any local user reads argv in /proc):
  export MALL_CLIENT_ID=demo-client-id
  export MALL_SANDBOX_WEBHOOK_URL=http://127.0.0.1:8080/webhooks/mall/TOKEN
  mall-connector sandbox --orders 100 --webhook-interval 5
  curl 'http://127.0.0.1:8800/v1/orders/unconfirmed?client_id=demo-client-id&filter=basic'
  curl -X POST http://127.0.0.1:8800/_sandbox/orders -d '{"count": 3, "kind": "cod"}'
"""


@click.command("sandbox", context_settings={"max_content_width": 100}, epilog=_epilog())
@click.option("--listen", type=ListenAddress(), default="127.0.0.1:8800", show_default=True,
              help="Address to serve on. Keep it on loopback: the operator endpoints need no key.")
@click.option("--client-id", envvar="MALL_CLIENT_ID", default=None,
              help="The client_id the sandbox accepts. Any string; do not reuse your real MALL key. Better from "
                   "$MALL_CLIENT_ID or --client-id-file: a command-line argument is visible to every local user "
                   "in /proc.")
@click.option("--client-id-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="MALL_CLIENT_ID_FILE", help="Read the client_id from this file (first line).")
@click.option("--orders", type=click.IntRange(0, 100_000), default=50, show_default=True,
              help="Orders to seed, spread over all 8 statuses.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seed for the generated orders and the fault dice (same seed, same orders).")
@click.option("--webhook-url", envvar="MALL_SANDBOX_WEBHOOK_URL", default=None,
              help="Where to POST batches of changed order ids, as MALL's order webhook does. It holds the "
                   "receiver's token: better from $MALL_SANDBOX_WEBHOOK_URL or --webhook-url-file.")
@click.option("--webhook-url-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="MALL_SANDBOX_WEBHOOK_URL_FILE", help="Read the webhook URL from this file (first line).")
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
@click.option("--carriers", "with_carriers", is_flag=True, default=False,
              help="Also start a simulator of every supported carrier's tracking API (Packeta, Česká pošta, PPL) "
                   "on free ports of the same host, and print the [carriers.<name>] tables that point at them.")
@click.option("--max-page-size", type=click.IntRange(1, 100_000), default=MAX_PAGE_SIZE, show_default=True,
              help="Most orders per list page; a bigger page_size is capped to it, as MALL does (MALL's recorded "
                   "answer to page_size=1000 had 10).")
@click.option("--shop", type=click.Choice(["shoptet", "woocommerce"]), default=None,
              help="Also run a local simulator of this shop's API (on a free loopback port).")
@click.option("--accounts", type=click.IntRange(1, 1000), default=None, metavar="N",
              help="Several MALL accounts behind the one --listen address (issue 18): N sandboxes with client_ids "
                   "sandbox-a001..N, each with its own orders (--orders each) and operator endpoints on a port of "
                   "its own; prints the client_ids and the [accounts.<name>] tables. No --client-id needed; the "
                   "fault, webhook, --carriers and --shop options do not combine with it.")
def sandbox(listen, client_id, client_id_file, orders, seed, webhook_url, webhook_url_file, webhook_interval,
            error_rate, rate_limit_rate, rate_limit_budget, rate_limit_window, latency_ms, drop_rate, with_carriers,
            max_page_size, shop=None, accounts=None):
    """Run a local MALL Marketplace look-alike to try a mapping safely.

    It speaks MALL's order API (/v1/orders...) with MALL's status rules, sends MALL-style webhooks
    and lets you play MALL's part (pay, cancel, MALL Delivery events) through /_sandbox/
    endpoints. Orders live in memory and vanish when it stops (Ctrl+C or SIGTERM).
    """
    if accounts is not None:
        extras = {"--webhook-url": webhook_url or webhook_url_file, "--error-rate": error_rate,
                  "--rate-limit-rate": rate_limit_rate, "--rate-limit-budget": rate_limit_budget,
                  "--latency-ms": latency_ms, "--drop-rate": drop_rate, "--carriers": with_carriers, "--shop": shop}
        given = [name for name, value in extras.items() if value]
        if given:
            raise click.UsageError(f"--accounts does not combine with {', '.join(given)}")
        return _serve_accounts(accounts, listen, orders, seed)
    if client_id_file is not None:
        client_id = _first_line(client_id_file, "--client-id-file")
    if client_id is None:
        raise click.UsageError("give the client_id: env MALL_CLIENT_ID, --client-id-file FILE, or --client-id")
    if not client_id.strip():
        raise click.BadParameter("must not be empty", param_hint="--client-id")
    register_secret(client_id)
    if webhook_url_file is not None:
        webhook_url = _first_line(webhook_url_file, "--webhook-url-file")
    webhook_url = _check_url(None, None, webhook_url)
    host, port = listen
    faults = Faults(seed=seed, error_rate=error_rate, rate_limit_rate=rate_limit_rate, latency_ms=latency_ms,
                    drop_rate=drop_rate, rate_limit_budget=rate_limit_budget, rate_limit_window_s=rate_limit_window)
    server = SandboxServer(client_id, host=host, port=port, orders=orders, seed=seed, webhook_url=webhook_url,
                           webhook_interval_s=webhook_interval, faults=faults, max_page_size=max_page_size)
    try:
        server.start()
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}") from None

    sims: dict = {}  # issue 15: the carrier simulators, with --carriers
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
        sims = _start_carriers(host) if with_carriers else {}
        _banner(server, orders, webhook_url, webhook_interval)
        if sims:
            from carriers.simulators import config_snippet

            click.echo("carrier simulators (operator endpoints under /_sim on each; GET /_sim lists them):")
            for name, sim in sims.items():
                click.echo(f"  {name:<12} {sim.url}")
            click.echo("point the connector at them with:\n" + config_snippet(sims))
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        for sim in sims.values():
            sim.stop()
        if shop_sim is not None:
            shop_sim.stop()
    click.echo("sandbox stopped")


def _serve_accounts(n: int, listen: tuple[str, int], orders: int, seed: int) -> None:
    """``--accounts N``: N sandboxes behind one MallFront (connector/sandbox/front.py) until SIGINT/SIGTERM."""
    from connector.sandbox.front import AccountsSandbox

    host, port = listen
    ids = [f"sandbox-a{i:03d}" for i in range(1, n + 1)]
    try:
        world = AccountsSandbox(ids, host=host, port=port, orders=orders, seed=seed)
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        click.echo(f"MALL sandbox of {n} accounts listening on {world.url} ({orders} seeded orders each)")
        click.echo("  client_id        operator endpoints (GET …/_sandbox lists them)")
        for cid, box in world.sandboxes.items():
            click.echo(f"  {cid:<16} {box.url}/_sandbox")
        click.echo(f"point the connector at it with [mall] base_url = \"{world.url}\" and:")
        for i, cid in enumerate(ids, 1):
            click.echo(f"[accounts.a{i:03d}]\nclient_id = \"{cid}\"")
        click.echo("Press Ctrl+C to stop.")
        while not stop.wait(1.0):
            pass
    finally:
        world.close()
    click.echo("sandbox stopped")


def _first_line(path: Path, hint: str) -> str:
    """The first line of a secret file (trailing whitespace dropped); a clear error when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise click.BadParameter(f"cannot read {path}: {getattr(e, 'strerror', None) or e}", param_hint=hint) from None
    line = text.splitlines()[0].strip() if text.strip() else ""
    if not line:
        raise click.BadParameter(f"{path} is empty", param_hint=hint)
    return line


def _start_carriers(host: str) -> dict:
    from carriers.simulators import start_all

    try:
        return start_all(host)
    except OSError as e:
        raise click.ClickException(f"cannot start the carrier simulators on {host}: {e.strerror or e}") from None


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
