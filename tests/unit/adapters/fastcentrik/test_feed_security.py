"""Hostile XML: external entities (XXE) and entity expansion bombs are refused, fast and small."""

from __future__ import annotations

import io
import sys
import tracemalloc

import pytest

from adapters.base import FeedUnavailable
from adapters.fastcentrik import parse_orders_xml
from connector.config import FastCentrikFields
from tests.unit.adapters.fastcentrik.conftest import PRAGUE

_opened: list[str] = []
_watch: list[str] = []


def _audit(event, args):
    """Records every attempt to open a watched path (audit hooks cannot be removed: gate by list)."""
    if event == "open" and _watch and args and str(args[0]) in _watch:
        _opened.append(str(args[0]))


sys.addaudithook(_audit)


def parse(data: str):
    return parse_orders_xml(io.BytesIO(data.encode()), source="evil.xml", fields=FastCentrikFields(), tz=PRAGUE)


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-PASSWORD")
    _watch.append(str(path))
    _opened.clear()
    yield path
    _watch.clear()


def _xxe_payloads(path) -> dict[str, str]:
    uri = path.as_uri()
    order = "<ORDERS><ORDER><MALL_ORDER_ID>1</MALL_ORDER_ID><STATUS>&x;</STATUS></ORDER></ORDERS>"
    return {
        "external entity": f'<?xml version="1.0"?>\n<!DOCTYPE ORDERS [<!ENTITY x SYSTEM "{uri}">]>\n{order}',
        "plain path": f'<!DOCTYPE ORDERS [<!ENTITY x SYSTEM "{path}">]>{order}',
        "external DTD": f'<!DOCTYPE ORDERS SYSTEM "{uri}"><ORDERS/>',
        "parameter entity": f'<!DOCTYPE ORDERS [<!ENTITY % p SYSTEM "{uri}"> %p;]><ORDERS/>',
    }


@pytest.mark.parametrize("kind", ["external entity", "plain path", "external DTD", "parameter entity"])
def test_xxe_is_refused_and_the_local_file_is_never_opened(secret, kind):
    with pytest.raises(FeedUnavailable) as e:
        parse(_xxe_payloads(secret)[kind])
    assert str(e.value).startswith("evil.xml: refused: the XML contains a DTD")
    assert "TOP-SECRET" not in str(e.value)
    assert _opened == []


def test_the_audit_hook_would_see_a_read(secret):
    """Guards the test above: opening the watched file is noticed."""
    with open(secret):
        pass
    assert _opened == [str(secret)]


def _billion_laughs(levels: int = 10) -> str:
    ents = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, levels)]
    return (f'<?xml version="1.0"?>\n<!DOCTYPE ORDERS [\n{chr(10).join(ents)}\n]>\n'
            f'<ORDERS><ORDER><MALL_ORDER_ID>1</MALL_ORDER_ID><STATUS>&lol{levels - 1};</STATUS></ORDER></ORDERS>')


def _quadratic_blowup() -> str:
    return (f'<!DOCTYPE ORDERS [<!ENTITY a "{"x" * 50_000}">]>'
            f'<ORDERS><ORDER><MALL_ORDER_ID>1</MALL_ORDER_ID><STATUS>{"&a;" * 50_000}</STATUS></ORDER></ORDERS>')


class _CountingStream(io.BytesIO):
    """Counts the bytes the parser takes from the feed: the work done before it refuses."""

    taken = 0

    def read(self, size=-1):
        data = super().read(size)
        self.taken += len(data)
        return data

    def read1(self, size=-1):
        data = super().read1(size)
        self.taken += len(data)
        return data

    def readinto(self, buf):
        n = super().readinto(buf)
        self.taken += n
        return n


@pytest.mark.parametrize("payload", [_billion_laughs(), _quadratic_blowup()], ids=["billion-laughs", "quadratic"])
def test_entity_bombs_are_refused_quickly_in_little_memory(payload):
    stream = _CountingStream(payload.encode())
    tracemalloc.start()
    try:
        with pytest.raises(FeedUnavailable, match="refused"):
            parse_orders_xml(stream, source="evil.xml", fields=FastCentrikFields(), tz=PRAGUE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Expanded, these are ~3 GB and 2.5 GB of text. Refused at the DTD: the parser takes at most a few chunks of
    # the document (not the 200 kB of the quadratic one), and memory stays that small (bounds on work, not time).
    assert stream.taken <= 64 * 1024
    assert peak < 2 * 2**20 + 2 * len(payload)


def test_entities_without_a_dtd_are_just_undefined():
    with pytest.raises(FeedUnavailable, match="undefined entity"):
        parse("<ORDERS><ORDER><STATUS>&lol9;</STATUS></ORDER></ORDERS>")
