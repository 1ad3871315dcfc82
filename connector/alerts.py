"""Alerts to a human: e-mail and/or a chat webhook, deduplicated through the ledger.

The daemon runs unattended, so a problem must reach a person once, be repeated while it lasts
(every ``[alerts] repeat_after_s``), and be followed by exactly one "resolved" message. The
state lives in the ledger's ``alerts`` table, so a restart neither forgets nor re-sends.

Problem keys the daemon uses (one open problem per key):

* ``change_failed:{change_id}`` - a change could not be applied at MALL and gave up (ledger
  ``changes.id``); resolved when it is retried successfully or skipped by hand.
* ``mall_unauthorized`` - MALL answers 401/403: the client_id is wrong or revoked; nothing syncs.
* ``rate_limited`` - MALL has answered 429 for longer than ``[alerts] rate_limit_alert_after_s``.
* ``feed_unreadable`` - the shop feed could not be read ``[shop] unreadable_polls_alert`` polls in a row.
* ``action:{action_id}`` - a needs-action item (ledger ``actions.id``) a human must do; resolved when done.
* ``handoff_failing`` - orders or changes cannot be written to the shop's outbox folder.

Row semantics (``alerts`` table): ``state`` open|resolved; ``message`` is the redacted
"title\\nmessage"; ``count`` how often the problem was reported since it opened. While open,
``last_sent_at`` is when the last alert went out (NULL: not yet delivered). Once resolved,
``last_sent_at`` is NULL while the "resolved" message is still owed, else when it went out.

Sending: every text passes through ``connector.logs.redact``. A failing sender is logged and
never raises; the problem stays unsent and the next call tries again, but a sender that just
failed is skipped for ``sender_retry_s`` so an unreachable SMTP server cannot stall the
scheduler (and trip the systemd watchdog) once per open problem. With several senders, one
success counts as delivered (the human was told; the other channel's failure is logged).
With no sender configured the alert is only logged at WARNING, still deduplicated.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
import threading
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Callable, Protocol, Sequence
from urllib.parse import urlsplit

import httpx

from connector.config import AlertsConfig
from connector.ledger.repo import utcnow
from connector.logs import redact, register_secret

log = logging.getLogger("mall_connector.alerts")

SUBJECT_PREFIX = "[mall-connector] "
SEND_TIMEOUT_S = 10.0
MAX_TEXT = 4000  # chat webhooks cut or refuse long texts; an alert is a pointer, not a report
KEY_MAX = 160  # alerts.key column width


class Sender(Protocol):
    """One channel. ``send`` raises on failure; the Alerter catches and logs it."""

    name: str

    def send(self, title: str, text: str) -> None: ...


class EmailSender:
    """Plain-text e-mail through SMTP. Port 465 means implicit TLS; else STARTTLS when configured."""

    name = "email"

    def __init__(self, config: AlertsConfig, *, timeout_s: float = SEND_TIMEOUT_S):
        self.config = config
        self.timeout_s = timeout_s
        if config.smtp_password is not None:
            register_secret(config.smtp_password.get_secret_value())
        if config.smtp_user and not config.smtp_starttls and config.smtp_port != 465:
            log.warning("alerts: SMTP login without TLS sends the password in clear; set alerts.smtp_starttls = true")

    def send(self, title: str, text: str) -> None:
        c = self.config
        msg = EmailMessage()
        msg["Subject"] = SUBJECT_PREFIX + title
        msg["From"] = c.email_from
        msg["To"] = ", ".join(c.email_to)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=c.email_from.rpartition("@")[2] or None)
        msg.set_content(text)
        if c.smtp_port == 465:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(c.smtp_host, c.smtp_port, timeout=self.timeout_s,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=self.timeout_s)
        with smtp:
            smtp.ehlo_or_helo_if_needed()
            if c.smtp_starttls and c.smtp_port != 465:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if c.smtp_user:
                password = c.smtp_password.get_secret_value() if c.smtp_password else ""
                smtp.login(c.smtp_user, password)
            smtp.send_message(msg)


class WebhookSender:
    """JSON POST ``{"title", "text"}``: Slack and Teams incoming webhooks show ``text``.

    The URL is a credential (whoever has it can post), so it is registered as a secret and
    errors name only its host."""

    name = "webhook"

    def __init__(self, url: str, *, timeout_s: float = SEND_TIMEOUT_S, transport: httpx.BaseTransport | None = None):
        self.url = url
        self.host = urlsplit(url).hostname or "?"
        self.timeout_s = timeout_s
        self.transport = transport
        register_secret(url)

    def send(self, title: str, text: str) -> None:
        try:
            with httpx.Client(timeout=self.timeout_s, transport=self.transport, follow_redirects=False) as client:
                r = client.post(self.url, json={"title": title, "text": f"{title}\n\n{text}"})
        except httpx.HTTPError as e:  # the exception text may carry the URL: name the type only
            raise RuntimeError(f"webhook {self.host}: {type(e).__name__}") from None
        if not 200 <= r.status_code < 300:
            raise RuntimeError(f"webhook {self.host} answered HTTP {r.status_code}: {r.text[:200]}")


def senders_from_config(config: AlertsConfig) -> list[Sender]:
    """The channels the [alerts] section configures (possibly none)."""
    out: list[Sender] = []
    if config.smtp_host and config.email_to:
        out.append(EmailSender(config))
    elif config.smtp_host or config.email_to:
        log.warning("alerts: e-mail needs both alerts.smtp_host and alerts.email_to; e-mail alerts are off")
    if config.webhook_url:
        out.append(WebhookSender(config.webhook_url))
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fmt(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "-"


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60:
        return f"{int(seconds // 60)} min"
    return f"{int(seconds)} s"


class Alerter:
    """Opens, repeats and resolves problems; at most one alert per problem per ``repeat_after_s``.

    Thread-safe: one lock serialises decide-send-record, so two scheduler threads cannot send
    the same alert twice. The send happens outside any ledger transaction (no write lock held
    across network I/O); it is recorded after it succeeded, so a crash mid-send repeats an
    alert rather than losing it.

    ``clock`` returns the current naive-UTC datetime (the ledger's convention); tests inject one.
    ``senders=None`` builds them from ``config``; ``senders=[]`` means log only.
    """

    def __init__(self, config: AlertsConfig, ledger, *, senders: Sequence[Sender] | None = None,
                 clock: Callable[[], datetime] | None = None, sender_retry_s: float = 60.0):
        self.config = config
        self.ledger = ledger
        self.senders: list[Sender] = list(senders_from_config(config) if senders is None else senders)
        self.clock = clock or utcnow
        self.repeat_after = timedelta(seconds=config.repeat_after_s)
        self.sender_retry = timedelta(seconds=sender_retry_s)
        self.hostname = socket.gethostname()
        self._lock = threading.Lock()
        self._sender_down_until: dict[str, datetime] = {}

    # -- public API ---------------------------------------------------------------------------
    def problem(self, key: str, title: str, message: str) -> bool:
        """Open or refresh the problem ``key``; alert when new, unsent or due again. True if sent."""
        self._check_key(key)
        title = _one_line(redact(title))[:200] or key
        message = redact(message)[:MAX_TEXT]
        with self._lock:
            now = self._now()
            with self.ledger.write() as c:
                row = self.ledger.alerts.get(c, key)
                stored = f"{title}\n{message}"
                if row is None or row.state != "open":  # new, or back again after it was resolved: a new problem
                    self.ledger.alerts.open(c, key, stored, now, exists=row is not None)
                    first_at, count, last_sent = now, 1, None
                else:
                    count = row.count + 1
                    self.ledger.alerts.repeat(c, key, stored, count)
                    first_at, last_sent = row.first_at, row.last_sent_at
            if last_sent is not None and now - last_sent < self.repeat_after:
                return False
            reminder = "Reminder: this problem is still open.\n\n" if last_sent is not None else ""
            body = (
                f"{reminder}{message}\n\n"
                f"Problem: {key}\n"
                f"Open since: {_fmt(first_at)} (reported {count}x)\n"
                f"Host: {self.hostname}\n"
                f"You will be reminded every {_duration(self.repeat_after.total_seconds())} while it lasts "
                f"and told once when it is resolved."
            )
            if not self._deliver(key, title, body, now):
                return False
            with self.ledger.write() as c:
                self.ledger.alerts.mark_sent(c, key, "open", now)
            return True

    def resolved(self, key: str, message: str | None = None) -> bool:
        """Close the problem ``key`` if open and send one "resolved" message. True if sent.

        A problem nobody was told about (every send failed) is closed silently. A "resolved"
        message that failed to go out is retried by the next ``resolved(key)`` call."""
        self._check_key(key)
        with self._lock:
            now = self._now()
            with self.ledger.write() as c:
                row = self.ledger.alerts.get(c, key)
                if row is None:
                    return False
                if row.state == "open":
                    announced = row.last_sent_at is not None
                    resolved_at = now
                    # NULL = the "resolved" message is owed; a timestamp = nothing (more) to send.
                    self.ledger.alerts.resolve(c, key, now, last_sent_at=None if announced else now)
                    if not announced:
                        log.info("alert %s resolved before anyone was told; no message sent", key)
                        return False
                elif row.last_sent_at is None:
                    resolved_at = row.resolved_at
                else:
                    return False
            title, _, _ = row.message.partition("\n")
            text = redact(message)[:MAX_TEXT] if message else "The problem has cleared."
            body = (
                f"{text}\n\n"
                f"Problem: {key}\n"
                f"Open from {_fmt(row.first_at)} to {_fmt(resolved_at)} (reported {row.count}x)\n"
                f"Host: {self.hostname}"
            )
            if not self._deliver(key, "Resolved: " + title, body, now):
                return False
            with self.ledger.write() as c:
                self.ledger.alerts.mark_sent(c, key, "resolved", now, only_unsent=True)
            return True

    def open_problems(self) -> list[dict]:
        """Open problems, oldest first: key, title, message, first_at, last_sent_at, count."""
        rows = self.ledger.alerts.open_problems()
        out = []
        for r in rows:
            title, _, message = r.message.partition("\n")
            out.append({"key": r.key, "title": title, "message": message, "first_at": r.first_at,
                        "last_sent_at": r.last_sent_at, "count": r.count})
        return out

    # -- internals ----------------------------------------------------------------------------
    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is not None:  # the ledger stores naive UTC
            now = now.astimezone(timezone.utc).replace(tzinfo=None)
        return now

    @staticmethod
    def _check_key(key: str) -> None:
        if not key or len(key) > KEY_MAX:
            raise ValueError(f"alert key must be 1..{KEY_MAX} characters, got {key!r}")

    def _deliver(self, key: str, title: str, body: str, now: datetime) -> bool:
        """Send through every sender not backing off; True when at least one delivered."""
        title, body = redact(title), redact(body)  # once more: cheap, and the last gate
        if not self.senders:
            log.warning("ALERT %s: %s: %s", key, title, _one_line(body))
            return True
        ready = [x for x in self.senders if self._sender_down_until.get(x.name, now) <= now]
        if not ready:
            log.debug("alert %s waits: every sender failed less than %s ago", key, self.sender_retry)
            return False
        log.warning("ALERT %s: %s", key, title)
        delivered = False
        for sender in ready:
            try:
                sender.send(title, body)
            except Exception as e:  # noqa: BLE001 - a broken channel must never break the sync
                self._sender_down_until[sender.name] = now + self.sender_retry
                log.warning("alert %s not sent by %s (retrying in %s): %s", key, sender.name,
                            _duration(self.sender_retry.total_seconds()), redact(f"{type(e).__name__}: {e}"))
            else:
                self._sender_down_until.pop(sender.name, None)
                delivered = True
                log.info("alert %s sent by %s", key, sender.name)
        return delivered
