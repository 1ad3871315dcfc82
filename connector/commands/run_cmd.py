"""`mall-connector run`, `check` and `demo`."""

from __future__ import annotations

import sys

import click

from connector.cli import Context, friendly_errors, pass_ctx


@click.command("run")
@pass_ctx
@friendly_errors
def run(ctx: Context) -> None:
    """Run the connector as a long-lived service: the scheduler (shop poll, webhook inbox, unconfirmed
    sweep, retries) and the webhook receiver in one process.

    SIGTERM/SIGINT: finish the work in flight and exit 0. SIGHUP: re-read config and mapping
    (an invalid new file is refused and the old one stays). Exit 78 on a config error.

    Example: mall-connector --config /etc/mall-connector/config.toml --log-format json run
    """
    from connector.daemon import Daemon
    from connector.preflight import preflight

    config = ctx.config()
    preflight(config)  # client_id, ledger folder, outbox folder, receiver address: exit 78, not a restart loop
    sys.exit(Daemon(config, config_path=ctx.config_path).run_forever())


@click.command("check")
@click.option("--send-test-alert", is_flag=True, help="Also send one real alert through every [alerts] channel.")
@click.option("--fix", is_flag=True, help="Register or re-enable the shop's webhooks (Shoptet, WooCommerce).")
@pass_ctx
def check(ctx: Context, send_test_alert: bool, fix: bool) -> None:
    """The pre-launch checklist: config, where each secret comes from, mapping coverage of the shop
    feed, MALL client_id, test orders, ledger folder, receiver address, public webhook URL, outbox
    (a probe file with the configured mode and group), alerts, carriers, the shop's own webhooks
    (Shoptet, WooCommerce; --fix registers or re-enables them).

    Prints ✓ (fine), ✗ (must fix, with what to do) or – (cannot be checked) per line. Exit 0 when
    nothing is ✗, 1 when something is, 78 when the config itself is invalid.

    Example: mall-connector --config /etc/mall-connector/config.toml check
    """
    from connector.checks import run_checks

    sys.exit(run_checks(ctx, send_alert=send_test_alert, fix=fix))


@click.command("demo")
@click.option("--keep-running", is_flag=True, help="Leave everything up after the story, for exploring (Ctrl+C ends).")
@click.option("--speed", type=click.FloatRange(0.1, 10.0), default=1.0, show_default=True,
              help="Faster (>1) or slower (<1) story.")
@click.option("--shop", type=click.Choice(["shoptet", "woocommerce"]), default=None,
              help="Play the story with this shop's API simulator instead of the CSV shop.")
def demo(keep_running: bool, speed: float, shop: str | None = None) -> None:
    """Show the connector working end to end on your machine, with nothing to configure.

    Starts a local MALL sandbox with sample orders, a CSV shop in a temporary folder, a SQLite
    ledger and the daemon; plays a short story (orders arrive by webhook, the shop packs and ships
    them, a customer cancels one on MALL, a mapping mistake is caught) and prints a timeline and a
    final table. Binds only free loopback ports and writes only under a temporary folder.
    """
    if shop:
        from adapters.shared.demo import run_shop_demo

        sys.exit(run_shop_demo(shop))
    from connector.demo import run_demo

    sys.exit(run_demo(keep_running=keep_running, speed=speed))
