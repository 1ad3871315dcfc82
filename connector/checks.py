"""The pre-launch checklist behind `mall-connector check` (after MALL's own launch checklist).

Each check prints one line: ✓ fine, ✗ must be fixed (with what to do), – cannot be checked.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Callable

import click

from connector.config import EXIT_CONFIG, Config, ConfigError
from connector.logs import redact

OK, BAD, NA = "✓", "✗", "–"


@dataclass
class Line:
    mark: str
    text: str

    def show(self) -> None:
        color = {"✓": "green", "✗": "red", "–": "yellow"}[self.mark]
        click.echo(f"{click.style(self.mark, fg=color)} {self.text}")


def _safe(fn: Callable[[], Line], what: str) -> Line:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - every check reports, none crashes the list
        return Line(BAD, f"{what}: {redact(str(e))}")


def check_mapping(config: Config) -> tuple[Line, Line]:
    from adapters import make_adapter
    from adapters.base import FeedUnavailable
    from connector.mapping import load_mapping

    mapping = load_mapping(config.mapping_path)
    first = Line(OK, f"mapping {mapping.path} is valid")
    try:
        feed = make_adapter(config).read_feed(wait_for_settle=True)
    except FeedUnavailable as e:
        return first, Line(BAD, f"shop feed cannot be read: {redact(str(e))}")
    statuses = {row.status for row in feed.rows}
    unknown = mapping.unknown_statuses(statuses)
    if unknown:
        names = ", ".join(sorted(repr(u) for u in unknown))
        return first, Line(BAD, f"the shop feed has status(es) the mapping does not know: {names}; add each to "
                                f"[to_mall] or [ignore] in {mapping.path}")
    problems = f" ({len(feed.problems)} bad row(s): first {feed.problems[0]})" if feed.problems else ""
    return first, Line(OK if not feed.problems else BAD,
                       f"the mapping covers every status in the shop feed ({len(feed.rows)} order(s), "
                       f"{len(statuses)} status(es)){problems}")


def check_mall(config: Config) -> tuple[Line, Line]:
    from connector.mall.errors import MallError, MallUnauthorized
    from connector.sync.runner import make_client

    client = make_client(config)
    try:
        try:
            client.stats(days=1)
        except MallUnauthorized:
            return (Line(BAD, "MALL rejects the client_id (401): copy the API key from the MALL Partner portal "
                              "(Company profile → Information) into [mall] client_id"), Line(NA, "test orders not checked"))
        except MallError as e:
            return Line(BAD, f"MALL at {config.mall.base_url} did not answer properly: {e}"), Line(NA, "test orders not checked")
        first = Line(OK, f"MALL at {config.mall.base_url} accepts the client_id")
        if not config.mall.include_test_orders:
            return first, Line(NA, "test orders are not synced ([mall] include_test_orders = false)")
        tests = [o for o in client.list_orders(include_test=True, basic=True) if getattr(o, "test", False)]
        if tests:
            return first, Line(OK, f"{len(tests)} test order(s) visible on MALL")
        return first, Line(NA, "no test order on MALL yet: create one in the MALL Partner portal to try the flow")
    finally:
        client.close()


def check_ledger(config: Config) -> Line:
    from connector.ledger import open_ledger
    from connector.ledger.db import current_revision, head_revision

    ledger = open_ledger(config.ledger.url)
    try:
        with ledger.write() as c:
            ledger.kv.set(c, "check:last_run", "ok")
        rev = current_revision(ledger.engine)
        if rev != head_revision():
            return Line(BAD, f"ledger schema is at {rev}, expected {head_revision()}")
        return Line(OK, f"ledger {redact(config.ledger.url)} is writable and migrated ({ledger.orders.count()} orders)")
    finally:
        ledger.close()


def _get_json(url: str) -> dict | None:
    import httpx

    try:
        r = httpx.get(url, timeout=5.0, follow_redirects=True)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def check_receiver(config: Config) -> tuple[Line, dict | None]:
    rc = config.receiver
    if not config.token_values:
        return Line(BAD, "no webhook token: add [receiver] tokens (or env MALL_CONNECTOR_TOKENS)"), None
    local = f"http://{rc.host}:{rc.port}/healthz"
    running = _get_json(local)
    if running and running.get("service") == "mall-connector":
        return Line(OK, f"receiver address {rc.listen} is served by a running mall-connector"), running
    try:
        family = socket.AF_INET6 if ":" in rc.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((rc.host, rc.port))
    except OSError as e:
        return Line(BAD, f"receiver address {rc.listen} is not free ({e.strerror}): choose another [receiver] listen"), None
    return Line(OK, f"receiver address {rc.listen} is free"), None


def check_public_url(config: Config, running: dict | None) -> Line:
    public = config.receiver.public_url
    if not public:
        return Line(NA, "[receiver] public_url is not set: the webhook URL MALL calls cannot be checked from here")
    url = public.rstrip("/") + "/healthz"
    seen = _get_json(url)
    if not seen or seen.get("service") != "mall-connector":
        return Line(BAD, f"{public} does not answer as mall-connector: check the reverse proxy / firewall forwards "
                         f"it to {config.receiver.listen}")
    if running and seen.get("instance") != running.get("instance"):
        return Line(BAD, f"{public} answers from another mall-connector instance than the one on "
                         f"{config.receiver.listen}")
    return Line(OK, f"{public} reaches this connector; paste {public.rstrip('/')}/webhooks/mall/<token> into the "
                    "MALL Partner portal (Partner → Webhook)")


def check_shop_webhooks(config: Config, fix: bool) -> list[Line]:
    """The shop's own webhooks (API adapters: adapters/shared/wiring.py); none for a feed adapter."""
    from adapters.shared.wiring import webhook_lines

    return [Line(NA if ok is None else OK if ok else BAD, redact(text)) for ok, text in webhook_lines(config, fix=fix)]


def run_checks(ctx, fix: bool = False) -> int:
    try:
        config = ctx.config()
        config.client_id
    except ConfigError as e:
        Line(BAD, f"config: {redact(str(e))}").show()
        return EXIT_CONFIG
    lines = [Line(OK, f"config {config.source_path} is valid")]
    try:
        lines.extend(check_mapping(config))
    except ConfigError as e:
        lines.append(Line(BAD, f"mapping: {redact(str(e))}"))
    except Exception as e:  # noqa: BLE001
        lines.append(Line(BAD, f"mapping / shop feed: {redact(str(e))}"))
    try:
        lines.extend(check_mall(config))
    except Exception as e:  # noqa: BLE001
        lines.append(Line(BAD, f"MALL: {redact(str(e))}"))
    lines.append(_safe(lambda: check_ledger(config), "ledger"))
    try:
        receiver_line, running = check_receiver(config)
    except Exception as e:  # noqa: BLE001
        receiver_line, running = Line(BAD, f"receiver: {redact(str(e))}"), None
    lines.append(receiver_line)
    lines.append(_safe(lambda: check_public_url(config, running), "public_url"))
    try:
        lines.extend(check_shop_webhooks(config, fix))
    except Exception as e:  # noqa: BLE001
        lines.append(Line(BAD, f"shop webhooks: {redact(str(e))}"))
    for line in lines:
        line.show()
    bad = sum(1 for line in lines if line.mark == BAD)
    click.echo(f"\n{'all set' if not bad else f'{bad} problem(s) to fix before launch'}")
    return 1 if bad else 0
