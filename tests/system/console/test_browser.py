"""The console in a real browser: Debian's headless Chromium driven by Playwright, against the real daemon
(`mall-connector run` as a subprocess, console on) and the real MALL sandbox over loopback HTTP.

Set CONSOLE_SCREENSHOTS=docs/console (``make console-screenshots``) to refresh the PNGs in docs/console.md;
otherwise they go to the test's temp folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import playwright.sync_api as playwright_api  # a test extra: `make test` installs it; never skipped
import pytest

from connector.sandbox.faults import Faults
from connector.sandbox.server import SandboxServer
from tests.conftest import TEST_CLIENT_ID, free_port
from tests.support.worlds import CsvShop, applied_status_puts, status_puts

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "console-token-Xb6Nq3Wm9Lr5Tz2Kp8Vd"  # >= 128 bits, not repetitive (issue 16 item 7)
PASSWORDS = {"alice": "alice-admin-pw-1", "otto": "otto-operator-pw", "vera": "vera-viewer-pw-1"}
ROLES = {"alice": "admin", "otto": "operator", "vera": "viewer"}
MAPPING = """[to_mall]
"Balíme" = "shipping"
"Odesláno" = "shipped"
"Stornováno" = "cancelled"
[ignore]
statuses = ["Nová"]
[from_mall]
open = "Nová"
"""
TYPO = MAPPING.replace('"Stornováno" = "cancelled"\n', '"Stornováno" = "cancelled"\n"Zabaleno" = "shiping"\n')
FIXED = TYPO.replace('"shiping"', '"shipping"')

if not Path(CHROMIUM).exists():  # .ci/run installs it from Debian; without it this file cannot prove anything
    pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)", pytrace=False)


def _wait(predicate, timeout=30.0, what="condition", why=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{why()}" if why else ""))


class World:
    """A sandbox, a CSV shop, the daemon with its console, and three console users."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.sandbox = SandboxServer(TEST_CLIENT_ID, host="127.0.0.1", port=0, webhook_interval_s=0.1).start()
        self.console_port = free_port()
        self.url = f"http://127.0.0.1:{self.console_port}"
        (folder / "mapping.toml").write_text(MAPPING, encoding="utf-8")
        self.shop = CsvShop(folder, self.sandbox, mapping="mapping.toml", receiver_listen=f"127.0.0.1:{free_port()}",
                            tokens=[TOKEN], sync="poll_interval_s = 1\ndrain_interval_s = 1\nsweep_interval_s = 2\n",
                            extra=f'[console]\nenabled = true\nlisten = "127.0.0.1:{self.console_port}"\n'
                                  'language = "cs"\n')
        text = self.shop.config_path.read_text(encoding="utf-8").replace("max_attempts = 12", "max_attempts = 2")
        self.shop.config_path.write_text(text, encoding="utf-8")
        for name, password in PASSWORDS.items():
            r = self.shop.cli("console", "adduser", name, "--role", ROLES[name], "--password-stdin",
                              input=password + "\n")
            assert r.returncode == 0, r.stderr
        self.log_path = folder / "daemon.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "connector", "--config", str(self.shop.config_path),
                                      "run"], stdout=self._log, stderr=subprocess.STDOUT, cwd=folder)
        _wait(self._up, what="the console to answer")
        shots = os.environ.get("CONSOLE_SCREENSHOTS")
        self.shots = Path(shots) if shots else folder / "shots"
        self.shots.mkdir(parents=True, exist_ok=True)
        self.pages: dict[str, str] = {}  # name -> HTML, for the secret scan

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the daemon exited: {self.log()}")
        try:
            return httpx.get(self.url + "/login", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def ledger(self):
        from connector.ledger import open_ledger

        return open_ledger(self.shop.config().ledger.url, migrate_schema=False)

    def shot(self, page, name: str, *, full: bool = False) -> None:
        assert _unlabelled(page) == [], f"page {name} has form fields without a label"
        self.pages[name] = page.content()
        page.screenshot(path=str(self.shots / f"{name}.png"), full_page=full)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.sandbox.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("console"))
    yield w
    w.close()
    assert w.proc.returncode == 0, w.log()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)  # a fresh temporary profile
        yield b
        b.close()


def _context(browser, **kw):
    ctx = browser.new_context(viewport=kw.pop("viewport", {"width": 1100, "height": 760}), accept_downloads=True, **kw)
    ctx.set_default_timeout(15000)
    return ctx


def _login(page, world, name: str) -> None:
    page.goto(world.url + "/login")
    page.fill("#username", name)
    page.fill("#password", PASSWORDS[name])
    page.click("form.stack button[type=submit]")
    page.wait_for_selector("nav")


def _unlabelled(page) -> list[str]:
    """Form fields a screen reader could not name."""
    return page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => e.type !== 'hidden')
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map(e => e.outerHTML)""")


def test_the_whole_console_story_in_chromium(world, browser):
    sb = world.sandbox
    a, b, d = (o["id"] for o in sb.state.create_orders(3, status="open"))
    (c,) = (o["id"] for o in sb.state.create_orders(1, status="shipped"))
    led = world.ledger()
    try:
        # The sweep hands the three new orders to the shop and confirms them on MALL.
        _wait(lambda: all(sb.state.get(o)["confirmed"] for o in (a, b, c, d)), timeout=60, what="orders confirmed")
        # Order A: shipped with tracking while MALL answers 500 to every PUT: the change fails after 2 attempts.
        sb.faults = Faults(error_rate=1.0, methods=("PUT",))
        world.shop.write_feed([
            {"mall_order_id": a, "status": "Odesláno", "shop_order_id": "S-A", "tracking_number": f"T{a}",
             "tracking_url": f"https://track.example/{a}"},
            {"mall_order_id": b, "status": "Nová", "shop_order_id": "S-B"},
            {"mall_order_id": d, "status": "Zabaleno", "shop_order_id": "S-D"},
        ])
        _wait(lambda: any(ch.state == "failed" for ch in led.changes.list(order_id=a)), timeout=60,
              what="A's change to fail")
        sb.faults = Faults()
        failed = [ch for ch in led.changes.list(order_id=a) if ch.state == "failed"][0]
        assert applied_status_puts(sb, a) == []
        # Order C: shipped on MALL, then the shop cancels it: a needs-action item.
        world.shop.write_feed([
            {"mall_order_id": a, "status": "Odesláno", "shop_order_id": "S-A", "tracking_number": f"T{a}",
             "tracking_url": f"https://track.example/{a}"},
            {"mall_order_id": b, "status": "Nová", "shop_order_id": "S-B"},
            {"mall_order_id": d, "status": "Zabaleno", "shop_order_id": "S-D"},
            {"mall_order_id": c, "status": "Stornováno", "shop_order_id": "S-C"},
        ])
        _wait(lambda: led.actions.open(), what="C's needs-action item")

        ctx = _context(browser)
        page = ctx.new_page()

        # -- log in (Czech by default), switch to English, a wrong password first -----------------------
        page.goto(world.url + "/")
        assert page.url.startswith(world.url + "/login")
        assert page.get_attribute("html", "lang") == "cs"
        assert page.inner_text("label[for=username]") == "Uživatelské jméno"
        world.shot(page, "login")
        page.select_option("#lang-select", "en")
        page.click("header form.inline button[type=submit]")
        assert page.get_attribute("html", "lang") == "en"
        page.fill("#username", "alice")
        page.fill("#password", "not-her-password")
        with page.expect_response(lambda r: "/login" in r.url and r.request.method == "POST") as resp:
            page.click("form.stack button[type=submit]")
        assert resp.value.status == 401
        assert "Wrong user name or password." in page.inner_text("#login-error")
        page.fill("#username", "alice")
        page.fill("#password", PASSWORDS["alice"])
        page.click("form.stack button[type=submit]")
        page.wait_for_selector("nav")
        cookie = [k for k in ctx.cookies() if k["name"] == "mall_console"][0]
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
        assert "Signed in as" in page.inner_text("header")
        assert page.inner_text("#h-jobs") == "Health"
        assert "never" not in page.inner_text("dl"), "the overview must show the last poll and sweep"
        world.shot(page, "overview")

        # -- find an order -----------------------------------------------------------------------------
        page.get_by_role("navigation").get_by_role("link", name="Orders", exact=True).click()
        page.fill("#q", "S-A")
        page.click("form.filters button")
        rows = page.locator("#orders-table tbody tr")
        assert rows.count() == 1 and str(a) in rows.first.inner_text()
        page.fill("#q", str(b))
        page.click("form.filters button")
        assert page.locator("#orders-table tbody tr").count() == 1
        assert "S-B" in page.inner_text("#orders-table")
        page.select_option("#status", "shipped")
        page.fill("#q", "")
        page.click("form.filters button")
        listed = page.inner_text("#orders-table")
        assert str(c) in listed and str(a) not in listed
        world.shot(page, "orders")
        page.click(f"a[href='/orders/{c}']")
        assert "cancel_after_shipped" in page.content() or "shop cancelled after MALL" in page.content()

        # -- retry the failed change; it lands on the sandbox --------------------------------------------
        page.get_by_role("navigation").get_by_role("link", name="Changes", exact=True).click()
        page.select_option("#state", "failed")
        page.click("form.filters button")
        row = page.locator(f"#change-{failed.id}")
        assert "failed" in row.inner_text()
        world.shot(page, "changes")
        row.locator("button", has_text="Retry").click()
        assert f"change {failed.id} will be retried" in page.inner_text(".flashes")
        _wait(lambda: sb.state.get(a)["status"] == "shipped", what="A shipped on the sandbox",
              why=lambda: f"{led.changes.list(order_id=a)}\n{world.log()[-4000:]}")
        assert len(applied_status_puts(sb, a)) == 1
        page.goto(f"{world.url}/orders/{a}")
        history = page.inner_text("ol.history")
        assert f"change {failed.id} put back to pending by console user alice (admin)" in history
        audit = page.inner_text("main")
        assert "alice (admin)" in audit and f"retry change {failed.id}" in audit
        world.shot(page, "order", full=True)

        # -- needs action: done for the selected items -------------------------------------------------
        page.get_by_role("navigation").get_by_role("link", name="Needs action", exact=True).click()
        item = led.actions.open()[0]
        world.shot(page, "needs-action")
        page.check(f"#item-{item['id']}")
        page.fill("#note", "parcel stopped at the carrier")
        page.click("text=Mark selected as done")
        assert f"item {item['id']} done" in page.inner_text(".flashes")
        assert led.actions.open() == []

        # -- mapping: a typo is shown while typing and refused on save; the fix saves and reloads ---------
        page.get_by_role("navigation").get_by_role("link", name="Mapping", exact=True).click()
        assert _unlabelled(page) == []
        page.fill("#mapping-text", TYPO)
        page.wait_for_selector("#mapping-error")
        err = page.inner_text("#mapping-error")
        assert "'shiping' is not a MALL status; did you mean 'shipping'?" in err and ":5:" in err
        world.shot(page, "mapping-typo")
        with page.expect_response(lambda r: r.url.endswith("/mapping") and r.request.method == "POST") as resp:
            page.click("#mapping-save")
        assert resp.value.status == 400
        assert "Not saved" in page.inner_text("#save-refused")
        assert (world.folder / "mapping.toml").read_text(encoding="utf-8") == MAPPING
        page.fill("#mapping-text", FIXED)
        page.wait_for_selector("#mapping-ok")
        assert page.locator("#save-refused").count() == 0  # the refusal was about the old text
        # D's "Zabaleno" was unmapped and becomes shipping; B's "Nová" stays ignored.
        assert "1 order(s) would be pushed as shipping" in page.inner_text("#mapping-preview")
        assert [ch.state for ch in led.changes.list(order_id=d) if ch.origin == "shop"] == ["skipped"]
        world.shot(page, "mapping-preview", full=True)
        reloads_before = world.log().count("reloaded config")
        page.click("#mapping-save")
        assert "Saved. The daemon reloaded it, as on SIGHUP" in page.inner_text(".flashes")
        assert (world.folder / "mapping.toml").read_text(encoding="utf-8") == FIXED
        assert (world.folder / "mapping.toml.prev").read_text(encoding="utf-8") == MAPPING
        _wait(lambda: world.log().count("reloaded config") > reloads_before, what="the daemon to reload")
        # The row of D did not change in the shop: the next poll decides it again, with the new mapping.
        _wait(lambda: sb.state.get(d)["status"] == "shipping", what="D pushed as shipping after the reload")
        assert [e.body["status"] for e in status_puts(sb, d)] == ["shipping"]
        world.shop.write_feed([
            {"mall_order_id": a, "status": "Odesláno", "shop_order_id": "S-A", "tracking_number": f"T{a}",
             "tracking_url": f"https://track.example/{a}"},
            {"mall_order_id": b, "status": "Zabaleno", "shop_order_id": "S-B"},
            {"mall_order_id": d, "status": "Zabaleno", "shop_order_id": "S-D"},
            {"mall_order_id": c, "status": "Stornováno", "shop_order_id": "S-C"},
        ])
        _wait(lambda: sb.state.get(b)["status"] == "shipping", what="B pushed as shipping with the new mapping")
        assert [e.body["status"] for e in status_puts(sb, b)] == ["shipping"]
        page.goto(world.url + "/mapping")
        assert "Zabaleno → shipping" in page.inner_text("main")
        assert page.locator("text=Undo the last save").count() == 1

        # -- exports -------------------------------------------------------------------------------------
        page.get_by_role("navigation").get_by_role("link", name="Exports", exact=True).click()
        world.shot(page, "exports")
        with page.expect_download() as dl:
            page.click("#download-picking")
        target = world.folder / "picking.xlsx"
        dl.value.save_as(target)
        from openpyxl import load_workbook

        assert "Picking" in load_workbook(target, read_only=True).sheetnames

        # -- a form posted without its CSRF token is refused ---------------------------------------------
        change_b = [ch for ch in led.changes.list(order_id=b)][0]
        page.goto(world.url + "/changes")
        page.evaluate("""(id) => { const f = document.createElement('form'); f.method = 'post';
            f.action = '/changes/' + id + '/skip'; const r = document.createElement('input'); r.name = 'reason';
            r.value = 'forged'; f.appendChild(r); document.body.appendChild(f); f.submit(); }""", change_b.id)
        page.wait_for_selector("text=security token")
        assert "Refused" in page.inner_text("h1")
        world.shot(page, "refused-csrf")
        assert led.changes.get(change_b.id).state != "skipped"
        world.pages["order-c"] = page.goto(f"{world.url}/orders/{c}").text()
        ctx.close()

        # -- a viewer: reads, but every edit is refused ----------------------------------------------------
        vctx = _context(browser)
        vpage = vctx.new_page()
        _login(vpage, world, "vera")  # a new browser: the console's default language, Czech
        vpage.get_by_role("navigation").get_by_role("link", name="Mapování", exact=True).click()
        assert "Mapování může upravovat jen admin." in vpage.inner_text("main")
        assert vpage.locator("#mapping-save").count() == 0
        assert vpage.get_attribute("#mapping-text", "readonly") is not None
        world.shot(vpage, "viewer-mapping")
        token = vpage.get_attribute("input[name=csrf_token]", "value")
        r = vpage.request.post(world.url + "/mapping", form={"csrf_token": token, "text": MAPPING})
        assert r.status == 403 and "je potřeba admin" in r.text()
        r = vpage.request.post(f"{world.url}/changes/{change_b.id}/skip", form={"csrf_token": token, "reason": "x"})
        assert r.status == 403
        assert (world.folder / "mapping.toml").read_text(encoding="utf-8") == FIXED
        assert led.changes.get(change_b.id).state != "skipped"
        vctx.close()

        # -- a phone, by keyboard only ---------------------------------------------------------------------
        pctx = _context(browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        ppage = pctx.new_page()
        ppage.goto(world.url + "/login")
        assert ppage.evaluate("document.activeElement.id") == "username"  # autofocus
        ppage.keyboard.type("otto")
        ppage.keyboard.press("Tab")
        assert ppage.evaluate("document.activeElement.id") == "password"
        ppage.keyboard.type(PASSWORDS["otto"])
        ppage.keyboard.press("Enter")
        ppage.wait_for_selector("nav")
        assert ppage.evaluate("document.documentElement.scrollWidth") <= 390
        world.shot(ppage, "phone-overview")
        ppage.goto(world.url + "/changes?state=done")
        assert ppage.evaluate("document.documentElement.scrollWidth") <= 390
        pctx.close()
    finally:
        led.close()

    # -- nothing secret was ever rendered ----------------------------------------------------------------
    users_file = (world.folder / "console-users.toml").read_text(encoding="utf-8")
    hashes = [line.split('"')[1] for line in users_file.splitlines() if line.startswith("password_hash")]
    assert len(hashes) == 3
    for name, html in world.pages.items():
        for secret in [TEST_CLIENT_ID, TOKEN, *PASSWORDS.values(), *hashes]:
            assert secret not in html, f"page {name} shows a secret"
    daemon_log = world.log()
    assert "console: alice (admin) logged in" in daemon_log  # the log was read at all
    for secret in [*PASSWORDS.values(), "not-her-password", *hashes]:
        assert secret not in daemon_log
    for name in ("login", "overview", "orders", "order", "changes", "needs-action", "mapping-typo",
                 "mapping-preview", "exports", "refused-csrf", "viewer-mapping", "phone-overview"):
        assert (world.shots / f"{name}.png").stat().st_size > 0


def test_logged_out_and_forged_requests_change_nothing(world):
    """No browser needed: a POST without a session or token, and a GET without a session."""
    r = httpx.post(world.url + "/mapping", data={"text": MAPPING}, timeout=5)
    assert r.status_code == 403
    r = httpx.get(world.url + "/changes", timeout=5, follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"].startswith("/login")
    assert (world.folder / "mapping.toml").read_text(encoding="utf-8") in (MAPPING, FIXED)
