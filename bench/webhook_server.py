"""A webhook endpoint in a process of its own, for bench.webhook: ``--kind real`` is the connector's receiver
(create_app + ReceiverServer on a real ledger, wired as connector.daemon does), ``--kind bare`` is a Flask app on
the same waitress set-up whose endpoint does nothing. Logs go to ``--log``; SIGTERM stops it."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from flask import Flask, Response

from bench.common import TOKEN


def bare_app() -> Flask:
    app = Flask(__name__, static_folder=None)
    body = b'{"accepted":3,"queued":3}\n'

    @app.post("/webhooks/mall/<token>")
    def webhook(token: str) -> Response:
        return Response(body, status=202, mimetype="application/json")

    return app


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--kind", choices=("real", "bare"), required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ledger", help="SQLite file of the ledger (real)")
    p.add_argument("--log", required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--stats", help="write CPU accounting (JSON) here on exit")
    p.add_argument("--synchronous", help="bench only: PRAGMA synchronous for the ledger (prices the fsync)")
    a = p.parse_args()

    from connector.logs import setup_logging
    from receiver.server import ReceiverServer

    log_file = open(a.log, "w", encoding="utf-8")
    setup_logging("info", "text", stream=log_file)
    if a.kind == "real":
        from connector.ledger import open_ledger
        from connector.metrics import Metrics
        from receiver.app import create_app

        ledger = open_ledger(f"sqlite:///{a.ledger}")
        if a.synchronous:
            from sqlalchemy import event

            @event.listens_for(ledger.engine, "connect")
            def _sync(dbapi_conn, _record):
                dbapi_conn.execute(f"PRAGMA synchronous={a.synchronous}")

            ledger.engine.dispose()
        app = create_app(ledger=ledger, tokens=[TOKEN], metrics=Metrics(), instance_id="bench")
    else:
        ledger = None
        app = bare_app()
    stats = _account(app, ledger if a.kind == "real" else None)
    server = ReceiverServer(app, "127.0.0.1", a.port, threads=a.threads)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print("ready", flush=True)
    stop.wait()
    server.stop()
    log_file.close()
    if a.stats:
        with open(a.stats, "w", encoding="utf-8") as f:
            json.dump(stats, f)
    return 0


def _account(app, ledger) -> dict:
    """CPU time (thread_time) spent in the WSGI app and in the ledger's enqueue_inbox, per request."""
    stats = {"requests": 0, "app_cpu_s": 0.0, "ledger_cpu_s": 0.0, "ledger_calls": 0, "group_commits": 0,
             "grouped_requests": 0}
    lock = threading.Lock()
    inner = app.wsgi_app

    def wsgi(environ, start_response):
        t = time.thread_time()
        try:
            return inner(environ, start_response)
        finally:
            with lock:
                stats["requests"] += 1
                stats["app_cpu_s"] += time.thread_time() - t

    app.wsgi_app = wsgi
    if ledger is not None:
        enqueue, write_batch = ledger.inbox.enqueue, ledger.inbox._write

        def timed_enqueue(ids, source="webhook"):
            t = time.thread_time()
            try:
                return enqueue(ids, source)
            finally:
                with lock:
                    stats["ledger_calls"] += 1
                    stats["ledger_cpu_s"] += time.thread_time() - t

        def counted_batch(batch):
            with lock:
                stats["group_commits"] += 1
                stats["grouped_requests"] += len(batch)
            return write_batch(batch)

        ledger.inbox.enqueue, ledger.inbox._write = timed_enqueue, counted_batch
    return stats


if __name__ == "__main__":
    sys.exit(main())
