"""FastCentrik's XML order export, read as a stream into ShopOrderState rows.

FastCentrik publishes no format: support generates an export URL per shop, and the element
names vary, so they come from ``[shop.fastcentrik.fields]``. A value may be a child element
(``<STATUS>vyřízená</STATUS>``) or an attribute (``<ORDER STATUS="vyřízená">``); names match
ignoring case and namespaces.

Safety and size: the feed comes over the network, so it is parsed with defusedxml with DTDs,
entity declarations and external references all refused (no XXE, no billion laughs), and as a
stream: each order element is dropped once read, so a 50 MB export does not become a ~200 MB tree
(measured: 26 MB of XML is ~110 MB as an ElementTree; streamed, the parser itself holds ~1-2 MB).

Orders without a MALL order id are the shop's own orders: skipped silently and only counted.
Everything else goes through the shared ``records_to_feed``, so a bad value is reported the same
way as in a CSV feed. The position is the order's number in the feed (``ORDER #n``), not a
line: generated exports are often one long line.
"""

from __future__ import annotations

import re
from dataclasses import fields as dc_fields
from dataclasses import replace
from typing import IO, Iterator, NamedTuple
from xml.etree.ElementTree import TreeBuilder  # the C one, as defusedxml's own iterparse uses
from zoneinfo import ZoneInfo

import defusedxml
from defusedxml.ElementTree import DefusedXMLParser, ParseError
from defusedxml.ElementTree import iterparse as defused_iterparse

from adapters.base import FeedRead, FeedRefused, FeedUnavailable
from adapters.fastcentrik.config import MAX_XML_DEPTH, FastCentrikFields
from adapters.shared.sections import FeedLimits
from adapters.generic_csv import ColumnMap, Records, records_to_feed

_DECLARED_ENCODING = re.compile(rb"^\s*<\?xml[^>]*\bencoding\s*=", re.IGNORECASE)
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_UTF8 = ("utf-8", "utf8", "utf-8-sig")

# Defaults of the bounds ([shop.fastcentrik] max_xml_depth and max_rows); the elements of one order
# are a fixed bound: a real order has a few dozen.
MAX_DEPTH = MAX_XML_DEPTH
MAX_ORDERS = FeedLimits().max_rows
MAX_ORDER_ELEMENTS = 10_000


class ParsedFeed(NamedTuple):
    read: FeedRead
    non_mall_orders: int  # orders with no MALL order id (the shop's own), skipped


def column_map(fields: FastCentrikFields) -> ColumnMap:
    """The configured names of the order fields, in the shared ColumnMap form (CSV, XLSX and XML)."""
    return ColumnMap(**{f.name: getattr(fields, f.name) for f in dc_fields(ColumnMap)})


def _local(tag: object) -> str:
    """``{namespace}NAME`` -> ``name`` (case-folded)."""
    return str(tag).rpartition("}")[2].casefold()


def _encoding_override(head: bytes, configured: str | None) -> str | None:
    """The configured encoding, but only for a feed that does not say its own.

    XML names its encoding in the prolog (FastCentrik CZ exports may be windows-1250); that
    always wins. Only a feed with no declaration and no BOM, which XML would read as UTF-8,
    gets ``[shop.fastcentrik] encoding``.
    """
    if not configured or configured.lower() in _UTF8:
        return None
    if head.startswith(_BOMS) or _DECLARED_ENCODING.match(head):
        return None
    return configured


def parse_orders_xml(
    stream: IO[bytes],
    *,
    source: str,
    fields: FastCentrikFields,
    tz: ZoneInfo,
    encoding: str | None = None,
    max_depth: int = MAX_DEPTH,
    max_orders: int = MAX_ORDERS,
    max_order_elements: int = MAX_ORDER_ELEMENTS,
) -> ParsedFeed:
    """Read the order export from a binary stream. Raises FeedUnavailable for XML that is not
    well-formed or not allowed (DTD, entities), naming ``source`` and the position; FeedRefused for
    XML nested deeper than ``max_depth``, with more than ``max_orders`` orders, or with more than
    ``max_order_elements`` elements inside one order (each order is held until it ends)."""
    head = peek(stream, 1024)
    override = _encoding_override(head, encoding)
    columns = column_map(fields)
    wanted = {_local(getattr(columns, f.name)): getattr(columns, f.name) for f in dc_fields(ColumnMap)}
    order_name = _local(fields.order)
    order_tags: dict[str, bool] = {}  # tag -> is it the order element (tags repeat: look up once)
    child_keys: dict[str, str | None] = {}  # child tag -> configured field name, or None
    parser = DefusedXMLParser(target=TreeBuilder(), encoding=override,
                              forbid_dtd=True, forbid_entities=True, forbid_external=True)
    counts = {"non_mall": 0, "orders": 0, "stray_ids": 0}
    mall_id_name = _local(fields.mall_order_id)
    root_name = []
    shared: dict[str, str] = {}  # one str object per distinct status/carrier: 100k rows share a few
    in_order = [0]  # elements seen inside the current order

    def records() -> Iterator[tuple[int, dict[str, str]]]:
        stack = []  # open elements, from the events (the parser itself reads a chunk ahead)
        depth = 0  # open order elements
        for event, elem in defused_iterparse(stream, events=("start", "end"), parser=parser):
            is_order = order_tags.get(elem.tag)
            if is_order is None:
                is_order = order_tags[elem.tag] = _local(elem.tag) == order_name
            if event == "start":
                if not stack and not root_name:
                    root_name.append(_local(elem.tag))
                stack.append(elem)
                if len(stack) > max_depth:
                    raise FeedRefused(source, "max_xml_depth", max_depth,
                                      f"the XML is nested deeper than {max_depth} elements")
                depth += is_order
                if depth:
                    in_order[0] += 1
                    if in_order[0] > max_order_elements:
                        raise FeedRefused(source, "elements per order", max_order_elements,
                                          f"{fields.order} #{counts['orders'] + 1} has more than "
                                          f"{max_order_elements} elements")
                continue
            stack.pop()
            if is_order:
                depth -= 1
                if depth == 0:
                    counts["orders"] += 1
                    in_order[0] = 0
                    if counts["orders"] > max_orders:
                        raise FeedRefused(source, "max_rows", max_orders, f"more than {max_orders} orders")
                    values = _values(elem, wanted, child_keys)
                    elem.clear()
                    if not values.get(fields.mall_order_id, "").strip():
                        counts["non_mall"] += 1
                    else:
                        for key in (fields.status, fields.carrier):
                            if key in values:
                                values[key] = shared.setdefault(values[key], values[key])
                        yield counts["orders"], values
            elif depth == 0 and (_local(elem.tag) == mall_id_name
                                 or any(_local(a) == mall_id_name for a in elem.attrib)):
                counts["stray_ids"] += 1  # a MALL order id outside any order element
            if depth == 0 and stack:
                # Done with it and outside any order: drop it so memory stays flat. (It is
                # near the front: the parser has only added the siblings of one chunk since.)
                stack[-1].remove(elem)

    try:
        read = records_to_feed(records(), columns=columns, tz=tz, source=source,
                               header=list(wanted.values()))
    except ParseError as e:
        raise FeedUnavailable(_parse_error_message(source, e, override, head)) from None
    except defusedxml.DTDForbidden:
        raise FeedUnavailable(f"{source}: refused: the XML contains a DTD (<!DOCTYPE ...>). DTDs can make a "
                              f"parser read local files or expand without limit; an order export needs none") from None
    except defusedxml.EntitiesForbidden:
        raise FeedUnavailable(f"{source}: refused: the XML declares entities (<!ENTITY ...>), "
                              f"which an order export never needs") from None
    except defusedxml.ExternalReferenceForbidden:
        raise FeedUnavailable(f"{source}: refused: the XML refers to an external file or URL") from None
    except (LookupError, UnicodeError) as e:
        raise FeedUnavailable(f"{source}: cannot decode the XML: {e}") from None
    except OSError as e:
        raise FeedUnavailable(f"{source}: cannot read: {e.strerror or e}") from None
    if counts["orders"] == 0 and root_name == ["html"]:
        raise FeedUnavailable(f"{source}: got a web page, not the order export (a login or error page?)")
    if counts["stray_ids"]:
        # MALL order ids outside any order element: the orders are there under another name.
        raise FeedUnavailable(f"{source}: found {fields.mall_order_id} outside any <{fields.order}> element; "
                              f"check [shop.fastcentrik.fields] order (the name of one order's element)")
    read.problems = [replace(p, message=f"{fields.order} #{p.line}: {p.message}") for p in read.problems]
    return ParsedFeed(read, counts["non_mall"])


def parse_orders_table(records: Records, *, source: str, fields: FastCentrikFields, tz: ZoneInfo) -> ParsedFeed:
    """The CSV or XLSX export (from ``csv_records`` / ``xlsx_records``): rows with an empty MALL
    order id are the shop's own orders and are skipped and counted; the rest is ``records_to_feed``."""
    want = fields.mall_order_id.strip().casefold()
    column = next((h for h in records.header if h.strip().lstrip("\ufeff").casefold() == want), None)
    skipped = 0

    def mall_rows():
        nonlocal skipped
        for line, row in records.rows:
            value = row.get(column) if column is not None else None
            if isinstance(value, str) and not value.strip():
                skipped += 1
                continue
            yield line, row

    read = records_to_feed(mall_rows(), columns=column_map(fields), tz=tz, source=source, header=records.header)
    return ParsedFeed(read, skipped)


def _values(order, wanted: dict[str, str], keys: dict[str, str | None]) -> dict[str, str]:
    """The wanted fields of one order element: attributes first, then direct child elements;
    the first non-empty value wins. Keys are the configured names; ``keys`` caches tag -> key."""
    out: dict[str, str] = {}
    for name, value in order.attrib.items():
        key = wanted.get(_local(name))
        if key is not None and value.strip() and key not in out:
            out[key] = value
    for child in order:
        tag = child.tag
        key = keys.get(tag, "")
        if key == "":
            key = keys[tag] = wanted.get(_local(tag))
        if key is not None and key not in out:
            text = (child.text or "").strip()
            if text:
                out[key] = text
    return out


def peek(stream: IO[bytes], n: int) -> bytes:
    """The first bytes, leaving the stream where it was (file and spooled streams are seekable)."""
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return peek(n)[:n]
    pos = stream.tell()
    head = stream.read(n)
    stream.seek(pos)
    return head


def _parse_error_message(source: str, e: ParseError, override: str | None, head: bytes) -> str:
    line, column = getattr(e, "position", (None, None))
    if isinstance(column, int):
        column += 1  # expat counts from 0, editors from 1
    reason = str(e).split(":")[0]
    msg = f"{source}: not well-formed XML at line {line}, column {column}: {reason}"
    if "invalid token" in reason and override is None and not _DECLARED_ENCODING.match(head):
        msg += (" (if the export is not UTF-8 and has no <?xml ... encoding=...?> declaration, "
                "set [shop.fastcentrik] encoding, e.g. \"cp1250\")")
    return msg
