"""Query parameters of MALL's order lists: paging, filter=basic, test=1, field filters and _sort.

Field filters follow mall-api.md §2.1: ``field=[modifier:]value`` with modifiers eq (default), neq/ne,
gt, ge, lt, le, in, nin, bt, nbt (comma-separated values) and the special value ``$null``. Both ``neq``
(Omnicado docs) and ``ne`` (PHP client) are accepted because the sources disagree. Unknown fields are
refused (400) so a typo in a partner's filter shows up in the sandbox rather than as an empty list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PAGE_SIZE = 100
#: The largest page the sandbox serves; a bigger page_size is capped to it, as MALL does (the recording answered
#: page_size=1000 with 10 orders a page and ``size: 10``). ``mall-connector sandbox --max-page-size`` changes it.
MAX_PAGE_SIZE = 10
RESERVED = frozenset({"client_id", "page", "page_size", "filter", "test", "_sort"})
MODIFIERS = frozenset({"eq", "neq", "ne", "gt", "ge", "lt", "le", "in", "nin", "bt", "nbt"})
NULL = "$null"

BOOL_FIELDS = frozenset({"confirmed", "test", "mdp", "mdp_classic", "mdp_spectrum", "ready_to_return"})
INT_FIELDS = frozenset({"id", "purchase_id", "customer_id", "external_order_id", "delivery_method_id", "branch_id"})
NUMBER_FIELDS = frozenset({"cod", "cod_price", "delivery_price", "discount"})
STR_FIELDS = frozenset({
    "status", "customer", "payment_type", "currency", "delivery_method", "ship_date", "delivery_date",
    "delivered_at", "first_delivery_attempt", "tracking_number", "tracking_url", "external_id",
    "blocked", "open", "shipping", "shipped", "delivered", "returned", "cancelled", "lost",
})
FIELDS = BOOL_FIELDS | INT_FIELDS | NUMBER_FIELDS | STR_FIELDS


class QueryError(ValueError):
    """A query parameter MALL would refuse (answered 400)."""


@dataclass(frozen=True)
class Filter:
    field: str
    modifier: str
    values: tuple[Any, ...]

    def matches(self, row: dict) -> bool:
        value = row.get(self.field)
        m, vs = self.modifier, self.values
        if m == "eq":
            return value == vs[0]
        if m in ("neq", "ne"):
            return value != vs[0]
        if m == "in":
            return value in vs
        if m == "nin":
            return value not in vs
        if value is None:
            return False
        if m == "bt":
            return vs[0] <= value <= vs[1]
        if m == "nbt":
            return not vs[0] <= value <= vs[1]
        return {"gt": value > vs[0], "ge": value >= vs[0], "lt": value < vs[0], "le": value <= vs[0]}[m]


@dataclass(frozen=True)
class ListQuery:
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    basic: bool = False
    include_test: bool = False
    filters: tuple[Filter, ...] = ()
    sort: tuple[tuple[str, bool], ...] = field(default=())  # (field, descending)

    @property
    def filters_status(self) -> bool:
        """MALL leaves blocked orders out of /v1/orders unless the query filters on status."""
        return any(f.field == "status" for f in self.filters)

    def select(self, rows: list[dict]) -> list[dict]:
        """Rows that pass the test flag and every filter, in the requested order (default id ascending)."""
        out = [r for r in rows if (self.include_test or not r.get("test")) and all(f.matches(r) for f in self.filters)]
        out.sort(key=lambda r: r["id"])
        for name, desc in reversed(self.sort):
            present = sorted((r for r in out if r.get(name) is not None), key=lambda r: r[name], reverse=desc)
            out = present + [r for r in out if r.get(name) is None]
        return out

    def page_of(self, rows: list[dict]) -> tuple[list[dict], dict]:
        """(this page's rows, paging). ``pages`` is at least 1 so "loop until page == pages" ends; ``size`` is the
        number of rows on this page (MALL's meaning: it does not echo the page_size asked for)."""
        total = len(rows)
        pages = max(1, math.ceil(total / self.page_size))
        start = (self.page - 1) * self.page_size
        page = rows[start:start + self.page_size]
        return page, {"total": total, "pages": pages, "size": len(page), "page": self.page}


def _bool(text: str, name: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false"):
        return False
    raise QueryError(f"{name} must be true, false, 1 or 0")


def _int(text: str, name: str, lo: int, hi: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise QueryError(f"{name} must be an integer") from None
    if value < lo or (hi is not None and value > hi):
        raise QueryError(f"{name} must be between {lo} and {hi}" if hi else f"{name} must be at least {lo}")
    return value


def _value(name: str, text: str) -> Any:
    if text == NULL:
        return None
    try:
        if name in BOOL_FIELDS:
            return _bool(text, name)
        if name in INT_FIELDS:
            return int(text)
        if name in NUMBER_FIELDS:
            return float(text)
    except ValueError:
        raise QueryError(f"filter {name}: {text!r} is not a valid value") from None
    return text


def parse_filter(name: str, raw: str) -> Filter:
    if name not in FIELDS:
        raise QueryError(f"unknown filter field {name!r}")
    modifier, sep, rest = raw.partition(":")
    if sep and modifier in MODIFIERS:
        raw = rest
    else:
        modifier = "eq"
    texts = raw.split(",") if modifier in ("in", "nin", "bt", "nbt") else [raw]
    if modifier in ("bt", "nbt") and len(texts) != 2:
        raise QueryError(f"filter {name}: {modifier} needs two comma-separated values")
    values = tuple(_value(name, t) for t in texts)
    if None in values and modifier not in ("eq", "neq", "ne"):
        raise QueryError(f"filter {name}: $null works only with eq and neq")
    return Filter(name, modifier, values)


def parse_list_query(query: dict[str, str], max_page_size: int = MAX_PAGE_SIZE) -> ListQuery:
    """A ListQuery from the request's query parameters; QueryError for anything MALL would refuse.

    A ``page_size`` above ``max_page_size`` is capped to it, not refused (as MALL does)."""
    filt = query.get("filter", "ids")
    if filt not in ("ids", "basic"):
        raise QueryError("filter must be basic or ids")
    sort = []
    for part in filter(None, query.get("_sort", "").split(",")):
        name, _, direction = part.partition(":")
        if name not in FIELDS or direction not in ("", "asc", "desc"):
            raise QueryError(f"_sort: cannot sort by {part!r}")
        sort.append((name, direction == "desc"))
    return ListQuery(
        page=_int(query.get("page", "1"), "page", 1),
        page_size=min(_int(query.get("page_size", str(DEFAULT_PAGE_SIZE)), "page_size", 1), max_page_size),
        basic=filt == "basic",
        include_test=_bool(query["test"], "test") if "test" in query else False,
        filters=tuple(parse_filter(k, v) for k, v in query.items() if k not in RESERVED),
        sort=tuple(sort),
    )
