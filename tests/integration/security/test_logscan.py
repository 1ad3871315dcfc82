"""The log scanner itself (tests/support/logscan.py) finds what it must, and is switched on."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from tests.conftest import TEST_CLIENT_ID
from tests.support.logscan import ENV_DIR, LeakHandler, SecretScanner


@pytest.fixture
def handler():
    h = LeakHandler(SecretScanner([TEST_CLIENT_ID, "tok-" + "s" * 20]))
    log = logging.getLogger("logscan.selftest")
    log.addHandler(h)
    log.propagate = False  # these deliberate leaks must not reach the session's own scan
    log.setLevel(logging.DEBUG)
    yield log, h
    log.removeHandler(h)


def test_it_catches_a_secret_in_a_message_its_args_an_exception_and_a_url(handler):
    log, h = handler
    log.warning("plain %s", TEST_CLIENT_ID)
    try:
        raise RuntimeError("bad key " + "tok-" + "s" * 20)
    except RuntimeError:
        log.error("failed", exc_info=True)
    log.info("GET https://mpapi.test/v1/orders?client_id=not-registered-anywhere&page=1")
    log.info("POST /webhooks/mall/An0therUnknownT0ken1234")
    assert len(h.leaks) == 4, h.leaks


def test_it_lets_redacted_text_and_placeholders_through(handler):
    log, h = handler
    log.warning("GET /v1/orders?client_id=***&page=2 -> HTTP 500")
    log.warning("webhook /webhooks/mall/*** from 127.0.0.1 (404)")
    log.warning("open %s?client_id=<your --client-id>", "http://127.0.0.1:8800/v1/orders")
    log.info("the word client_id alone, and /webhooks/mall/TOKEN in a help text")
    assert h.leaks == []


def test_module_constants_named_like_secrets_are_learned():
    s = SecretScanner()
    s.add_from({"TOKEN": "x" * 20, "OTHER_TOKEN2": "y" * 20, "SHORT_TOKEN": "z", "NAME": "w" * 20})
    assert s.secrets == {"x" * 20, "y" * 20}


def test_the_plugin_is_on_for_this_session(pytestconfig):
    """The plugin must be enabled from tests/conftest.py: pytest_plugins = ["tests.support.logscan"]."""
    if not pytestconfig.pluginmanager.has_plugin("mall-connector-logscan"):
        pytest.skip('log scan is off: add `pytest_plugins = ["tests.support.logscan"]` to tests/conftest.py '
                    "(or run pytest -p tests.support.logscan)")
    assert any(isinstance(h, LeakHandler) for h in logging.getLogger().handlers)
    assert os.environ.get(ENV_DIR), "subprocess output is not being collected"
    out = subprocess.run([sys.executable, "-c", "import sys; print(type(sys.stderr).__name__)"],
                         capture_output=True, text=True).stdout.strip()
    assert out == "_Tee", "subprocesses do not load tests/support/_tee/sitecustomize.py"
