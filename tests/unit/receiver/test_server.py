"""The receiver under waitress on a loopback port, spoken to over real HTTP."""

from __future__ import annotations

import logging
import shutil
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from connector.ledger.repo import open_ledger

from .conftest import HOOK, TOKEN, TOKEN2, inbox


def test_valid_delivery_over_http(http, ledger):
    r = http.post(HOOK, content=b"[123456, 1234567]", headers={"Content-Type": "application/json"})
    assert r.status_code == 202 and r.json() == {"accepted": 2, "queued": 2}
    assert r.headers["Server"] == "mall-connector"
    assert inbox(ledger) == [123456, 1234567]


def test_wrong_token_over_http_matches_unknown_path(http, ledger):
    unknown = http.post("/nothing-here", content=b"[1]")
    r = http.post("/webhooks/mall/wrong-0123456789abcdef", content=b"[1]")
    assert r.status_code == unknown.status_code == 404
    assert r.content == unknown.content
    assert inbox(ledger) == []


def test_chunked_body_is_accepted(http, ledger):
    def gen():
        yield b"[11, "
        yield b"12]"

    r = http.post(HOOK, content=gen())
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 202
    assert inbox(ledger) == [11, 12]


@pytest.mark.parametrize("chunked", [False, True])
def test_multi_megabyte_body_is_413_and_the_server_lives(http, ledger, chunked):
    big = b"[" + b"1," * 2_000_000 + b"1]"  # 4 MB
    content = (big[i:i + 65536] for i in range(0, len(big), 65536)) if chunked else big
    r = http.post(HOOK, content=content)
    assert r.status_code == 413
    assert inbox(ledger) == []
    assert http.get("/healthz").status_code == 200


def test_just_over_the_app_limit_is_413_json(http, ledger):
    body = b"[" + b" " * 65535 + b"1]"  # 65537 bytes: waitress lets it through, the app refuses
    r = http.post(HOOK, content=body)
    assert r.status_code == 413 and "error" in r.json()
    assert inbox(ledger) == []


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "text/plain"},
                                     {"Content-Type": "application/x-www-form-urlencoded"}])
def test_content_type_over_http(http, ledger, headers):
    assert http.post(HOOK, content=b"[5]", headers=headers).status_code == 202
    assert http.post(HOOK, content=b"a=5", headers=headers).status_code == 400
    assert inbox(ledger) == [5]


def test_get_on_webhook_is_405(http):
    assert http.get(HOOK).status_code == 405


def test_removed_ledger_is_503_over_http(make_app, serve, tmp_path):
    folder = tmp_path / "gone"
    folder.mkdir()
    led = open_ledger("sqlite:///" + str(folder / "ledger.db"))
    led.close()
    shutil.rmtree(folder)
    srv = serve(make_app(ledger=led))
    r = httpx.post(srv.url + HOOK, content=b"[1]")
    assert r.status_code == 503 and r.headers["Retry-After"] == "60"


def test_throttle_over_http(make_app, serve, ledger):
    srv = serve(make_app(wrong_token_limit_per_minute=3))
    with httpx.Client(base_url=srv.url) as c:
        codes = [c.post("/webhooks/mall/guess-aaaaaaaaaaaa", content=b"[1]").status_code for _ in range(5)]
        assert codes == [404, 404, 404, 429, 429]
        assert c.post(HOOK, content=b"[1]").status_code == 429  # the right token too, until the window ends


def test_burst_is_served_without_queue_warnings(server, ledger, caplog):
    caplog.set_level(logging.WARNING)
    # One client per worker thread (a new httpx.Client per request is slow, and one client shared by 32
    # threads once raced in httpcore's pool: EBADF on the client side, not the receiver's doing).
    local = threading.local()
    clients: list[httpx.Client] = []

    def post(i: int) -> int:
        if not hasattr(local, "c"):
            local.c = httpx.Client(base_url=server.url, timeout=10)
            clients.append(local.c)
        return local.c.post(HOOK, content=f"[{i}]".encode()).status_code

    try:
        with ThreadPoolExecutor(32) as pool:
            codes = list(pool.map(post, range(1, 101)))
    finally:
        for c in clients:
            c.close()
    assert codes == [202] * 100
    assert inbox(ledger) == list(range(1, 101))
    assert "Task queue depth" not in caplog.text


def test_stop_closes_the_port_and_ends_worker_threads(make_app, serve):
    srv = serve(make_app(), threads=4)
    assert httpx.get(srv.url + "/healthz").status_code == 200
    keep_alive = httpx.Client(base_url=srv.url)  # an idle keep-alive connection must not hold stop()
    assert keep_alive.get("/healthz").status_code == 200
    srv.stop(timeout=5)
    assert srv._server.task_dispatcher.threads == set()
    assert not [t for t in threading.enumerate() if t.name.startswith("waitress-") or t.name == "receiver"]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
    keep_alive.close()


def test_no_token_in_any_log_under_waitress(make_app, serve, ledger, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    # The client side (httpx) logs URLs; the product silences it too (connector.logs.setup_logging).
    caplog.set_level(logging.WARNING, logger="httpx")
    caplog.set_level(logging.WARNING, logger="httpcore")
    srv = serve(make_app(tokens=[TOKEN, TOKEN2], wrong_token_limit_per_minute=1))
    with httpx.Client(base_url=srv.url) as c:
        c.post(HOOK, content=b"[1]")
        c.post("/webhooks/mall/" + TOKEN2, content=b"[0]")
        c.post(HOOK, content=b"[" + b"1," * 1_000_000 + b"1]")
        c.put(HOOK, content=b"[1]")
        c.post("/webhooks/mall/" + TOKEN + "x", content=b"[1]")
        c.post("/webhooks/mall/" + TOKEN + "x", content=b"[1]")
        c.get("/readyz")
    srv.stop()
    out = capfd.readouterr()
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "/webhooks/mall/***" in logged
    for secret in (TOKEN, TOKEN2):
        assert secret not in logged
        assert secret not in out.out + out.err
