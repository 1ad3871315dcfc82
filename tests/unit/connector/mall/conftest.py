"""Shared helpers: a MockTransport that records requests, and a client wired to it with instant retries."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from connector.mall.client import MallClient, RetryPolicy
from tests.support.paths import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "mall"
CLIENT_ID = "cid-S3cr3t-4711_ZGV2fDEyMw=="
BASE_URL = "https://mpapi.test"


def load_fixture(relative: str) -> dict[str, Any]:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


def ok(data: Any = None, *, paging: dict[str, Any] | None = None, status_code: int = 200, headers=None) -> httpx.Response:
    body: dict[str, Any] = {"result": {"code": 200, "status": "OK"}}
    if paging is not None:
        body["paging"] = paging
    if data is not None:
        body["data"] = data
    return httpx.Response(status_code, json=body, headers=headers)


def error(status_code: int, message: str = "boom", *, result_status: str = "ERROR", codes=None, headers=None) -> httpx.Response:
    body: dict[str, Any] = {"result": {"code": status_code, "status": result_status, "message": message}}
    if codes is not None:
        body["errorCodes"] = codes
    return httpx.Response(status_code, json=body, headers=headers)


class Recorder:
    """Answers each request with the next item of ``script`` (a Response, an exception, or a callable)."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        request.read()
        if not self.script:
            raise AssertionError(f"unexpected request #{len(self.requests)}: {request.method} {request.url.path}")
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, type) and issubclass(step, BaseException):
            raise step("simulated failure", request=request)
        if callable(step) and not isinstance(step, httpx.Response):
            return step(request)
        return step

    @property
    def count(self) -> int:
        return len(self.requests)

    def params(self, i: int = -1) -> dict[str, str]:
        return dict(self.requests[i].url.params)

    def body(self, i: int = -1) -> Any:
        return json.loads(self.requests[i].content)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Callable[..., MallClient]:
    """``make_client(handler, **policy_overrides)``: a MallClient on a MockTransport; retries sleep into ``sleeps``."""
    clients: list[MallClient] = []

    def factory(handler: Callable[[httpx.Request], httpx.Response], *, on_response=None, **policy: Any) -> MallClient:
        defaults = dict(max_attempts=4, base_s=0.01, max_backoff_s=0.05, max_total_s=30.0, reset_cap_s=60.0)
        bounds = {k: policy.pop(k) for k in ("max_response_bytes", "deadline_s", "max_pages") if k in policy}
        defaults.update(policy)
        client = MallClient(
            BASE_URL,
            CLIENT_ID,
            transport=httpx.MockTransport(handler),
            retry=RetryPolicy(sleep=sleeps.append, **defaults),
            on_response=on_response,
            **bounds,
        )
        clients.append(client)
        return client

    yield factory
    for c in clients:
        c.close()
