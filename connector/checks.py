"""The pre-launch checklist behind `mall-connector check` (after MALL's own launch checklist).

Each check prints one line: ✓ fine, ✗ must be fixed (with what to do), – cannot be checked.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click

from connector.config import EXIT_CONFIG, Config, ConfigError
from connector.logs import redact

OK, BAD, NA = "✓", "✗", "–"
SERVICE_USER = "mall-connector"  # the unit's User= (packaging/systemd/mall-connector.service)
WARN = "!"  # works, but should be fixed (e.g. a secret file other users can read)


@dataclass
class Line:
    mark: str
    text: str

    def show(self) -> None:
        color = {"✓": "green", "✗": "red", "–": "yellow", "!": "yellow"}[self.mark]
        from connector.safety import terminal_safe

        click.echo(f"{click.style(self.mark, fg=color)} {terminal_safe(self.text)}")


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
    counts = (f"{len(feed.rows) + len(feed.problems)} row(s), {len({r.mall_order_id for r in feed.rows})} order(s), "
              f"{len(statuses)} status(es)")
    unknown = mapping.unknown_statuses(statuses)
    if unknown:
        names = ", ".join(sorted(repr(u) for u in unknown))
        return first, Line(BAD, f"the shop feed ({counts}) has status(es) the mapping does not know: {names}; add "
                                f"each to [to_mall] or [ignore] in {mapping.path}")
    problems = f" ({len(feed.problems)} bad row(s): first {feed.problems[0]})" if feed.problems else ""
    return first, Line(OK if not feed.problems else BAD,
                       f"the mapping covers every status in the shop feed ({counts}){problems}")


def check_mall(config: Config, account=None) -> tuple[Line, Line]:
    """``account`` (issue 18, connector/accounts.Account): check that account's client_id instead."""
    from connector.mall.errors import MallError, MallUnauthorized
    from connector.sync.runner import make_client

    include_test = account.include_test_orders if account is not None else config.mall.include_test_orders
    client = make_client(config, client_id=account.client_id if account is not None else None)
    try:
        try:
            client.stats(days=1)
        except MallUnauthorized:
            return (Line(BAD, "MALL rejects the client_id (401): copy the API key from the MALL Partner portal "
                              "(Company profile → Information) into [mall] client_id"), Line(NA, "test orders not checked"))
        except MallError as e:
            return Line(BAD, f"MALL at {config.mall.base_url} did not answer properly: {e}"), Line(NA, "test orders not checked")
        first = Line(OK, f"MALL at {config.mall.base_url} accepts the client_id")
        quota = quota_line(client, config)  # issue 17: read from the answer just received
        if not include_test:
            return first, quota, Line(NA, "test orders are not synced ([mall] include_test_orders = false)")
        tests = [o for o in client.list_orders(include_test=True, basic=True) if getattr(o, "test", False)]
        if tests:
            return first, quota, Line(OK, f"{len(tests)} test order(s) visible on MALL")
        return first, quota, Line(NA, "no test order on MALL yet: create one in the MALL Partner portal to try the flow")
    finally:
        client.close()


def quota_line(client, config: Config) -> Line:
    """issue 17: MALL's rate-limit windows and what is left, from X-RateLimit-* of the last answer."""
    from connector.sync.ratelimit import in_reserve, quota_of

    q = quota_of(client)
    if q is None or (not q.windows and q.remaining is None):
        return Line(NA, "MALL sent no X-RateLimit headers: its call quota is not known here (see the partner portal)")
    windows = ", ".join(f"{w.limit} per {w.name}" for w in sorted(q.windows, key=lambda w: -w.seconds)) or "unknown"
    text = f"MALL call quota (orders): {windows}"
    if q.remaining is not None:
        text += f"; {q.remaining} left in the {q.window or 'current'} window"
        if q.reset_s is not None:
            text += f" (resets in {q.reset_s:.0f} s)"
    if q.day_remaining is not None and q.day_limit:
        text += f"; {q.day_remaining} of {q.day_limit} left today ({100 * q.day_remaining / q.day_limit:.0f} %)"
    if in_reserve(client, config.mall.reserve_share):
        return Line(WARN, f"{text}: below the reserve ([mall] reserve_share = {config.mall.reserve_share:g}), "
                          "optional calls (frequent sweeps, verification reads, --refresh) wait")
    return Line(OK, text)


def check_ledger(config: Config) -> Line:
    """The ledger folder is writable; an existing ledger is at the newest schema. Never creates a ledger
    (run as root, that would leave a root-owned file the service cannot write)."""
    from connector.ledger import open_ledger
    from connector.ledger.db import current_revision, head_revision
    from connector.preflight import folder_problem, section_key, sqlite_path, whoami

    url = redact(config.ledger.url)
    path = sqlite_path(config.ledger.url)
    if path is not None:
        problem = folder_problem(path.parent)
        if problem:
            return Line(BAD, f"ledger: {problem}: fix the folder or change {section_key('ledger.url')} (the service "
                             "keeps it in /var/lib/mall-connector, its StateDirectory)")
        if not path.exists():
            return Line(OK, f"ledger folder {path.parent} is writable by {whoami()}; the ledger {path} is created at "
                            "the first start")
        if not os.access(path, os.R_OK | os.W_OK):
            return Line(BAD, f"ledger {path} is not readable and writable by {whoami()}: chown it to the service user")
    from connector.ledger.dialect import is_postgres

    if is_postgres(config.ledger.url):  # issue 18: a server, not a file (the URL is shown without its password)
        return check_postgres_ledger(config)
    ledger = open_ledger(config.ledger.url, migrate_schema=False)
    try:
        rev = current_revision(ledger.engine)
        if rev != head_revision():
            return Line(OK, f"ledger {url} is at schema {rev}; the next start migrates it to {head_revision()}")
        return Line(OK, f"ledger {url} is writable and migrated ({ledger.orders.count()} orders)")
    finally:
        ledger.close()


def check_postgres_ledger(config: Config) -> Line:
    """A PostgreSQL ledger: reachable, writable (a write transaction takes the ledger's write lock), migrated;
    on replicas, who leads. Never migrates and never prints the password."""
    from connector.ledger import LedgerError, open_ledger
    from connector.ledger.db import current_revision, head_revision
    from connector.ledger.dialect import describe

    where = describe(config.ledger.url)
    try:
        ledger = open_ledger(config.ledger.url, migrate_schema=False, busy_timeout_ms=5000)
        try:
            ledger.ping()
            rev = current_revision(ledger.engine)
            if rev is None:
                return Line(OK, f"ledger: {where} is reachable; its schema is created at the first start")
            if rev != head_revision():
                return Line(OK, f"ledger: {where} is reachable, at schema {rev}; the next start migrates "
                                f"it to {head_revision()}")
            with ledger.write():
                pass
            lead = ledger.leases.current()
            leader = f"; leader replica {lead[0]}" if lead else ""
            return Line(OK, f"ledger: {where} is reachable, writable and migrated "
                            f"({ledger.orders.count()} orders){leader}")
        finally:
            ledger.close()
    except (LedgerError, Exception) as e:  # noqa: BLE001 - unreachable, wrong password, no such database
        reason = redact(str(getattr(e, "orig", None) or e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        return Line(BAD, f"ledger: {where} is not reachable: {reason} (check [ledger] url and the "
                         "password: credential ledger_password, env MALL_CONNECTOR_LEDGER_PASSWORD or "
                         "[ledger] password_file)")


def check_outbox(config: Config) -> Line:
    """A probe file is created the way hand-offs are (mkstemp, mode, group) and removed again."""
    from connector.files import FileMode, check_published, group_name, parse_mode, write_new_file
    from connector.preflight import outbox_key, outbox_settings, section_key, whoami

    sub = outbox_settings(config)
    if sub is None:
        return Line(NA, f"adapter {config.shop.adapter} has no outbox folder: not checked")
    folder = Path(sub.outbox)
    key = section_key(outbox_key(config))
    if not folder.is_dir():
        return Line(BAD, f"outbox folder {folder} does not exist: create it ({key}; docs/service.md \"The outbox\")")
    want = FileMode(parse_mode(sub.outbox_mode), sub.outbox_group)
    try:
        gid = want.gid_for(folder)
    except KeyError:
        return Line(BAD, f"outbox_group {sub.outbox_group!r} does not exist: create the group or fix "
                         f"[shop.{config.shop.adapter}] outbox_group")
    probe = None
    try:
        probe = write_new_file(folder, lambda f: f.write(b"probe\n"), want, prefix=".mall-connector-check-",
                               suffix=".tmp")
        check_published(probe, want, folder, repair=False)
    except OSError as e:
        return Line(BAD, f"outbox {folder}: {whoami()} cannot create its files there ({e.strerror or e}): make the "
                         f"folder writable for the service user ({key})")
    finally:
        if probe is not None:
            try:
                os.unlink(probe)
            except OSError:
                pass
    readable = "readable" if want.mode & stat.S_IRGRP else "NOT readable"
    line = (f"outbox {folder} is writable; its files will be {want.mode:04o}, {readable} by the group "
            f"{group_name(gid)!r}")
    if not want.mode & stat.S_IRGRP:
        return Line(BAD, line + f": set [shop.{config.shop.adapter}] outbox_mode = \"0640\" so the shop can import them")
    if not os.stat(folder).st_mode & stat.S_IWGRP:
        return Line(NA, line + f"; the group cannot delete imported files (if the shop's importer should: chmod "
                               f"g+w {folder})")
    return Line(OK, line)


def check_alerts(config: Config) -> Line:
    a = config.alerts
    where = []
    if a.email_to and a.smtp_host:
        where.append(f"e-mail to {', '.join(a.email_to)} via {a.smtp_host}:{a.smtp_port}")
    if a.webhook_url:
        from urllib.parse import urlsplit

        where.append(f"the webhook at {urlsplit(a.webhook_url).hostname}")
    if not where:
        return Line(NA, "no alert channel: alerts only reach the log; set [alerts] email_to + smtp_host and/or "
                        "webhook_url (then try: mall-connector check --send-test-alert)")
    return Line(OK, "alerts go to " + " and ".join(where))


def send_test_alert(config: Config) -> list[Line]:
    """One real alert through every configured channel; says where it went."""
    import socket as _socket

    from connector.alerts import EmailSender, senders_from_config

    senders = senders_from_config(config.alerts)
    if not senders:
        return [Line(BAD, "no alert channel to send a test alert to: set [alerts] email_to + smtp_host and/or "
                          "webhook_url")]
    out = []
    for sender in senders:
        if isinstance(sender, EmailSender):
            where = f"by e-mail to {', '.join(config.alerts.email_to)} via {config.alerts.smtp_host}"
        else:
            where = f"to the webhook at {getattr(sender, 'host', '?')}"
        try:
            sender.send("mall-connector test alert",
                        f"A test alert from `mall-connector check --send-test-alert` on {_socket.gethostname()}. "
                        "If you read this, alerts reach you.")
        except Exception as e:  # noqa: BLE001 - reported as a line
            out.append(Line(BAD, f"test alert {where} failed: {redact(str(e))}"))
        else:
            out.append(Line(OK, f"test alert sent {where}"))
    return out


def identity_line() -> Line | None:
    """When `check` runs as another user than the unit's User=, what it sees differs from the service."""
    from connector.preflight import whoami

    me = whoami()
    if me == SERVICE_USER:
        return None
    return Line(NA, f"running as {me}, not as the service user {SERVICE_USER}: file permissions and the systemd "
                    f"credential are not what the service sees. Run it as the service: runuser -u {SERVICE_USER} "
                    f"-- mall-connector check (docs/service.md shows the form with the credential)")


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


def run_checks(ctx, *, send_alert: bool = False, fix: bool = False) -> int:
    from connector.commands.config_cmd import secret_source_lines

    first = identity_line()
    if first:
        first.show()
    try:
        config = ctx.config()
    except ConfigError as e:
        Line(BAD, f"config: {redact(str(e))}").show()
        return EXIT_CONFIG
    lines = [Line(OK, f"config {config.source_path} is valid")]
    for text in secret_source_lines(config):
        mark, _, rest = text.partition(" ")
        if rest.startswith("client_id: not found"):
            mark = BAD
        lines.append(Line(mark, rest))
    has_client_id = "mall.client_id" in config.secret_sources
    from connector.safety import secret_file_warnings

    lines.extend(Line(WARN, w) for w in secret_file_warnings(config))
    try:
        lines.extend(check_mapping(config))
    except ConfigError as e:
        lines.append(Line(BAD, f"mapping: {redact(str(e))}"))
    except Exception as e:  # noqa: BLE001
        lines.append(Line(BAD, f"mapping / shop feed: {redact(str(e))}"))
    if config.shop.mapping is None:
        lines.append(Line(NA, f"[shop] mapping is not set: the shipped {config.mapping_path} is replaced on every "
                              "upgrade; make your own copy (mall-connector init) and set [shop] mapping"))
    if config.accounts:  # issue 18: every account's client_id, each on its own lines
        from connector.accounts import accounts

        for account in accounts(config):
            try:
                for line in check_mall(config, account):
                    lines.append(Line(line.mark, f"account {account.name}: {line.text}"))
            except Exception as e:  # noqa: BLE001
                lines.append(Line(BAD, f"MALL, account {account.name}: {redact(str(e))}"))
    elif has_client_id:
        try:
            lines.extend(check_mall(config))
        except Exception as e:  # noqa: BLE001
            lines.append(Line(BAD, f"MALL: {redact(str(e))}"))
    else:
        lines.append(Line(NA, "MALL not contacted: no client_id here"))
    lines.append(_safe(lambda: check_ledger(config), "ledger"))
    try:
        receiver_line, running = check_receiver(config)
    except Exception as e:  # noqa: BLE001
        receiver_line, running = Line(BAD, f"receiver: {redact(str(e))}"), None
    lines.append(receiver_line)
    lines.append(_safe(lambda: check_public_url(config, running), "public_url"))
    lines.append(_safe(lambda: check_outbox(config), "outbox"))
    lines.append(_safe(lambda: check_alerts(config), "alerts"))
    if send_alert:
        lines.extend(send_test_alert(config))
    try:  # issue 15: carriers and carrier calls
        from connector.carrier_checks import check_carriers

        lines.extend(check_carriers(config))
    except Exception as e:  # noqa: BLE001
        lines.append(Line(BAD, f"carriers: {redact(str(e))}"))
    try:
        lines.extend(check_shop_webhooks(config, fix))
    except Exception as e:  # noqa: BLE001
        lines.append(Line(BAD, f"shop webhooks: {redact(str(e))}"))
    for line in lines:
        line.show()
    bad = sum(1 for line in lines if line.mark == BAD)
    click.echo(f"\n{'all set' if not bad else f'{bad} problem(s) to fix before launch'}")
    return 1 if bad else 0
