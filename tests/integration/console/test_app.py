"""The console app without a browser (Flask's test client on a real SQLite ledger): login, sessions, CSRF,
roles, audit, the users file, the mapping editor's save/undo/preview, and the re-evaluation after a remap."""

from __future__ import annotations

import re
import stat
import subprocess
import sys

import pytest

from connector.config import ConfigError, load_config
from connector.console import ConsoleRuntime, create_app
from connector.console import mapping_edit as me
from connector.console.users import LoginLimiter, UserStore, add_user, load_users
from connector.ledger import open_ledger
from connector.ledger.audit import for_order, recent
from connector.ledger.remap import forget_rows_whose_meaning_changed
from connector.mapping import mapping_from_text

MAPPING = '[to_mall]\n"Balíme" = "shipping"\n"Odesláno" = "shipped"\n[ignore]\nstatuses = ["Nová"]\n'
PW = {"alice": "alice-admin-pw-1", "otto": "otto-operator-pw", "vera": "vera-viewer-pw-1"}
ROLE = {"alice": "admin", "otto": "operator", "vera": "viewer"}


@pytest.fixture(scope="module")
def users_text(tmp_path_factory) -> str:
    """The three users hashed once (argon2 is slow on purpose), copied into each test's folder."""
    path = tmp_path_factory.mktemp("users") / "console-users.toml"
    for name, pw in PW.items():
        add_user(path, name, ROLE[name], pw)
    return path.read_text(encoding="utf-8")


@pytest.fixture
def env(tmp_path, users_text):
    (tmp_path / "mapping.toml").write_text(MAPPING, encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        '[mall]\nclient_id = "unit-client-id-0123456789"\n[ledger]\nurl = "sqlite:///ledger.db"\n'
        '[shop]\nmapping = "mapping.toml"\n[console]\nenabled = true\nlogin_attempts_per_minute = 3\n',
        encoding="utf-8")
    cfg = load_config(tmp_path / "config.toml")
    (tmp_path / "console-users.toml").write_text(users_text, encoding="utf-8")
    ledger = open_ledger(cfg.ledger.url)
    with ledger.write() as c:
        ledger.orders.ensure(c, 501, shop_order_id="S-501", mall_status="open", shop_status="Balíme",
                            shop_fingerprint="fp1", customer="Petra Veselá")
        ledger.orders.ensure(c, 502, mall_status="delivered", shop_status="Čeká", shop_fingerprint="fp2")
        ledger.orders.ensure(c, 503, mall_status="open", shop_status="Čeká", shop_fingerprint="fp3")
        failed = ledger.changes.insert(c, key="shop:501:shipping", order_id=501, origin="shop", kind="status",
                                      state="failed", shop_status="Balíme", target_status="shipping",
                                      reason="gave up after 8 attempts")
        action = ledger.actions.add(c, key="x:501", order_id=501, kind="cancel_after_shipped", message="do it")
    reloads: list[int] = []
    app = create_app(ConsoleRuntime(config=lambda: cfg, ledger=ledger, request_reload=lambda: reloads.append(1)))
    app.testing = False
    yield {"app": app, "ledger": ledger, "cfg": cfg, "path": tmp_path, "failed": failed, "action": action,
           "reloads": reloads}
    ledger.close()


def _token(client, path="/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def _login(env, name):
    client = env["app"].test_client()
    r = client.post("/login", data={"username": name, "password": PW[name], "csrf_token": _token(client)})
    assert r.status_code == 302, r.text
    return client


def test_login_is_required_for_every_page(env):
    client = env["app"].test_client()
    for path in ("/", "/orders", "/orders/501", "/changes", "/actions", "/mapping", "/exports"):
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"].startswith("/login"), path


def test_wrong_passwords_are_rate_limited_per_name_and_audited(env):
    client = env["app"].test_client()
    token = _token(client)
    codes = [client.post("/login", data={"username": "alice", "password": "wrong", "csrf_token": token}).status_code
             for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    # Even the right password waits now (the limit is on the name, whoever tries it).
    r = client.post("/login", data={"username": "alice", "password": PW["alice"], "csrf_token": token})
    assert r.status_code == 429 and "zkuste to znovu za" in r.text  # Czech: the default language
    with env["ledger"].read() as c:
        from connector.ledger import schema as s

        rows = c.execute(s.audit_log.select().where(s.audit_log.c.action == "login_failed")).all()
    assert [r.actor for r in rows] == ["alice"] * 3


def test_login_limiter_forgets_after_the_window():
    now = [1000.0]
    lim = LoginLimiter(2, clock=lambda: now[0])
    lim.failed("1.2.3.4", "x")
    lim.failed("1.2.3.4", "y")
    assert lim.retry_after("1.2.3.4", "z") is not None  # the address used its two
    assert lim.retry_after("5.6.7.8", "z") is None
    now[0] += 61
    assert lim.retry_after("1.2.3.4", "x") is None


def test_login_without_csrf_token_is_refused(env):
    client = env["app"].test_client()
    client.get("/login")
    r = client.post("/login", data={"username": "alice", "password": PW["alice"]})
    assert r.status_code == 403
    assert client.get("/").status_code == 302  # not logged in


def test_session_cookie_flags_and_logout_ends_the_session(env):
    client = env["app"].test_client()
    token = _token(client)
    r = client.post("/login", data={"username": "otto", "password": PW["otto"], "csrf_token": token})
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    stolen = client.get_cookie("mall_console").value
    token = _token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    replay = env["app"].test_client()
    replay.set_cookie("mall_console", stolen)
    assert replay.get("/").status_code == 302  # the old cookie no longer opens a session


def test_roles(env):
    led, cid, aid = env["ledger"], env["failed"], env["action"]
    viewer = _login(env, "vera")
    t = _token(viewer, "/changes")
    assert viewer.post(f"/changes/{cid}/retry", data={"csrf_token": t}).status_code == 403
    assert viewer.post("/actions/done", data={"csrf_token": t, "item": str(aid)}).status_code == 403
    assert viewer.post("/exports/picking", data={"csrf_token": t}).status_code == 403
    assert viewer.post("/mapping", data={"csrf_token": t, "text": MAPPING}).status_code == 403
    assert led.changes.get(cid).state == "failed" and led.actions.open()

    operator = _login(env, "otto")
    t = _token(operator, "/changes")
    assert operator.post("/mapping", data={"csrf_token": t, "text": MAPPING + "\n"}).status_code == 403
    assert operator.post(f"/changes/{cid}/retry", data={"csrf_token": t}).status_code == 302
    assert led.changes.get(cid).state == "pending"
    assert operator.post("/actions/done", data={"csrf_token": t, "item": str(aid), "note": "ok"}).status_code == 302
    assert led.actions.open() == []
    r = operator.post("/exports/picking", data={"csrf_token": t, "status": "open"})
    assert r.status_code == 200 and r.data[:2] == b"PK"  # an xlsx (zip)
    entries = [(e.actor, e.role, e.action, e.target) for e in for_order(led, 501)]
    assert entries == [("otto", "operator", "retry", f"change {cid}"), ("otto", "operator", "done", f"item {aid}")]
    assert any("put back to pending by console user otto (operator)" in m for _, _, m in led.orders.events_for(501))


def test_skip_needs_a_reason_and_a_done_change_cannot_be_skipped(env):
    led, cid = env["ledger"], env["failed"]
    op = _login(env, "otto")
    t = _token(op, "/changes")
    op.post(f"/changes/{cid}/skip", data={"csrf_token": t, "reason": "  "})
    assert led.changes.get(cid).state == "failed"
    op.post(f"/changes/{cid}/skip", data={"csrf_token": t, "reason": "fixed in the MALL portal"})
    ch = led.changes.get(cid)
    assert ch.state == "skipped" and ch.reason == "skipped by console user otto (operator): fixed in the MALL portal"
    with led.write() as c:  # it is brought back and lands (skipped -> pending -> done, as the state machine allows)
        assert led.changes.move(c, cid, "skipped", "pending") and led.changes.move(c, cid, "pending", "done")
    r = op.post(f"/changes/{cid}/skip", data={"csrf_token": t, "reason": "again"}, follow_redirects=True)
    assert f"změna {cid} už je hotová" in r.text and led.changes.get(cid).state == "done"


def test_search_by_mall_id_shop_id_and_customer(env):
    client = _login(env, "vera")
    for q in ("501", "S-501", "vese", "Veselá"):
        body = client.get("/orders", query_string={"q": q}).text
        assert "/orders/501" in body and "/orders/503" not in body, q
    assert "/orders/502" in client.get("/orders", query_string={"status": "delivered"}).text
    assert "/orders/501" not in client.get("/orders", query_string={"status": "delivered"}).text
    assert "/orders/501" not in client.get("/orders", query_string={"account": "other"}).text
    assert client.get("/orders", query_string={"q": "%"}).text.count("/orders/50") == 0  # LIKE is escaped


def test_no_secret_is_rendered(env):
    client = _login(env, "alice")
    hashes = [u.password_hash for u in load_users(env["path"] / "console-users.toml").values()]
    for path in ("/", "/orders", "/orders/501", "/changes", "/actions", "/mapping", "/exports", "/login"):
        body = client.get(path).text
        for secret in ["unit-client-id-0123456789", *PW.values(), *hashes]:
            assert secret not in body, path


def test_security_headers_and_no_open_redirect(env):
    client = env["app"].test_client()
    token = _token(client, "/login?next=https://evil.example/")
    r = client.post("/login?next=https://evil.example/", data={"username": "vera", "password": PW["vera"],
                                                               "csrf_token": token})
    assert r.headers["Location"] == "/"
    r = client.get("/")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"


def test_a_removed_user_is_logged_out(env):
    client = _login(env, "vera")
    users = load_users(env["path"] / "console-users.toml")
    del users["vera"]
    from connector.console.users import save_users

    save_users(env["path"] / "console-users.toml", users)
    assert client.get("/").status_code == 302


def test_mapping_save_keeps_the_previous_version_and_undo_swaps_back(env):
    path = env["path"] / "mapping.toml"
    admin = _login(env, "alice")
    t = _token(admin, "/mapping")
    bad = MAPPING.replace('"shipped"', '"shiped"')
    r = admin.post("/mapping", data={"csrf_token": t, "text": bad})
    assert r.status_code == 400 and "did you mean &#39;shipped&#39;?" in r.text
    assert path.read_text(encoding="utf-8") == MAPPING and env["reloads"] == []
    new = MAPPING + '"Čeká" = "shipping"\n'
    new = new.replace('[ignore]\nstatuses = ["Nová"]\n', "") + '[ignore]\nstatuses = ["Nová"]\n'
    assert admin.post("/mapping", data={"csrf_token": t, "text": new}).status_code == 302
    assert path.read_text(encoding="utf-8") == new
    assert me.previous_path(path).read_text(encoding="utf-8") == MAPPING
    assert env["reloads"] == [1]
    assert admin.post("/mapping/undo", data={"csrf_token": t}).status_code == 302
    assert path.read_text(encoding="utf-8") == MAPPING and env["reloads"] == [1, 1]
    assert me.previous_path(path).read_text(encoding="utf-8") == new
    actions = [e.action for e in recent(env["ledger"])]
    assert actions[:2] == ["mapping_undo", "mapping_save"]


def test_the_shipped_default_mapping_is_not_edited_in_place():
    from mappings import default_mapping_path

    with pytest.raises(me.MappingEditError, match="shipped with the connector"):
        me.save(default_mapping_path("generic_csv"), MAPPING)


def test_preview_counts_what_the_new_mapping_would_push():
    old = mapping_from_text(MAPPING)
    new = mapping_from_text('[to_mall]\n"Balíme" = "shipping"\n"Odesláno" = "shipped"\n"Čeká" = "shipped"\n'
                            '[ignore]\nstatuses = []\n')
    groups = [("Čeká", "open", 3), ("Čeká", "delivered", 4), ("Čeká", None, 1), ("Nová", "open", 2),
              ("Odesláno", "open", 5), ("Jiný", "open", 1)]
    pv = me.preview(old, new, groups)
    # Čeká: unmapped -> shipped; pushed to the 3 open and the 1 not yet read, not to the 4 delivered ones.
    assert pv.pushed == {"shipped": 4}
    assert pv.unmapped == {"Nová": 2}  # ignored -> unmapped
    assert pv.ignored == {}
    assert pv.still_unmapped == {"Jiný": 1}
    assert pv.changed_statuses == [("Nová", "ignored", "unmapped", 2), ("Čeká", "unmapped", "shipped", 8)]


def test_remap_forgets_only_open_orders_whose_meaning_changed(env):
    led = env["ledger"]
    with led.write() as c:
        led.kv.set(c, "shop_feed_fingerprint", "feed-fp")
    old = mapping_from_text(MAPPING)
    same = mapping_from_text(MAPPING + "\n# a comment\n")
    assert forget_rows_whose_meaning_changed(led, old, same, feed_kv="shop_feed_fingerprint") == 0
    assert led.kv.get("shop_feed_fingerprint") == "feed-fp"
    new = mapping_from_text(MAPPING.replace("[ignore]", '"Čeká" = "shipped"\n[ignore]'))
    assert forget_rows_whose_meaning_changed(led, old, new, feed_kv="shop_feed_fingerprint") == 1
    fps = led.orders.fingerprints([501, 502, 503])
    assert fps == {501: "fp1", 502: "fp2", 503: None}  # 502 is delivered: final, left alone
    assert led.kv.get("shop_feed_fingerprint") is None


def test_users_file_errors_name_the_file_and_key(tmp_path):
    p = tmp_path / "users.toml"
    p.write_text('[users.jana]\nrole = "boss"\npassword_hash = "$argon2id$x"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_users(p)
    assert str(e.value).startswith(f"{p}: users.jana.role: must be one of viewer, operator, admin")
    p.write_text('[users.jana]\nrole = "viewer"\npassword_hash = "plain"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="users.jana.password_hash: must be an argon2 hash"):
        UserStore(p).get("jana")


def test_adduser_cli_reads_the_password_from_stdin_and_writes_0640(env):
    cfg_path = env["path"] / "config.toml"

    def run(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "connector", "--config", str(cfg_path), "console", *args],
                              input=stdin, capture_output=True, text=True, timeout=60)

    r = run("adduser", "nela", "--role", "operator", "--password-stdin", stdin="nela-password-9\n")
    assert r.returncode == 0, r.stderr
    users_file = env["path"] / "console-users.toml"
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o640
    assert "nela-password-9" not in users_file.read_text(encoding="utf-8")
    assert UserStore(users_file).authenticate("nela", "nela-password-9").role == "operator"
    r = run("adduser", "nela", "--role", "admin", "--password-stdin", stdin="other-password-9\n")
    assert r.returncode == 2 and "exists already (use --replace" in r.stderr
    r = run("adduser", "nela", "--role", "admin", "--replace", "--password-stdin", stdin="short\n")
    assert r.returncode == 2 and "at least 10 characters" in r.stderr
    r = run("adduser", "bad name", "--role", "viewer", "--password-stdin", stdin="long-enough-pw\n")
    assert r.returncode == 2 and "letters, digits" in r.stderr
    r = run("users")
    assert r.returncode == 0 and "nela\toperator" in r.stdout and "$argon2" not in r.stdout


def test_ledger_retry_and_done_from_the_cli_are_audited_too(env):
    cfg_path, cid = env["path"] / "config.toml", env["failed"]
    base = [sys.executable, "-m", "connector", "--config", str(cfg_path), "ledger"]
    r = subprocess.run([*base, "retry", str(cid)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"change {cid} will be retried on the next pass" in r.stdout, r.stderr
    r = subprocess.run([*base, "done", str(env["action"])], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    entries = for_order(env["ledger"], 501)
    assert [(e.source, e.action) for e in entries] == [("cli", "retry"), ("cli", "done")]
    assert all(e.actor.startswith("cli:") for e in entries)
    ch = env["ledger"].changes.get(cid)
    # The core's retry: a fresh count of attempts, and the order is re-read from MALL before anything is sent.
    assert ch.state == "pending" and ch.attempts == 0 and ch.outcome == "reread"


def test_the_login_page_warns_when_the_secure_cookie_would_be_dropped(env):
    client = env["app"].test_client()
    assert "cookie-warning" not in client.get("/login", base_url="http://127.0.0.1:8081").text
    assert "cookie-warning" in client.get("/login", base_url="http://192.0.2.10:8081").text
    assert "cookie-warning" not in client.get("/login", base_url="https://console.example.cz").text


def test_outcomes_are_translated(env):
    op = _login(env, "otto")  # the default language is Czech
    t = _token(op, "/changes")
    r = op.post(f"/changes/{env['failed']}/retry", data={"csrf_token": t}, follow_redirects=True)
    assert f"změna {env['failed']} se zkusí znovu při dalším průchodu" in r.text


def test_billing_export_for_a_period(env):
    from io import BytesIO

    from openpyxl import load_workbook

    op = _login(env, "otto")
    t = _token(op, "/exports")
    r = op.post("/exports/billing", data={"csrf_token": t, "from": "2026-11-01", "to": "2026-11-15"})
    assert r.status_code == 200 and "billing-2026-11-01-2026-11-15.xlsx" in r.headers["Content-Disposition"]
    assert "Billing" in load_workbook(BytesIO(r.data), read_only=True).sheetnames
    r = op.post("/exports/billing", data={"csrf_token": t, "from": "2026-11-15", "to": "2026-11-01"},
                follow_redirects=True)
    assert "is before" in r.text
    r = op.post("/exports/billing", data={"csrf_token": t, "from": "yesterday", "to": ""}, follow_redirects=True)
    assert "YYYY-MM-DD" in r.text
    assert recent(env["ledger"])[0].action == "export_billing"


def test_done_for_many_items_at_once(env):
    led = env["ledger"]
    with led.write() as c:
        second = led.actions.add(c, key="y:503", order_id=503, kind="branch_changed", message="send it elsewhere")
    op = _login(env, "otto")
    t = _token(op, "/actions")
    page = op.get("/actions").text
    assert f'id="item-{env["action"]}"' in page and f'id="item-{second}"' in page
    r = op.post("/actions/done", data={"csrf_token": t, "item": [str(env["action"]), str(second)], "note": "both"},
                follow_redirects=True)
    assert led.actions.open() == []
    assert f"položka {env['action']} vyřízena" in r.text and f"položka {second} vyřízena" in r.text
    assert {(e.mall_order_id, e.detail) for e in recent(led) if e.action == "done"} == {(501, "both"), (503, "both")}


def test_the_changes_page_shows_quarantined_items_of_every_kind_and_retries_them(env):
    """Inbox ids and confirmations quarantined by the core are listed with the failed changes; retry goes
    through the core's steering (the same as `ledger retry inbox:ID`) and writes the audit row."""
    led = env["ledger"]
    led.inbox.enqueue([503], source="webhook")
    with led.write() as c:
        led.inbox.record_failure(c, 503, attempts=8, next_attempt_at=None, quarantine=True,
                                 error_class="MallServerError", message="500", reason="gave up after 8 attempts")
        led.confirms.record_failure(c, 501, attempts=8, next_attempt_at=None, quarantine=True,
                                    error_class="MallServerError", message="500", reason="confirm gave up")
    viewer = _login(env, "vera")
    page = viewer.get("/changes", query_string={"state": "failed"}).text
    assert 'id="item-inbox-503"' in page and 'id="item-confirm-501"' in page and f'id="change-{env["failed"]}"' in page
    assert "/items/inbox/503/retry" not in page  # a viewer sees no actions
    t = _token(viewer, "/changes")
    assert viewer.post("/items/inbox/503/retry", data={"csrf_token": t}).status_code == 403
    assert {i.ref for i in led.failed_items()} >= {"inbox:503", "confirm:501"}

    op = _login(env, "otto")
    t = _token(op, "/changes")
    page = op.get("/changes", query_string={"state": "failed"}).text
    assert "/items/inbox/503/retry" in page and "/items/confirm/501/retry" in page
    r = op.post("/items/inbox/503/retry", data={"csrf_token": t}, follow_redirects=True)
    assert "inbox:503 se zkusí znovu při dalším průchodu" in r.text
    r = op.post("/items/inbox/503/retry", data={"csrf_token": t}, follow_redirects=True)
    assert "inbox:503 není v karanténě" in r.text  # already back: nothing done, nothing audited
    assert op.post("/items/nonsense/1/retry", data={"csrf_token": t}).status_code == 404
    assert {i.ref for i in led.failed_items()} == {"confirm:501", str(env["failed"])}
    assert led.inbox.depth() == 1 and 503 in led.inbox.due(10)
    assert [(e.actor, e.action, e.target) for e in for_order(led, 503)] == [("otto", "retry", "inbox:503")]
    assert any("inbox:503 put back by console user otto (operator)" in m for _, _, m in led.orders.events_for(503))
    # The order's page lists what is quarantined for it.
    assert 'id="item-confirm-501"' in op.get("/orders/501").text


def test_console_times_are_in_the_shop_timezone_to_the_second():
    """Issue 14: every time shown to a person is in [shop] timezone; the ledger stores naive UTC."""
    from datetime import datetime

    from connector.console.app import _fmt_time

    assert _fmt_time(datetime(2026, 12, 1, 10, 2, 13, 987654), "Europe/Prague") == "2026-12-01 11:02:13"
    assert _fmt_time(datetime(2026, 7, 1, 10, 2, 13), "Europe/Prague") == "2026-07-01 12:02:13"
    assert _fmt_time(None, "Europe/Prague") == ""
