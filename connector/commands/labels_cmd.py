"""`mall-connector labels ORDER_ID…`: print the MALL Delivery labels of orders again, on demand."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from connector.cli import Context, friendly_errors, pass_ctx


@click.command("labels")
@click.argument("order_ids", nargs=-1, type=click.IntRange(1), required=True, metavar="ORDER_ID...")
@click.option("--no-print", is_flag=True, help="Only list the label files; do not run [mdp] print_command.")
@pass_ctx
@friendly_errors
def labels(ctx: Context, order_ids: tuple[int, ...], no_print: bool) -> None:
    """Re-print the labels MALL made for these MALL Delivery orders.

    Each order's newest label set is taken from its file in [mdp] labels_dir; a file that is gone is
    fetched again from MALL (GET /v1/orders/{id}/consignments: no new label set is made). The files are
    then given to [mdp] print_command as arguments (never through a shell). Exit status 0 when every
    order had labels, 2 when some had none.

    Example: mall-connector labels 10085339302 10085339402
    """
    from connector.ledger import open_ledger
    from connector.ledger.types import EventKind, LabelState
    from connector.sync import labels as mdp

    config = ctx.config()
    files: list[Path] = []
    missing = 0
    ledger = open_ledger(config.ledger.url)
    client = None
    try:
        for oid in dict.fromkeys(order_ids):
            done = [r for r in ledger.mdp.labels_of(oid) if r.state == LabelState.DONE]
            path = Path(done[-1].file) if done and done[-1].file else None
            if path is None or not path.is_file():
                if client is None:
                    from connector.sync.runner import make_client, make_router

                    # issue 18: with several accounts, each order's labels come from its own account
                    client = make_router(config, ledger) if config.accounts else make_client(config)
                consignments = client.get_consignments(oid)
                content = mdp._consignment_content(consignments[-1]) if consignments else None
                if content is None:
                    click.echo(f"order {oid}: no labels on MALL yet (MALL makes them once the order is in "
                               f"shipping; see mall-connector ledger show {oid})", err=True)
                    missing += 1
                    continue
                kind = consignments[-1].labels_type or config.mdp.labels_type
                path = mdp.write_label_file(Path(config.mdp.labels_dir), [oid], kind, content)
                if done:
                    with ledger.write() as c:
                        ledger.mdp.update_labels(c, [done[-1].id], file=str(path))
                click.echo(f"order {oid}: {path} (fetched again from MALL)")
            else:
                click.echo(f"order {oid}: {path}")
            files.append(path)
        files = list(dict.fromkeys(files))
        if files and not no_print:
            if config.mdp.print_command:
                outcome = mdp.print_files(config.mdp.print_command, files, timeout_s=config.mdp.print_timeout_s)
                click.echo(outcome)
                with ledger.write() as c:
                    ledger.orders.add_events(c, [(oid, EventKind.LABELS, f"re-printed on demand: {outcome}") for oid in order_ids])
            else:
                click.echo("no [mdp] print_command set: print the files above yourself")
    finally:
        if client is not None:
            client.close()
        ledger.close()
    sys.exit(2 if missing else 0)
