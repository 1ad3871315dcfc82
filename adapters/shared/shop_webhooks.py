"""The receiver's shop-webhook route, ``POST /webhooks/shop/<adapter>/<token>``, as a Flask blueprint.

The receiver only registers it (django-anymail style): everything shop-specific is the adapter's hooks,
``webhook_token()``, ``is_ping(headers, body)``, ``verify_webhook(headers, body)`` (constant time, several
keys) and ``parse_webhook(headers, body) -> [order refs]``. A verified delivery is written to the
adapter's state folder (fsynced) and read by the next poll; a delivery that fails verification is
refused with 401 and nothing is written.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, Callable

from flask import Blueprint, abort, jsonify, request

log = logging.getLogger("mall_connector.receiver.shop")


def shop_webhook_blueprint(adapters: Callable[[], dict[str, Any]], *, max_body_bytes: int = 1 << 20) -> Blueprint:
    bp = Blueprint("shop_webhooks", __name__)

    @bp.post("/webhooks/shop/<name>/<token>")
    def shop_webhook(name: str, token: str):
        adapter = adapters().get(name)
        expected = adapter.webhook_token() if adapter is not None and hasattr(adapter, "verify_webhook") else ""
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            log.info("shop webhook /webhooks/shop/%s/…: unknown adapter or wrong token (404)", name[:40])
            abort(404)
        if (request.content_length or 0) > max_body_bytes:
            return jsonify(error=f"body is larger than {max_body_bytes} bytes"), 413
        raw = request.stream.read(max_body_bytes + 1)
        if len(raw) > max_body_bytes:
            return jsonify(error=f"body is larger than {max_body_bytes} bytes"), 413
        if adapter.is_ping(request.headers, raw):
            return jsonify(ping="ok"), 200
        if not adapter.verify_webhook(request.headers, raw):
            log.warning("shop webhook %s: signature does not match any configured key; refused (401)", name)
            return jsonify(error="signature does not match"), 401
        try:
            refs = adapter.parse_webhook(request.headers, raw)
        except (ValueError, KeyError, TypeError) as e:
            log.warning("shop webhook %s: rejected (400): %s", name, e)
            return jsonify(error=str(e)[:200]), 400
        try:
            adapter.state.spool_webhook(refs)
        except OSError as e:
            log.error("shop webhook %s: cannot store the delivery (503): %s", name, e.strerror)
            return jsonify(error="cannot store the delivery now"), 503
        log.info("shop webhook %s: %d order(s) noted for the next poll", name, len(refs))
        return jsonify(accepted=len(refs)), 202

    return bp
