"""The wire and the disk of the API shop adapters (shoptet, woocommerce; their base is
adapters/shared/api_shop.py): a bounded JSON client with typed errors, the adapter's local state folder
(staged batches, the MALL id -> shop order map, create attempts, the webhook spool), and webhook
signature checks.

Why a state folder: the core's hand-off is "stage, then publish" (adapters/base.py). For a shop with an
API, *stage* writes the batch to disk (fsynced) and *publish* makes the API calls, recording the shop's
order code for each MALL id as soon as the shop accepted it. A create attempt is written down before
the POST, so a crash between the POST and the record is detected on the next publish and the order is
looked up in the shop before anything is created again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import time
from dataclasses import asdict
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

import httpx

from adapters.base import HandoffError, MallChange, NewOrder, NewOrderItem
from connector.files import fsync_dir
from connector.safety import write_replacing

MAX_RESPONSE_BYTES = 8 * 2**20  # one API answer; a page of 100 orders is far below
SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_SPOOL_SEQ = itertools.count()


class ShopApiError(HandoffError):
    """A shop API call failed or answered something that does not fit. Names the endpoint (never a secret).

    A kind of HandoffError, so a failed publish is retried by the core's policy; ``retryable`` says whether
    waiting can help (429, 5xx, network) or a person must look (4xx, a malformed answer)."""

    def __init__(self, endpoint: str, message: str, *, status: int | None = None, retryable: bool = False):
        self.endpoint, self.status, self.retryable = endpoint, status, retryable
        super().__init__(f"{endpoint}: {message}")


def retry_after_s(value: str | None, default: float) -> float:
    """Seconds from a Retry-After header: a number, or an HTTP-date (Shoptet sends the date)."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return default


class JsonApi:
    """One request at a time (Shoptet allows 3 parallel per token; WooCommerce hosts are small), bounded
    answers, 429/503 waited out a bounded number of times, every failure a ShopApiError naming the call."""

    def __init__(self, base_url: str, *, headers: dict[str, str] | None = None, auth: Any = None,
                 timeout_s: float = 30.0, retries: int = 3, max_wait_s: float = 30.0, label: str = "shop"):
        self.base_url = base_url.rstrip("/")
        self.label = label
        self.retries, self.max_wait_s = retries, max_wait_s
        self.client = httpx.Client(base_url=self.base_url, headers=headers or {}, auth=auth,
                                   timeout=httpx.Timeout(timeout_s), follow_redirects=False)
        self.calls = 0

    def close(self) -> None:
        self.client.close()

    def endpoint(self, method: str, path: str) -> str:
        return f"{self.label} {method} {self.base_url}{path}"

    def request(self, method: str, path: str, *, params: dict | None = None, json_body: Any = None,
                ok: Iterable[int] = (200, 201)) -> tuple[Any, httpx.Headers]:
        name = self.endpoint(method, path)
        # A POST that failed with a 5xx or on the network may have been done: it is not repeated here, the
        # caller looks first (the create-attempt marker). A 429 was refused before it ran: always waited out.
        repeatable = method != "POST"
        attempt = 0
        while True:
            attempt += 1
            self.calls += 1
            try:
                with self.client.stream(method, path, params=params, json=json_body) as r:
                    raw = b""
                    for chunk in r.iter_bytes():
                        raw += chunk
                        if len(raw) > MAX_RESPONSE_BYTES:
                            raise ShopApiError(name, f"answer over {MAX_RESPONSE_BYTES} bytes, refused")
                    status, headers = r.status_code, r.headers
            except httpx.HTTPError as e:
                if repeatable and attempt <= self.retries:
                    time.sleep(min(0.2 * attempt, self.max_wait_s))
                    continue
                raise ShopApiError(name, f"not reachable: {type(e).__name__}", retryable=True) from None
            if status in (429, 503) or (status >= 500 and repeatable and attempt <= self.retries):
                wait = min(retry_after_s(headers.get("retry-after"), 0.2 * attempt), self.max_wait_s)
                if attempt <= self.retries:
                    time.sleep(wait)
                    continue
                raise ShopApiError(name, f"HTTP {status} after {attempt} attempt(s)", status=status, retryable=True)
            body = self._json(name, raw, headers, status)
            if status not in ok:
                raise ShopApiError(name, f"HTTP {status}: {self.error_text(body)}", status=status,
                                   retryable=status >= 500)
            return body, headers

    @staticmethod
    def _json(name: str, raw: bytes, headers: httpx.Headers, status: int) -> Any:
        if not raw:
            return None
        if "json" not in headers.get("content-type", ""):
            raise ShopApiError(name, f"HTTP {status}: not JSON ({headers.get('content-type') or 'no content type'}), "
                               "e.g. a host's HTML error page", status=status, retryable=status >= 500)
        try:
            return json.loads(raw)
        except ValueError:
            raise ShopApiError(name, f"HTTP {status}: malformed JSON", status=status) from None

    @staticmethod
    def error_text(body: Any) -> str:
        if isinstance(body, dict):
            if isinstance(body.get("errors"), list) and body["errors"]:  # Shoptet envelope
                e = body["errors"][0]
                return f"{e.get('errorCode')}: {e.get('message')}" if isinstance(e, dict) else str(e)[:200]
            if "code" in body:  # WordPress / WooCommerce envelope
                return f"{body.get('code')}: {body.get('message')}"
        return "unexpected answer"


def need(endpoint: str, obj: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    """``obj[key]`` of the given type, or a ShopApiError naming the endpoint and the field."""
    if not isinstance(obj, dict) or key not in obj:
        raise ShopApiError(endpoint, f"answer has no field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ShopApiError(endpoint, f"field {key!r} has the wrong type ({type(value).__name__})")
    return value


# -- webhook signatures ------------------------------------------------------------------------

def hmac_hex_sha1(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha1).hexdigest()


def hmac_b64_sha256(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def signature_ok(given: str | None, body: bytes, keys: Sequence[str], sign) -> bool:
    """True when ``given`` is the signature of ``body`` under any of ``keys`` (rotation); every key is
    compared in constant time, and all of them are tried, so timing tells nothing about which one."""
    if not given or not keys:
        return False
    match = False
    for key in keys:
        match |= hmac.compare_digest(sign(key, body).encode(), given.strip().encode())
    return match


# -- the adapter's own state -------------------------------------------------------------------

def _record_dict(record: NewOrder | MallChange) -> dict:
    d = asdict(record)
    d["type"] = "order" if isinstance(record, NewOrder) else "change"
    return d


def _record_from(d: dict) -> NewOrder | MallChange:
    d = dict(d)
    kind = d.pop("type")
    if kind == "order":
        d["items"] = tuple(NewOrderItem(**i) for i in d["items"])
        return NewOrder(**d)
    return MallChange(**d)


class StateDir:
    """Files under the adapter's ``state_dir``: ``staged/<batch>.json`` (and ``staged/<batch>.progress``: how
    many of its records are in the shop), ``orders/<mall id>.json`` (the shop's order for a MALL id),
    ``attempts/<mall id>`` (a create was tried at that time), ``missing/<mall id>.json`` (products the shop
    does not have), ``webhooks/`` (verified deliveries waiting for the next poll)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _dir(self, name: str) -> Path:
        d = self.root / name
        if not d.is_dir():  # first use: the new folders' own entries must survive a crash too
            new_root = not self.root.is_dir()
            d.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.root)
            if new_root:
                fsync_dir(self.root.parent)
        return d

    @staticmethod
    def write(path: Path, data: str) -> None:
        """Replace ``path`` with ``data``, crash-safe: a fresh temp file (O_EXCL, 0600), fsynced, renamed
        over ``path``, then the folder fsynced; a kill -9 at any point leaves the old file or the new one."""
        write_replacing(path, lambda f: f.write(data.encode("utf-8")))
        fsync_dir(path.parent)

    def _batch(self, name: str) -> Path:
        if not SAFE_NAME.match(name):
            raise HandoffError(f"hand-off name {name!r} is not a plain file name")
        return self._dir("staged") / f"{name}.json"

    def _progress(self, name: str) -> Path:
        return self._batch(name).with_suffix(".progress")

    def stage(self, name: str, kind: str, records: Sequence[NewOrder | MallChange]) -> None:
        try:
            self._progress(name).unlink(missing_ok=True)  # a (re)staged batch starts from its first record
            self.write(self._batch(name), json.dumps({"kind": kind, "records": [_record_dict(r) for r in records]}))
        except OSError as e:
            raise HandoffError(f"{self.root}: cannot stage {name}: {e.strerror}") from None

    def staged(self, name: str) -> list[NewOrder | MallChange] | None:
        path = self._batch(name)
        if not path.exists():
            return None
        return [_record_from(d) for d in json.loads(path.read_text(encoding="utf-8"))["records"]]

    def progress(self, name: str) -> int:
        """How many records of the staged batch are in the shop already (a publish killed halfway)."""
        path = self._progress(name)
        return int(path.read_text(encoding="utf-8")) if path.exists() else 0

    def note_progress(self, name: str, count: int) -> None:
        self.write(self._progress(name), str(int(count)))

    def done(self, name: str) -> None:
        self._batch(name).unlink(missing_ok=True)
        self._progress(name).unlink(missing_ok=True)

    def shop_order(self, mall_id: int) -> dict | None:
        path = self._dir("orders") / f"{int(mall_id)}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def record_shop_order(self, mall_id: int, code: str, **extra: Any) -> None:
        self.write(self._dir("orders") / f"{int(mall_id)}.json", json.dumps({"code": str(code), **extra}))
        (self._dir("attempts") / str(int(mall_id))).unlink(missing_ok=True)

    def attempt(self, mall_id: int) -> float | None:
        path = self._dir("attempts") / str(int(mall_id))
        return float(path.read_text(encoding="utf-8")) if path.exists() else None

    def note_attempt(self, mall_id: int, at: float) -> None:
        self.write(self._dir("attempts") / str(int(mall_id)), repr(at))

    def missing(self, mall_id: int) -> list[dict]:
        path = self._dir("missing") / f"{int(mall_id)}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []

    def note_missing(self, mall_id: int, items: list[dict]) -> None:
        path = self._dir("missing") / f"{int(mall_id)}.json"
        if items:
            self.write(path, json.dumps(items))
        else:
            path.unlink(missing_ok=True)

    # Verified webhook deliveries: the receiver writes one file per delivery; the next poll reads those
    # orders first and removes the files once the core stored the fingerprint that covered them.
    def spool_webhook(self, refs: Sequence[str]) -> None:
        d = self._dir("webhooks")
        name = f"{time.time_ns()}-{os.getpid()}-{next(_SPOOL_SEQ)}.json"  # unique across the receiver's threads
        self.write(d / name, json.dumps([str(r) for r in refs]))

    def webhook_refs(self) -> tuple[list[str], list[str]]:
        d = self._dir("webhooks")
        files = sorted(p.name for p in d.glob("*.json"))
        refs: list[str] = []
        for name in files:
            try:
                refs += [str(x) for x in json.loads((d / name).read_text(encoding="utf-8"))][:1000]
            except (OSError, ValueError):
                continue
        return refs, files

    def drop_webhooks(self, files: Iterable[str]) -> None:
        d = self._dir("webhooks")
        for name in files:
            if SAFE_NAME.match(name):
                (d / name).unlink(missing_ok=True)


def split_name(full: str) -> tuple[str, str]:
    parts = full.strip().split(" ", 1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def money(value: float) -> str:
    return f"{value:.2f}"
