"""Real loopback sinks for what the connector sends out, and a clock the tests move by hand: a minimal
SMTP server, a webhook receiver, ``FakeClock``; the ``smtp`` and ``hook`` fixtures (a pytest plugin,
registered in tests/conftest.py)."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import socketserver
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        sink: SmtpSink = self.server.sink  # type: ignore[attr-defined]
        sink.connections += 1
        self.reply("220 sink ESMTP ready")
        mail_from, rcpt, auth = None, [], None
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
            elif verb == "HELO":
                self.reply("250 sink")
            elif verb == "AUTH":
                parts = line.split()
                if len(parts) < 3:
                    self.reply("334 ")
                    parts.append(self.rfile.readline().decode().strip())
                _, user, password = base64.b64decode(parts[2]).decode().split("\0")
                auth = (user, password)
                self.reply("235 ok")
            elif verb == "MAIL":
                if sink.fail:
                    self.reply("451 4.3.0 try again later")
                    continue
                mail_from = line.split(":", 1)[1].strip()
                self.reply("250 ok")
            elif verb == "RCPT":
                rcpt.append(line.split(":", 1)[1].strip())
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 end with .")
                data = []
                while True:
                    d = self.rfile.readline()
                    if d in (b".\r\n", b""):
                        break
                    data.append(d[1:] if d.startswith(b"..") else d)
                msg = email.message_from_bytes(b"".join(data), policy=email.policy.default)
                sink.messages.append({"from": mail_from, "rcpt": rcpt, "auth": auth, "msg": msg,
                                      "subject": str(msg["Subject"]), "body": msg.get_content()})
                mail_from, rcpt = None, []
                self.reply("250 queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 ok")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class SmtpSink:
    def __init__(self):
        self.messages: list[dict] = []
        self.connections = 0
        self.fail = False  # answer 451 to MAIL FROM
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
        self.server.daemon_threads = True
        self.server.sink = self  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _HookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        hook: WebhookReceiver = self.server.hook  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        hook.requests.append({"path": self.path, "content_type": self.headers.get("Content-Type"),
                              "json": json.loads(body)})
        self.send_response(hook.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


class WebhookReceiver:
    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
        self.server.hook = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/T0K3N-path"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def texts(self) -> list[str]:
        return [r["json"]["text"] for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeClock:
    """Naive-UTC clock the tests move by hand, so nothing waits an hour."""

    def __init__(self):
        self.now = datetime(2024, 5, 1, 10, 0, 0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def smtp():
    sink = SmtpSink()
    yield sink
    sink.close()


@pytest.fixture
def hook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
