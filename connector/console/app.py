"""The console's Flask app factory: pages rendered on the server, forms with CSRF tokens, roles.

The app gets what it needs from a ``ConsoleRuntime`` (the daemon builds it): the config in force, the
ledger, the mapping in force, and how to ask for a reload. It decides nothing about syncing: its actions are
the core's steering actions (connector/ledger/steering.py), the same code as `ledger retry/skip/done`, which
write the audit row (connector/ledger/audit.py) in the same transaction.
"""

from __future__ import annotations

import functools
import hmac
import io
import logging
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import Flask, abort, flash, g, redirect, render_template, request, send_file, session, url_for

from connector.config import Config
from connector.console import queries
from connector.console.i18n import LANGUAGES, translate
from connector.console.users import RANK, ROLES, LoginLimiter, User, UserStore, users_path
from connector.ledger import Ledger
from connector.ledger import steering
from connector.ledger.audit import Actor, log_action, recent
from connector.ledger.types import ItemKind, item_ref
from connector.logs import redact
from connector.mall.statuses import ALL_STATUSES
from connector.timefmt import local, zone_name

log = logging.getLogger("mall_connector.console")

PUBLIC_ENDPOINTS = {"login", "static", "language"}
MAX_FORM_BYTES = 512 * 1024  # the mapping text is the largest form
MAX_BULK_ITEMS = 500
SESSIONS_MAX = 1000
RELOAD_WAIT_S = 5.0  # the daemon's main loop takes a reload request within a second


@dataclass
class ConsoleRuntime:
    """What the console needs from the process it runs in."""

    config: Callable[[], Config]
    ledger: Ledger
    mapping: Callable[[], Any] | None = None  # the Mapping in force
    request_reload: Callable[[], None] | None = None  # as SIGHUP does
    readiness: Callable[[], tuple[bool, dict]] | None = None
    mall_quota: Callable[[], dict | None] | None = None


class _Sessions:
    """Server-side session ids, so logging out (or removing a user) really ends a session."""

    def __init__(self, max_age_s: int):
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._live: dict[str, tuple[str, float]] = {}

    def start(self, name: str) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._live = {k: v for k, v in self._live.items() if v[1] > now}
            while len(self._live) >= SESSIONS_MAX:
                self._live.pop(next(iter(self._live)))
            self._live[sid] = (name, now + self.max_age_s)
        return sid

    def user(self, sid: str | None) -> str | None:
        if not sid:
            return None
        with self._lock:
            entry = self._live.get(sid)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def end(self, sid: str | None) -> None:
        with self._lock:
            self._live.pop(sid or "", None)


def create_app(runtime: ConsoleRuntime, *, secret_key: bytes | None = None) -> Flask:
    cfg = runtime.config().console
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.secret_key = secret_key or secrets.token_bytes(32)  # per process: a restart logs everyone out
    app.config.update(
        SESSION_COOKIE_NAME="mall_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=cfg.secure_cookies,
        PERMANENT_SESSION_LIFETIME=cfg.session_max_age_s,
        MAX_CONTENT_LENGTH=MAX_FORM_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_FORM_BYTES,
        TEMPLATES_AUTO_RELOAD=False,
    )
    users = UserStore(users_path(runtime.config()))
    limiter = LoginLimiter(cfg.login_attempts_per_minute)
    sessions = _Sessions(cfg.session_max_age_s)
    app.extensions["mall_console"] = {"runtime": runtime, "users": users, "sessions": sessions}

    def t(text: str, **values: Any) -> str:
        return translate(text, g.get("lang", cfg.language), **values)

    def actor() -> Actor:
        return Actor(g.user.name, g.user.role, "console")

    @app.context_processor
    def _inject() -> dict[str, Any]:
        return {"t": t, "user": g.get("user"), "lang": g.get("lang", cfg.language), "csrf_token": session.get("csrf", ""),
                "languages": LANGUAGES, "may": lambda role: g.get("user") is not None and g.user.may(role),
                "fmt_time": lambda at: _fmt_time(at, runtime.config().shop.timezone),
                "zone": zone_name(runtime.config().shop.timezone), "ago": _ago}

    @app.before_request
    def _guard():
        g.lang = session.get("lang") if session.get("lang") in LANGUAGES else cfg.language
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        if request.method not in ("GET", "HEAD"):
            sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
            if not hmac.compare_digest(sent.encode(), session["csrf"].encode()):
                log.warning("console: refused a %s to %s without a valid CSRF token", request.method, request.path)
                return _refused(t("The form's security token is missing or wrong. Reload the page and try again."),
                                403)
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        name = sessions.user(session.get("sid"))
        user = users.get(name) if name else None
        if user is None:
            session.pop("sid", None)
            return redirect(url_for("login", next=request.full_path.rstrip("?") if request.method == "GET" else None))
        g.user = user
        return None

    @app.after_request
    def _headers(resp):
        resp.headers["Content-Security-Policy"] = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                                   "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; "
                                                   "base-uri 'none'")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "same-origin"
        if not request.path.startswith("/static/"):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    def _refused(message: str, code: int):
        return render_template("refused.html", message=message), code

    def requires(role: str):
        def deco(fn):
            @functools.wraps(fn)
            def wrapper(*a, **kw):
                if not g.user.may(role):
                    log.warning("console: %s (%s) refused %s %s (needs %s)", g.user.name, g.user.role,
                                request.method, request.path, role)
                    return _refused(t("Your role (%(role)s) may not do this; it needs %(need)s.",
                                      role=g.user.role, need=role), 403)
                return fn(*a, **kw)

            return wrapper

        return deco

    @app.errorhandler(404)
    def _not_found(e):
        return render_template("refused.html", message=t("Not found"), title=t("Not found")), 404

    @app.errorhandler(413)
    def _too_large(e):
        return _refused(f"the form is larger than {MAX_FORM_BYTES // 1024} KiB", 413)

    @app.errorhandler(Exception)
    def _error(e):
        from werkzeug.exceptions import HTTPException

        if isinstance(e, HTTPException):
            return e
        log.error("console: %s %s failed: %s", request.method, request.path, redact(f"{type(e).__name__}: {e}"))
        return _refused(t("Something went wrong; the connector's log says what."), 500)

    # -- login ------------------------------------------------------------------------------------------

    @app.route("/login", methods=["GET", "POST"])
    def login():
        error = None
        code = 200
        if request.method == "POST":
            name = (request.form.get("username") or "").strip()[:64]
            password = request.form.get("password") or ""
            address = request.remote_addr or "?"
            wait = limiter.retry_after(address, name)
            if wait is not None:
                error, code = t("Too many failed logins; try again in %(s)s s.", s=wait), 429
            else:
                user = users.authenticate(name, password)
                if user is None:
                    limiter.failed(address, name)
                    known = users.get(name) is not None
                    log_action(runtime.ledger, Actor(name if known else "unknown user", None, "console"),
                               "login_failed", detail=f"from {address}")
                    log.warning("console: failed login for %s from %s", name if known else "an unknown user", address)
                    error, code = t("Wrong user name or password."), 401
                else:
                    lang = session.get("lang")
                    session.clear()  # a new session on login (no fixation)
                    session.permanent = True
                    session["sid"] = sessions.start(user.name)
                    session["csrf"] = secrets.token_urlsafe(32)
                    if lang:
                        session["lang"] = lang
                    log_action(runtime.ledger, Actor(user.name, user.role, "console"), "login",
                               detail=f"from {address}")
                    log.info("console: %s (%s) logged in from %s", user.name, user.role, address)
                    return redirect(_safe_next(request.args.get("next")))
        return render_template("login.html", error=error, no_users=users.count() == 0,
                               cookie_lost=_cookie_would_be_lost(cfg.secure_cookies)), code

    @app.post("/logout")
    def logout():
        sessions.end(session.get("sid"))
        log_action(runtime.ledger, actor(), "logout")
        lang = session.get("lang")
        session.clear()
        if lang:
            session["lang"] = lang
        return redirect(url_for("login"))

    @app.post("/language")
    def language():
        lang = request.form.get("lang")
        if lang in LANGUAGES:
            session["lang"] = lang
        return redirect(_safe_next(request.form.get("next")))

    # -- pages ------------------------------------------------------------------------------------------

    @app.get("/")
    def overview():
        data = queries.overview(runtime.ledger)
        ready = runtime.readiness() if runtime.readiness else None
        quota = runtime.mall_quota() if runtime.mall_quota else None
        return render_template("overview.html", d=data, ready=ready, quota=quota,
                               audit=recent(runtime.ledger, 10))

    @app.get("/orders")
    def orders():
        text = request.args.get("q", "")
        status = request.args.get("status", "")
        account = request.args.get("account", "")
        if status and status not in ALL_STATUSES and status != "unknown":
            status = ""
        rows, more = queries.search_orders(runtime.ledger, text=text, status=status, account=account)
        if text.strip().isdigit() and len(rows) == 1 and str(rows[0].mall_order_id) == text.strip():
            pass  # shown in the list; one click away
        return render_template("orders.html", rows=rows, more=more, q=text, status=status, account=account,
                               statuses=ALL_STATUSES, accounts=[queries.DEFAULT_ACCOUNT], limit=queries.LIMIT)

    @app.get("/orders/<int:order_id>")
    def order(order_id: int):
        history = queries.order_history(runtime.ledger, order_id)
        if history is None:
            abort(404)
        return render_template("order.html", h=history)

    @app.get("/changes")
    def changes():
        state = request.args.get("state", "open")
        if state not in queries.CHANGE_FILTERS:
            state = "open"
        rows, more = queries.list_changes(runtime.ledger, state)
        held = queries.quarantined_items(runtime.ledger) if state in ("open", "failed") else []
        return render_template("changes.html", rows=rows, more=more, state=state, quarantined=held,
                               filters=list(queries.CHANGE_FILTERS), limit=queries.LIMIT)

    def _back(default: str) -> str:
        return _safe_next(request.form.get("next")) if request.form.get("next") else default

    def _flash_steered(r: steering.Steered, kind: ItemKind, item_id: int) -> None:
        """The core's sentence, translated: its item named as ``%(id)s`` (see i18n.CS)."""
        named = f"{kind.value} {item_id}" if kind == ItemKind.CHANGE else item_ref(kind, item_id)
        template = r.message.replace(named, f"{kind.value} %(id)s" if kind == ItemKind.CHANGE else "%(id)s", 1)
        flash(t(template, id=item_id if kind == ItemKind.CHANGE else item_ref(kind, item_id)),
              "ok" if r.ok else "error")

    @app.post("/changes/<int:change_id>/retry")
    @requires("operator")
    def change_retry(change_id: int):
        if runtime.ledger.changes.get(change_id) is None:
            abort(404)
        r = steering.retry(runtime.ledger, ItemKind.CHANGE, change_id, actor=actor())
        _flash_steered(r, ItemKind.CHANGE, change_id)
        return redirect(_back(url_for("changes")))

    @app.post("/items/<kind>/<int:item_id>/retry")
    @requires("operator")
    def item_retry(kind: str, item_id: int):
        """A quarantined inbox id, hand-off or confirmation waits again (`ledger retry inbox:ID` ...)."""
        try:
            item_kind = ItemKind(kind)
        except ValueError:
            abort(404)
        r = steering.retry(runtime.ledger, item_kind, item_id, actor=actor())
        _flash_steered(r, item_kind, item_id)
        return redirect(_back(url_for("changes")))

    @app.post("/changes/<int:change_id>/skip")
    @requires("operator")
    def change_skip(change_id: int):
        if runtime.ledger.changes.get(change_id) is None:
            abort(404)
        reason = " ".join(request.form.get("reason", "").split())[:500]
        if not reason:
            flash(t("Give a reason."), "error")
            return redirect(_back(url_for("changes")))
        r = steering.skip(runtime.ledger, change_id, reason, actor=actor())
        _flash_steered(r, ItemKind.CHANGE, change_id)
        return redirect(_back(url_for("changes")))

    @app.get("/actions")
    def actions():
        return render_template("actions.html", items=queries.open_actions(runtime.ledger))

    @app.post("/actions/done")
    @requires("operator")
    def actions_done():
        ids = []
        for raw in request.form.getlist("item")[:MAX_BULK_ITEMS]:
            if raw.isdigit():
                ids.append(int(raw))
        if not ids:
            flash(t("Select at least one item."), "error")
            return redirect(url_for("actions"))
        note = " ".join((request.form.get("note") or "").split())[:500] or None
        for item_id in ids:
            r = steering.done(runtime.ledger, item_id, note, actor=actor())
            template = r.message.replace(f"item {item_id}", "item %(id)s", 1)
            flash(t(template, id=item_id), "ok" if r.ok else "error")
        return redirect(url_for("actions"))

    # -- mapping ----------------------------------------------------------------------------------------

    from connector.console import mapping_edit as me

    def _mapping_path() -> Path:
        return Path(runtime.config().mapping_path)

    def _in_force():
        if runtime.mapping is not None:
            return runtime.mapping()
        from connector.mapping import load_mapping

        return load_mapping(_mapping_path())

    def _check_context(text: str) -> dict[str, Any]:
        mapping, problem = me.validate(text, _mapping_path())
        pv = me.preview_for(runtime.ledger, _in_force(), mapping) if mapping is not None else None
        return {"problem": problem, "preview": pv, "checked": mapping}

    @app.get("/mapping")
    def mapping():
        path = _mapping_path()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            text = ""
            flash(f"{path}: {e.strerror}", "error")
        return render_template("mapping.html", path=path, text=text, current=_in_force(),
                               why_not=me.editable(path), has_prev=me.previous_path(path).exists(),
                               **_check_context(text))

    @app.post("/mapping/check")
    def mapping_check():
        return render_template("_mapping_result.html", **_check_context(request.form.get("text", "")))

    @app.post("/mapping")
    @requires("admin")
    def mapping_save():
        path = _mapping_path()
        text = request.form.get("text", "")
        ctx = _check_context(text)
        if ctx["problem"] is not None:
            log.warning("console: %s tried to save an invalid mapping: %s", g.user.name, ctx["problem"].message)
            return render_template("mapping.html", path=path, text=text, current=_in_force(), refused=True,
                                   why_not=me.editable(path), has_prev=me.previous_path(path).exists(), **ctx), 400
        try:
            saved = me.save(path, text)
        except (me.MappingEditError, OSError) as e:
            flash(f"{t('Not saved:')} {e}", "error")
            return redirect(url_for("mapping"))
        log_action(runtime.ledger, actor(), "mapping_save", target=str(path),
                   detail=_mapping_summary(saved, ctx["preview"]))
        log.info("console: %s saved the mapping %s; reloading", g.user.name, path)
        _reload_and_report(t("Saved. The daemon reloaded it, as on SIGHUP: the next poll uses it."))
        return redirect(url_for("mapping"))

    def _reload_and_report(done: str) -> None:
        """Ask for the reload SIGHUP does, and say whether the daemon put the file in force."""
        if runtime.request_reload is None:
            flash(done, "ok")
            return
        before = _in_force()
        runtime.request_reload()
        deadline = time.monotonic() + RELOAD_WAIT_S
        while runtime.mapping is not None and _in_force() is before and time.monotonic() < deadline:
            time.sleep(0.1)
        if runtime.mapping is not None and _in_force() is before:
            flash(t("Saved, but the daemon has not applied it yet (a reload refused? its log says why)."), "error")
        else:
            flash(done, "ok")

    @app.post("/mapping/undo")
    @requires("admin")
    def mapping_undo():
        path = _mapping_path()
        try:
            restored = me.undo(path)
        except (me.MappingEditError, OSError) as e:
            flash(f"{t('Not saved:')} {e}", "error")
            return redirect(url_for("mapping"))
        log_action(runtime.ledger, actor(), "mapping_undo", target=str(path), detail=_mapping_summary(restored, None))
        _reload_and_report(t("Went back to the previous version. The daemon reloaded it."))
        return redirect(url_for("mapping"))

    # -- exports ----------------------------------------------------------------------------------------

    @app.get("/exports")
    def exports():
        today = date.today()
        return render_template("exports.html", statuses=["open", "shipping", "shipped"],
                               date_from=today.replace(day=1).isoformat(), date_to=today.isoformat())

    @app.post("/exports/picking")
    @requires("operator")
    def export_picking():
        from connector.exports.picking import build_picking, write_picking

        statuses = [st for st in request.form.getlist("status") if st in ALL_STATUSES] or ["open", "shipping"]
        pl = build_picking(runtime.ledger, statuses=statuses, order_ids=None, include_test=False)
        data = _render_file(lambda p: write_picking(pl, p, "xlsx"), "picking.xlsx")
        log_action(runtime.ledger, actor(), "export_picking", target="picking.xlsx",
                   detail=f"statuses {','.join(statuses)}: {len(pl.orders)} order(s)")
        return send_file(io.BytesIO(data), as_attachment=True, download_name=f"picking-{date.today()}.xlsx",
                         mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    @app.post("/exports/billing")
    @requires("operator")
    def export_billing():
        from connector.exports.billing import build_billing, write_billing

        try:
            d_from = date.fromisoformat(request.form.get("from", ""))
            d_to = date.fromisoformat(request.form.get("to", ""))
        except ValueError:
            flash("from/to: give dates as YYYY-MM-DD", "error")
            return redirect(url_for("exports"))
        if d_from > d_to:
            flash(f"{d_to} is before {d_from}", "error")
            return redirect(url_for("exports"))
        billing = build_billing(runtime.ledger, d_from, d_to)
        data = _render_file(lambda p: write_billing(billing, p), "billing.xlsx")
        log_action(runtime.ledger, actor(), "export_billing", target="billing.xlsx",
                   detail=f"{d_from} to {d_to}: {len(billing.orders)} order(s)")
        return send_file(io.BytesIO(data), as_attachment=True, download_name=f"billing-{d_from}-{d_to}.xlsx",
                         mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    return app


def _render_file(write: Callable[[Path], None], name: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="mall-console-") as d:
        p = Path(d) / name
        write(p)
        return p.read_bytes()


def _mapping_summary(mapping, pv) -> str:
    text = (f"{len(mapping.to_mall)} mapped, {len(mapping.ignored)} ignored, {len(mapping.from_mall)} mapped back")
    if pv is not None and not pv.empty:
        parts = [f"{n} order(s) would be pushed as {st}" for st, n in sorted(pv.pushed.items())]
        if pv.unmapped:
            parts.append(f"{len(pv.unmapped)} status(es) become unmapped")
        if pv.ignored:
            parts.append(f"{len(pv.ignored)} status(es) become ignored")
        text += "; " + "; ".join(parts)
    return text


def _safe_next(target: str | None) -> str:
    """A path inside the console (no open redirect); ``target`` is relative to the console's root, which is
    prefixed (``[console] url_prefix`` behind a proxy)."""
    parts = urlsplit(target or "/")
    if parts.scheme or parts.netloc or not (target or "/").startswith("/") or (target or "").startswith("//") \
            or "\\" in (target or ""):
        target = "/"
    return request.script_root + (target or "/")


def _cookie_would_be_lost(secure_cookies: bool) -> bool:
    """A Secure cookie over plain http to an address other than loopback: the browser drops it, the login loops."""
    host = urlsplit(request.host_url).hostname or ""
    return secure_cookies and request.scheme == "http" and host not in ("127.0.0.1", "localhost", "::1")


def _fmt_time(at: datetime | None, tz: str) -> str:
    """A ledger time (naive UTC) shown in [shop] timezone to the second; the page names the zone once (issue 14)."""
    return local(at, tz)


def _ago(at: datetime | None) -> str:
    if at is None:
        return ""
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    s = int((now - at).total_seconds())
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h"


__all__ = ["ConsoleRuntime", "create_app", "ROLES", "RANK", "User"]
