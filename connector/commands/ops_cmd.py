"""`mall-connector orders ...` and `mall-connector export ...`: daily partner operations.

The overview, the picking list and the billing file are read from the ledger, which the daemon keeps
current; only `orders list --refresh` talks to MALL.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from click.core import ParameterSource

from connector.cli import Context, friendly_errors, pass_ctx
from connector.commands.account_option import account_option, chosen_account, several
from connector.commands.output import emit

DATE = click.DateTime(formats=["%Y-%m-%d"])
OUTPUT_HINT = "'-o' / '--output'"


def _ledger(ctx: Context):
    from connector.ledger import open_ledger
    from connector.preflight import require_existing_ledger

    require_existing_ledger(ctx.config())  # these commands read: a missing ledger is an error, not created
    return open_ledger(ctx.config().ledger.url)


def _parse_statuses(value: str, *, allow_all: bool) -> list[str] | None:
    """"open,shipping" -> ["open", "shipping"]; "all" -> None. BadParameter names the wrong one."""
    from connector.mall.statuses import parse_status

    if allow_all and value.strip().lower() == "all":
        return None
    names = [v for v in (p.strip() for p in value.split(",")) if v]
    if not names:
        raise click.BadParameter("give at least one status, e.g. open,shipping")
    try:
        return list(dict.fromkeys(parse_status(n).value for n in names))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _statuses_or_all(ctx: click.Context, param: click.Parameter, value: str) -> list[str] | None:
    return _parse_statuses(value, allow_all=True)


def _statuses(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    return _parse_statuses(value, allow_all=False)


def _order_ids(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    ids = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if not part.isdigit() or int(part) <= 0:
            raise click.BadParameter(f"{part!r} is not a MALL order id (digits only, e.g. 10085339302)")
        ids.append(int(part))
    if not ids:
        raise click.BadParameter("give at least one order id")
    return ids


def _output(path: Path, allowed: tuple[str, ...]) -> str:
    from connector.exports.common import OutputError, output_kind

    try:
        return output_kind(path, allowed)
    except OutputError as e:
        raise click.BadParameter(str(e), param_hint=OUTPUT_HINT) from None


def _file_mode(ctx: click.Context, param: click.Parameter, value: str | None) -> int:
    """``--mode 0640`` -> 0o640. Exports hold customer data: 0600 unless asked; never executable."""
    from connector.exports.common import EXPORT_MODE

    if value is None:
        return EXPORT_MODE
    try:
        mode = int(value, 8)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an octal file mode such as 0600 or 0640") from None
    if not 0 <= mode <= 0o666 or mode & 0o111 or not mode & 0o600 == 0o600:
        raise click.BadParameter(f"{value!r}: give read and write for the owner and no execute bits "
                                 "(e.g. 0600, 0640, 0644)")
    return mode


MODE_OPTION = click.option("--mode", "file_mode", default=None, callback=_file_mode, metavar="OCTAL",
                           help="File permissions of the written file, e.g. 0640 to let the group read it "
                                "[default: 0600, whatever the umask: it holds customer data].")


def _client(cfg, ledger, account: str | None):
    """The MALL client of `orders list --refresh`: the config's one, or (issue 18) every account's behind the
    router (each order is re-read from its own account; --account only narrows what is shown)."""
    from connector.sync.runner import make_client, make_router

    if not cfg.accounts:
        return make_client(cfg)
    return make_router(cfg, ledger)


def _write(path: Path, write) -> None:
    """Run ``write()``; a file-system failure is a clear line about the output, not a traceback."""
    try:
        write()
    except OSError as e:
        raise click.BadParameter(f"cannot write {str(path)!r}: {e.strerror or e}", param_hint=OUTPUT_HINT) from None


# -- orders -----------------------------------------------------------------------------------------------


@click.group("orders")
def orders_group() -> None:
    """See the MALL orders the connector knows, like the portal's Orders page.

    Example: mall-connector orders list --status open,shipping
    """


@orders_group.command("list", short_help="The orders overview (status, ship date, delivery, total, last sync).")
@click.option("--status", "statuses", default="open,shipping,shipped", show_default=True, callback=_statuses_or_all,
              help="Comma-separated MALL statuses (blocked, open, shipping, shipped, delivered, returned, "
                   "cancelled, lost), or 'all'.")
@click.option("--since", type=DATE, default=None, metavar="DATE",
              help="Only orders created on or after this day (YYYY-MM-DD, Prague time).")
@click.option("--test", "include_test", is_flag=True, help="Include MALL test orders (left out by default).")
@click.option("--refresh", is_flag=True,
              help="First re-read these orders from MALL and store them in the ledger (with --status all: "
                   "open, shipping, shipped). Closed statuses (delivered, returned, cancelled, lost) are never "
                   "re-read: MALL asks partners not to list closed orders.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@account_option
@pass_ctx
@friendly_errors
def orders_list(ctx: Context, statuses: list[str] | None, since: datetime | None, include_test: bool, refresh: bool,
                fmt: str, account: str | None) -> None:
    """List orders: id, MALL status, confirmed, ship date, delivery method and pickup branch, customer,
    total, the shop's status and what the connector last did with the order. Sorted by ship date.

    \b
    Examples:
      mall-connector orders list
      mall-connector orders list --status open --refresh
      mall-connector orders list --status all --since 2026-11-01 --format csv > orders.csv
    """
    from connector.exports.orders import ACTIVE_STATUSES, overview
    from connector.exports.orders import refresh as refresh_orders
    from connector.mall.errors import MallError
    from connector.sync.runner import make_client

    cfg = ctx.config()
    account = chosen_account(cfg, account)  # issue 18
    ledger = _ledger(ctx)
    try:
        if refresh:
            from connector.sync.ratelimit import in_reserve  # issue 17: --refresh is an optional call

            if in_reserve(None, cfg.mall.reserve_share, ledger):
                raise click.ClickException(
                    "not re-read from MALL: the daily call budget is in the reserve ([mall] reserve_share = "
                    f"{cfg.mall.reserve_share:g}; see `mall-connector check`). Run without --refresh to see the "
                    "ledger as it is, or try again when the budget has recovered")
            client = _client(cfg, ledger, account)
            try:
                res = refresh_orders(ledger, client, statuses=statuses or list(ACTIVE_STATUSES),
                                     include_test=include_test)
            except MallError as e:
                raise click.ClickException(f"could not re-read the orders from MALL: {e} (run without --refresh "
                                           "to see the ledger as it is)") from None
            finally:
                from connector.sync.ratelimit import flush_calls  # issue 17: counted for `mall-connector stats`

                flush_calls(ledger, client)
                client.close()
            if cfg.accounts:  # issue 18: the accounts learned from the lists
                with ledger.write() as c:
                    ledger.accounts.stamp(c)
            if res.skipped_final:
                click.echo(f"not re-read from MALL (closed statuses): {', '.join(res.skipped_final)}", err=True)
            click.echo(f"re-read from MALL: {res.listed} listed, {res.moved} no longer listed in these statuses "
                       f"(read one by one), {res.stored} stored", err=True)
            for oid in res.not_found:
                click.echo(f"warning: MALL does not know order {oid} (in the ledger, not on MALL)", err=True)
        lines = overview(ledger, statuses=statuses, since=since.date() if since else None, include_test=include_test,
                         account=account)
    finally:
        ledger.close()
    headers = ["order", "status", "confirmed", "ship_date", "delivery", "branch", "customer", "total", "currency",
               "shop_status", "last_sync"]
    rows = []
    for o in lines:
        confirmed = o.confirmed if fmt == "json" else ("yes" if o.confirmed else "no" if o.confirmed is False else "")
        rows.append([o.mall_order_id, o.status or "", confirmed, o.ship_date or "", o.delivery_method or "",
                     o.branch_id, o.customer or "", o.total, o.currency or "", o.shop_status or "", o.last_sync])
        if several(cfg):  # issue 18
            rows[-1].insert(0, o.account)
    if several(cfg):
        headers = ["account", *headers]
    emit(fmt, headers, rows, empty="no orders in the ledger match (try --status all, or --refresh)")


# -- export -----------------------------------------------------------------------------------------------


@click.group("export")
def export_group() -> None:
    """Write files for the warehouse (picking list) and for MALL's manual billing.

    Example: mall-connector export picking -o picking.xlsx
    """


@export_group.command("picking", short_help="Warehouse picking list with a packing section (.xlsx or .csv).")
@click.option("--status", "statuses", default="open,shipping", show_default=True, callback=_statuses,
              help="Comma-separated MALL statuses of the orders to pick.")
@click.option("--orders", "order_ids", default=None, callback=_order_ids, metavar="ID,...",
              help="Exactly these MALL order ids, whatever their status (instead of --status).")
@click.option("--test", "include_test", is_flag=True, help="Include MALL test orders (left out by default).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The file to write: .xlsx (sheets Picking and Packing) or .csv (both sections, UTF-8).")
@MODE_OPTION
@account_option
@click.pass_context
@friendly_errors
def export_picking(click_ctx: click.Context, statuses: list[str], order_ids: list[int] | None, include_test: bool,
                   output: Path, file_mode: int, account: str | None) -> None:
    """A warehouse picking list: one line per product with the total quantity and which orders need how
    many (e.g. "10085339302×2, 10085339303×1"), sorted by the shop feed's warehouse location (else by
    item id); then a packing section per order. Orders without MALL data in the ledger are named as
    warnings, never silently left out.

    \b
    Examples:
      mall-connector export picking -o picking.xlsx
      mall-connector export picking --orders 10085339302,10085339303 -o picking.csv
    """
    from connector.exports.picking import build_picking, write_picking

    if order_ids is not None and click_ctx.get_parameter_source("statuses") is ParameterSource.COMMANDLINE:
        raise click.UsageError("give --status or --orders, not both")
    kind = _output(output, ("xlsx", "csv"))
    ctx: Context = click_ctx.find_object(Context)
    account = chosen_account(ctx.config(), account)  # issue 18
    ledger = _ledger(ctx)
    try:
        pl = build_picking(ledger, statuses=statuses, order_ids=order_ids, include_test=include_test,
                           account=account, with_account=several(ctx.config()))
    finally:
        ledger.close()
    _write(output, lambda: write_picking(pl, output, kind, mode=file_mode))
    pieces = sum(ln.quantity for ln in pl.lines)
    click.echo(f"wrote {output}: {len(pl.lines)} product(s), {pieces} piece(s) for {len(pl.orders)} order(s)")
    for w in pl.warnings:
        click.echo(f"warning: {w}", err=True)


@export_group.command("billing", short_help="Orders delivered in a period, for MALL's manual billing (.xlsx).")
@click.option("--from", "date_from", type=DATE, required=True, metavar="DATE",
              help="First day of the period (YYYY-MM-DD), from 00:00:00 Prague time.")
@click.option("--to", "date_to", type=DATE, required=True, metavar="DATE",
              help="Last day of the period (YYYY-MM-DD), up to 23:59:59 Prague time.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The .xlsx file to write.")
@MODE_OPTION
@account_option
@pass_ctx
@friendly_errors
def export_billing(ctx: Context, date_from: datetime, date_to: datetime, output: Path, file_mode: int,
                   account: str | None) -> None:
    """The manual-billing file for MALL: orders delivered in the period (by delivered_at), one row per
    item with unit price, VAT, commission and line total; COD amount (non-zero = a COD order),
    delivery price and order total on each order's first row; totals per currency. Sheets: Billing,
    Summary, and Check (delivered orders whose delivery time is unknown: check them by hand).
    Returned, cancelled and test orders are never billed.

    \b
    Example:
      mall-connector export billing --from 2026-11-01 --to 2026-11-15 -o billing-2026-11a.xlsx
    """
    from connector.exports.billing import build_billing, write_billing

    d_from, d_to = date_from.date(), date_to.date()
    if d_from > d_to:
        raise click.BadParameter(f"{d_to} is before --from {d_from}", param_hint="'--to'")
    _output(output, ("xlsx",))
    account = chosen_account(ctx.config(), account)  # issue 18
    ledger = _ledger(ctx)
    try:
        billing = build_billing(ledger, d_from, d_to, account=account, with_account=several(ctx.config()))
    finally:
        ledger.close()
    _write(output, lambda: write_billing(billing, output, mode=file_mode))
    totals = "; ".join(f"{cur} {t.total:,.2f} ({t.orders} order(s), {t.cod_orders} COD)"
                       for cur, t in billing.totals.items()) or "nothing delivered"
    click.echo(f"wrote {output}: {len(billing.orders)} order(s) delivered {d_from} to {d_to}: {totals}")
    if billing.check:
        click.echo(f"warning: {len(billing.check)} delivered order(s) without a known delivery time: "
                   "see the Check sheet", err=True)
