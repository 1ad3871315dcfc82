"""Alerts to a human: e-mail and/or a chat webhook, deduplicated through the ledger, sent as a digest.

The daemon runs unattended, so a problem must reach a person once, be repeated while it lasts
(at most every ``[alerts] repeat_after_s``), and be followed by exactly one "resolved" message. The
state lives in the ledger's ``alerts`` table, so a restart neither forgets nor re-sends.

Two ways in:

* ``observe(key, ...)`` / ``clear(key, ...)`` + ``flush()`` - the daemon's way (issue 14). The rules
  (connector/alert_rules.py, one table) observe what is wrong after every job; ``flush`` sends one
  message per channel listing what is new, still open (due for a repeat) and resolved, at most
  ``digest_s`` after the oldest of them; an *urgent* new problem (MALL rejecting the account, the
  feed down, an order due within 2 hours) makes it go out at once.
* ``problem(key, ...)`` / ``resolved(key, ...)`` - one problem, sent at once (outside the digest).

The problem keys and their rules are the table ``RULES`` in connector/alert_rules.py (and the
same table in docs/alerts.md).

Row semantics (``alerts`` table): ``state`` open|resolved; ``message`` is the redacted
"title\\nmessage" (once resolved, "title\\nresolution"). While open,
``last_sent_at`` is when the last alert went out (NULL: not yet delivered). Once resolved,
``last_sent_at`` is NULL while the "resolved" message is still owed, else when it went out.
``urgent`` skips the digest wait; ``last_seen_at`` is the latest evaluation that saw it. ``count``
is how many polls saw the problem: the wording is "seen on 569 polls", never "reported 569x",
because it is not how many messages were sent.

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
from connector.timefmt import clock_time, duration, zone_name

log = logging.getLogger("mall_connector.alerts")

SUBJECT_PREFIX = "[mall-connector] "
SEND_TIMEOUT_S = 10.0
MAX_TEXT = 4000  # chat webhooks cut or refuse long texts; an alert is a pointer, not a report
KEY_MAX = 160  # alerts.key column width
DIGEST_ITEMS = 25  # problems listed per section of a digest; the rest are counted ("and 480 more")
DIGEST_ITEM_TEXT = 1200  # characters of one problem's text in a digest (chat webhooks refuse long texts)


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


def _polls(n: int) -> str:
    return f"seen on {n} poll{'s' if n != 1 else ''}"


class Alerter:
    """Opens, repeats and resolves problems; at most one alert per problem per ``repeat_after_s``.

    Thread-safe: one lock serialises decide-send-record, so two scheduler threads cannot send
    the same alert twice. The send happens outside any ledger transaction (no write lock held
    across network I/O); it is recorded after it succeeded, so a crash mid-send repeats an
    alert rather than losing it.

    ``clock`` returns the current naive-UTC datetime (the ledger's convention); tests inject one.
    ``senders=None`` builds them from ``config``; ``senders=[]`` means log only. ``tz`` is the zone
    times are shown in (``[shop] timezone``); each message names it once.
    """

    def __init__(self, config: AlertsConfig, ledger, *, senders: Sequence[Sender] | None = None,
                 clock: Callable[[], datetime] | None = None, sender_retry_s: float = 60.0,
                 tz: str = "Europe/Prague"):
        self.config = config
        self.ledger = ledger
        self.senders: list[Sender] = list(senders_from_config(config) if senders is None else senders)
        self.clock = clock or utcnow
        self.repeat_after = timedelta(seconds=config.repeat_after_s)
        self.digest = timedelta(seconds=config.digest_s)
        self.sender_retry = timedelta(seconds=sender_retry_s)
        self.tz = tz
        self.hostname = socket.gethostname()
        self._lock = threading.Lock()
        self._sender_down_until: dict[str, datetime] = {}

    # -- the digest (the daemon's way) --------------------------------------------------------
    def observe(self, key: str, title: str, message: str, *, urgent: bool = False, seen: bool = True) -> None:
        """Record that problem ``key`` is there now. Sends nothing: ``flush`` does.

        ``seen`` counts this evaluation as one more poll that saw it. A problem that turns urgent while
        open (an order now due within 2 hours) is announced again at once."""
        self.observe_many([(key, title, message, urgent)], seen=seen)

    def observe_many(self, problems, *, seen: bool = True) -> None:
        """``observe`` for [(key, title, message, urgent)], in one ledger transaction (one commit per
        evaluation, however many problems are open)."""
        if not problems:
            return
        prepared = []
        for key, title, message, urgent in problems:
            self._check_key(key)
            title = _one_line(redact(title))[:200] or key
            prepared.append((key, f"{title}\n{redact(message)[:MAX_TEXT]}", bool(urgent)))
        with self._lock:
            now = self._now()
            repo = self.ledger.alerts
            with self.ledger.write() as c:
                rows = repo.get_many(c, [k for k, _, _ in prepared])
                for key, stored, urgent in prepared:
                    row = rows.get(key)
                    if row is None or row.state != "open":  # new, or back again after it was resolved
                        repo.open(c, key, stored, now, exists=row is not None, urgent=urgent)
                        continue
                    escalated = urgent and not row.urgent
                    if row.last_sent_at is not None and not escalated:
                        # Told already: it keeps the title it was announced under, so its reminders and its
                        # "Resolved: ..." match what the human saw (e-mail threads by subject); the text is current.
                        stored = row.message.partition("\n")[0] + "\n" + stored.partition("\n")[2]
                    values = {"message": stored, "last_seen_at": now, "urgent": urgent or row.urgent}
                    if seen:
                        values["count"] = row.count + 1
                    if escalated:
                        values["last_sent_at"] = None  # escalated: say it again, now
                    repo.refresh(c, key, **values)

    def clear(self, key: str, message: str | None = None) -> None:
        """Problem ``key`` is gone: the next digest says "resolved" (once). Silent if nobody was told."""
        self._check_key(key)
        with self._lock:
            now = self._now()
            with self.ledger.write() as c:
                row = self.ledger.alerts.get(c, key)
                if row is None or row.state != "open":
                    return
                announced = row.last_sent_at is not None
                title = row.message.partition("\n")[0]
                text = redact(message)[:MAX_TEXT] if message else "The problem has cleared."
                self.ledger.alerts.resolve(c, key, now, last_sent_at=None if announced else now,
                                           message=f"{title}\n{text}")
            if not announced:
                log.info("alert %s resolved before anyone was told; no message sent", key)

    def open_keys(self, prefix: str = "") -> set[str]:
        """Keys of the open problems starting with ``prefix`` (a rule resolves what it no longer sees)."""
        return self.ledger.alerts.open_keys(prefix)

    def flush(self) -> bool:
        """Send the digest when it is due; True when one went out (or was logged, with no sender).

        Due: an urgent problem is new or resolved (who was told at once is told at once that it cleared), or
        the oldest thing waiting (a new problem, a repeat that came due, a resolution) has waited ``digest_s``.
        One message per channel lists them all."""
        with self._lock:
            now = self._now()
            rows = self.ledger.alerts.owed(now, self.repeat_after)
            if not rows:
                return False
            new = [r for r in rows if r.state == "open" and r.last_sent_at is None]
            repeat = [r for r in rows if r.state == "open" and r.last_sent_at is not None]
            gone = [r for r in rows if r.state == "resolved"]
            waiting_since = min([r.first_at for r in new] + [r.last_sent_at + self.repeat_after for r in repeat]
                                + [r.resolved_at for r in gone])
            urgent = any(r.urgent for r in new) or any(r.urgent for r in gone)
            if not urgent and now - waiting_since < self.digest:
                return False
            title, body = self._digest_text(new, repeat, gone, now)
            if not self._deliver("digest", title, body, now):
                return False
            with self.ledger.write() as c:
                for r in new + repeat:
                    self.ledger.alerts.mark_sent(c, r.key, "open", now)
                for r in gone:
                    self.ledger.alerts.mark_sent(c, r.key, "resolved", now, only_unsent=True)
            return True

    def _since(self, r, now: datetime) -> str:
        return f"open since {clock_time(r.first_at, self.tz, now)} ({duration((now - r.first_at).total_seconds())})"

    def _digest_text(self, new, repeat, gone, now: datetime) -> tuple[str, str]:
        def title_of(r) -> str:
            return r.message.partition("\n")[0]

        new = sorted(new, key=lambda r: not r.urgent)  # urgent first: in the subject, never cut off by the bound

        if len(new) + len(repeat) + len(gone) == 1:
            r = (new + repeat + gone)[0]
            title = title_of(r) if r in new else (f"Still open: {title_of(r)}" if r in repeat
                                                 else f"Resolved: {title_of(r)}")
        else:
            parts = [f"{len(new)} new" if new else "", f"{len(repeat)} still open" if repeat else "",
                     f"{len(gone)} resolved" if gone else ""]
            title = ", ".join(p for p in parts if p)
            if new:
                title += ": " + title_of(new[0]) + (" and more" if len(new) > 1 else "")
        out: list[str] = []
        for heading, group in (("New", new), ("Still open", repeat), ("Resolved", gone)):
            if not group:
                continue
            out.append(f"{heading} ({len(group)}):")
            for r in group[:DIGEST_ITEMS]:
                head, _, text = r.message.partition("\n")
                if len(text) > DIGEST_ITEM_TEXT:
                    text = text[:DIGEST_ITEM_TEXT - 1] + "…"
                if r.state == "resolved":
                    span = (f"open from {clock_time(r.first_at, self.tz, now)} to "
                            f"{clock_time(r.resolved_at, self.tz, now)} "
                            f"({duration((r.resolved_at - r.first_at).total_seconds())}), {_polls(r.count)}")
                else:
                    span = f"{self._since(r, now)}, {_polls(r.count)}"
                out.append(f"* {'URGENT: ' if r.urgent and r.state == 'open' else ''}{head} - {span}")
                out += [f"  {line}" for line in text.splitlines() if line.strip()]
                out.append(f"  (problem {r.key})")
            if len(group) > DIGEST_ITEMS:
                out.append(f"* ... and {len(group) - DIGEST_ITEMS} more (mall-connector ledger list, ledger list "
                           "--needs-action and the log have them all)")
            out.append("")
        out.append(f"Times in {zone_name(self.tz)}. Host: {self.hostname}.")
        out.append(f"A problem that stays open is repeated at most every {duration(self.repeat_after.total_seconds())}; "
                   f"you are told once more when it is resolved.")
        return title, "\n".join(out)

    # -- one problem at once ------------------------------------------------------------------
    def problem(self, key: str, title: str, message: str) -> bool:
        """Open or refresh the problem ``key``; alert at once when new, unsent or due again. True if sent."""
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
                    self.ledger.alerts.repeat(c, key, stored, count, now=now)
                    first_at, last_sent = row.first_at, row.last_sent_at
            if last_sent is not None and now - last_sent < self.repeat_after:
                return False
            reminder = "Reminder: this problem is still open.\n\n" if last_sent is not None else ""
            body = (
                f"{reminder}{message}\n\n"
                f"Problem: {key}\n"
                f"Open since {clock_time(first_at, self.tz, now)} ({duration((now - first_at).total_seconds())}), "
                f"{_polls(count)}. Times in {zone_name(self.tz)}.\n"
                f"Host: {self.hostname}\n"
                f"You will be reminded every {duration(self.repeat_after.total_seconds())} while it lasts "
                f"and told once when it is resolved."
            )
            if not self._deliver(key, title, body, now):
                return False
            with self.ledger.write() as c:
                self.ledger.alerts.mark_sent(c, key, "open", now)
            return True

    def resolved(self, key: str, message: str | None = None) -> bool:
        """Close the problem ``key`` if open and send one "resolved" message at once. True if sent.

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
                f"Open from {clock_time(row.first_at, self.tz, now)} to {clock_time(resolved_at, self.tz, now)} "
                f"({duration((resolved_at - row.first_at).total_seconds())}), {_polls(row.count)}. "
                f"Times in {zone_name(self.tz)}.\n"
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
                            duration(self.sender_retry.total_seconds()), redact(f"{type(e).__name__}: {e}"))
            else:
                self._sender_down_until.pop(sender.name, None)
                delivered = True
                log.info("alert %s sent by %s", key, sender.name)
        return delivered
