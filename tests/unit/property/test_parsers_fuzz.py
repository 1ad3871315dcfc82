"""The parsers that take outside input never raise anything but their own clear error, whatever arrives:
the webhook body (``parse_order_ids`` and the receiver app), the shop's CSV feed (``csv_records`` +
``records_to_feed``) and the mapping file (``mapping_from_text``). Arbitrary bytes and text, and
structured near-misses that get past the first checks."""

from __future__ import annotations

import io
import json
import tempfile
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from adapters.base import FeedProblem, FeedUnavailable
from adapters.generic_csv import ColumnMap, csv_records, records_to_feed
from connector.ledger import open_ledger
from connector.mapping import Mapping, MappingError, mapping_from_text
from connector.metrics import Metrics
from receiver.app import MAX_ORDER_ID, BadBody, create_app, parse_order_ids
from tests.unit.property import PROFILE

PRAGUE = ZoneInfo("Europe/Prague")
TOKEN = "fuzz-token-" + "k" * 16
COUNTS: dict[str, int] = {}


def _count(kind: str) -> None:
    COUNTS[kind] = COUNTS.get(kind, 0) + 1


# -- webhook bodies ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)
id_lists = st.lists(st.one_of(st.integers(min_value=1, max_value=MAX_ORDER_ID), st.integers(), st.booleans(),
                              st.floats(allow_nan=False, allow_infinity=False)), max_size=8)
bodies = st.one_of(
    st.binary(max_size=600),
    json_values.map(lambda v: json.dumps(v).encode()),
    id_lists.map(lambda v: json.dumps(v).encode()),
    id_lists.map(lambda v: ("\ufeff" + json.dumps(v)).encode("utf-8")),
    st.integers(1, 2000).map(lambda n: b"[" * n + b"1" + b"]" * n),  # deep nesting
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


def _valid(ids) -> bool:
    return isinstance(ids, list) and bool(ids) and all(type(i) is int and 0 < i <= MAX_ORDER_ID for i in ids)


@settings(PROFILE, max_examples=1200)
@given(body=bodies)
@example(body=b"[" * 100_000 + b"]" * 100_000)  # deeper than the JSON decoder's recursion limit
@example(body=b"[" + b"9" * 5000 + b"]")  # an integer literal too long to convert
@example(body=b"[1, true, 1.0]")
@example(body=b"[9223372036854775808]")  # 2**63: one past the largest id
@example(body="\ufeff[1]".encode())
@example(body=b"\xff\xfe[\x001\x00]\x00")  # UTF-16
def test_parse_order_ids_returns_ids_or_raises_badbody(body):
    try:
        ids = parse_order_ids(body)
    except BadBody as e:
        assert str(e) and "\n" not in str(e)
        return
    assert _valid(ids), ids
    assert ids == json.loads(body.decode("utf-8-sig"))


@pytest.fixture(scope="module")
def receiver():
    with tempfile.TemporaryDirectory() as tmp:
        ledger = open_ledger(f"sqlite:///{tmp}/ledger.db")
        app = create_app(ledger=ledger, tokens=[TOKEN], metrics=Metrics(), max_body_bytes=4096, max_ids=50)
        yield app.test_client(), ledger
        ledger.close()


@settings(PROFILE, max_examples=400)
@given(body=bodies, content_type=st.sampled_from(["application/json", "text/plain", "", "multipart/form-data",
                                                   "application/x-www-form-urlencoded"]))
def test_the_receiver_answers_every_body_with_202_400_or_413(receiver, body, content_type):
    client, ledger = receiver
    before = ledger.inbox.depth()
    r = client.post(f"/webhooks/mall/{TOKEN}", data=body, headers={"Content-Type": content_type} if content_type else {})
    assert r.status_code in (202, 400, 413), (r.status_code, r.data[:200])
    assert r.is_json and set(r.get_json()) <= {"accepted", "queued", "error"}
    if r.status_code != 202:
        assert ledger.inbox.depth() == before, "a rejected delivery left ids in the inbox"
        _count("webhook_rejected")
    else:
        _count("webhook_accepted")


# -- the shop's CSV feed -----------------------------------------------------------------------

KNOWN = list(ColumnMap.__dataclass_fields__)
cells = st.one_of(
    st.text(max_size=12), st.integers(-5, 10**12).map(str), st.sampled_from(
        ["2026-11-20 10:11:12", "20.11.2026 10:11", "2026-02-30", "31.02.2026", "2026-11-20T10:11:12+01:00", "", " ",
         "=HYPERLINK(1)", '"', '""', "a\nb", "a;b", "a,b", "\ufeff", "\x00", "PPL123", "shipped", "packing"]))


@st.composite
def csv_feeds(draw) -> bytes:
    header = draw(st.lists(st.one_of(st.sampled_from(KNOWN), st.text(max_size=6)), min_size=0, max_size=9))
    if draw(st.booleans()):
        header = ["mall_order_id", "status", *header]
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    rows = draw(st.lists(st.lists(cells, max_size=len(header) + 2), max_size=6))
    buf = io.StringIO()
    import csv

    w = csv.writer(buf, delimiter=delimiter, quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_NONE,
                                                                            csv.QUOTE_ALL])), escapechar="\\")
    try:
        w.writerow(header)
        w.writerows(rows)
    except csv.Error:
        pass
    text = buf.getvalue()
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]  # cut off mid-write
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1250", "utf-16"]))
    return text.encode(encoding, "replace")


@settings(PROFILE, max_examples=800)
@given(data=st.one_of(st.binary(max_size=800), csv_feeds()), encoding=st.sampled_from(["utf-8-sig", "cp1250"]))
def test_the_csv_feed_parser_returns_a_feed_or_raises_feedunavailable(data, encoding):
    try:
        header, rows = csv_records(io.BytesIO(data), source="shop.csv", encoding=encoding)
        feed = records_to_feed(rows, columns=ColumnMap(), tz=PRAGUE, source="shop.csv", header=header)
    except FeedUnavailable as e:
        assert str(e).startswith("shop.csv"), e
        _count("csv_unavailable")
        return
    _count("csv_read")
    for row in feed.rows:
        assert row.mall_order_id > 0 and row.status and row.status == row.status.strip()
        for d in (row.delivered_at, row.first_delivery_attempt):
            assert d is None or d.tzinfo is not None
    for p in feed.problems:
        assert isinstance(p, FeedProblem) and p.line >= 2 and str(p).startswith("shop.csv:")
    ids = [r.mall_order_id for r in feed.rows]
    assert len(ids) == len(set(ids))


# -- the mapping file --------------------------------------------------------------------------

statuses = st.sampled_from(["shipping", "shipped", "delivered", "returned", "cancelled", "open", "blocked", "lost",
                            "shiped", "SHIPPED ", ""])
toml_values = st.one_of(statuses, st.integers(), st.booleans(), st.lists(st.text(max_size=5), max_size=3),
                        st.lists(statuses, max_size=3))
sections = st.dictionaries(
    st.sampled_from(["to_mall", "from_mall", "ignore", "options", "to-mall", "extra"]),
    st.dictionaries(st.one_of(st.text(max_size=10), statuses, st.sampled_from(["statuses", "case_sensitive"])),
                    toml_values, max_size=4),
    max_size=4)


def _toml(doc: dict) -> str:
    out = []
    for section, table in doc.items():
        out.append(f"[{json.dumps(section)}]")
        for key, value in table.items():
            out.append(f"{json.dumps(key)} = {json.dumps(value)}")
    return "\n".join(out) + "\n"


@settings(PROFILE, max_examples=900)
@given(text=st.one_of(st.text(max_size=300), sections.map(_toml),
                      st.tuples(sections.map(_toml), st.text(max_size=20)).map("".join)))
def test_the_mapping_validator_returns_a_mapping_or_raises_mappingerror(text):
    try:
        mapping = mapping_from_text(text, "fuzz.toml")
    except MappingError as e:
        assert str(e).startswith("fuzz.toml") and e.reason, e
        _count("mapping_refused")
        return
    _count("mapping_ok")
    assert isinstance(mapping, Mapping)
    for shop, target in mapping.to_mall.items():
        assert mapping.lookup(shop).target == target


def test_the_fuzzers_tried_both_outcomes():
    """Not vacuous: every parser saw input it accepted and input it refused (runs after the others)."""
    if not COUNTS:
        pytest.skip("run with the fuzz tests above")
    for kind in ("webhook_accepted", "webhook_rejected", "csv_read", "csv_unavailable", "mapping_ok",
                 "mapping_refused"):
        assert COUNTS.get(kind, 0) >= 5, COUNTS
