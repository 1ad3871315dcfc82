"""Logging set-up with secret redaction everywhere.

Secrets (the MALL client_id, webhook tokens, passwords) are registered once at start; every log
record passes through a filter that replaces them, and any ``client_id=...`` query value, by ``***``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from datetime import datetime, timezone

_secrets: set[str] = set()
_lock = threading.Lock()
_CLIENT_ID_QS = re.compile(r"(client_id=)[^&\s'\"]+")
_TOKEN_PATH = re.compile(r"(/webhooks/mall/)[^/\s?'\"]+")
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@'\"]*:)[^@\s/'\"]+@")  # scheme://user:PASSWORD@
MASK = "***"


def register_secret(value: str | None) -> None:
    """Never let ``value`` reach a log line or an error message shown to a human."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret, client_id query value, webhook token and URL password masked."""
    if not text:
        return text
    text = _CLIENT_ID_QS.sub(r"\1" + MASK, text)
    text = _TOKEN_PATH.sub(r"\1" + MASK, text)
    text = _URL_PASSWORD.sub(r"\1" + MASK + "@", text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, MASK)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not kill logging
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for journald and log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("order_id", "change_id", "reason", "event"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str).translate(_JSON_UNSAFE)


# C1 controls and Unicode line separators that json.dumps(ensure_ascii=False) leaves raw.
_JSON_UNSAFE = {c: f"\\u{c:04x}" for c in [*range(0x7f, 0xa0), 0x2028, 0x2029]}


class TerminalSafeFormatter(logging.Formatter):
    """Text logs: one record is one line, and no control character from data reaches the terminal.

    A MALL error message with a newline cannot forge a second log line; ESC sequences in a customer
    name cannot repaint the operator's terminal. Tracebacks are kept, on the same line (``\\n``)."""

    def format(self, record: logging.LogRecord) -> str:
        from connector.safety import terminal_safe

        return terminal_safe(super().format(record))


def setup_logging(level: str = "info", fmt: str = "text", stream=None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_mall_connector", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._mall_connector = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TerminalSafeFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that would log URLs (with the client_id) or per-request noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
