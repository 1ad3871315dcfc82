"""Pydantic models of MALL's order JSON (snake_case, as on the wire).

Tolerant on purpose: MALL leaves out null fields, old and new responses differ (numbers vs strings for phone
and zip, ``status`` vs ``code`` in the consignment history), and it may add fields at any time. So:
a null field counts as omitted, almost everything is optional, and unknown fields are kept (``extra="allow"``)
rather than rejected. Only what the connector cannot work without is required (an order's ``id`` and
``status``; an item's ``id``, ``quantity`` and ``price``).

MALL's datetimes carry no zone; they are Prague local time, so they are parsed to aware datetimes in
``Europe/Prague`` and written back the same way. Money is ``Decimal``, ids are Python ints (they exceed 32 bits).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from connector.mall.statuses import Status, parse_status

__all__ = [
    "INT64_MAX",
    "PRAGUE",
    "MALL_DATETIME_FORMAT",
    "MALL_HISTORY_DATETIME_FORMAT",
    "parse_mall_datetime",
    "format_mall_datetime",
    "Address",
    "Item",
    "Branches",
    "UlozenkaStatus",
    "ConsignmentStatus",
    "Order",
    "BasicOrder",
    "Paging",
    "Stats",
    "StatusUpdate",
    "LabelRequest",
    "LabelOrder",
    "Labels",
    "Consignment",
    "MAX_PARCELS",
]

PRAGUE = ZoneInfo("Europe/Prague")
#: The ledger stores ids and counts as signed 64-bit integers: a bigger number from MALL is a bad answer.
INT64_MAX = 2**63 - 1
MALL_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MALL_HISTORY_DATETIME_FORMAT = "%d.%m.%Y %H:%M:%S"
_EMPTY_DATES = {"", "0000-00-00", "0000-00-00 00:00:00", "00.00.0000 00:00:00"}


def parse_mall_datetime(value: Any) -> datetime | None:
    """A MALL timestamp as an aware datetime in Europe/Prague.

    Accepts ``YYYY-MM-DD HH:MM:SS`` (the norm), ``DD.MM.YYYY HH:MM:SS`` (the Uloženka/consignment history) and
    ISO 8601 with ``T`` or an offset. A naive value is Prague local time; an aware one is converted to Prague.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip()
        if text in _EMPTY_DATES:
            return None
        dt = None
        for fmt in (MALL_DATETIME_FORMAT, MALL_HISTORY_DATETIME_FORMAT, "%d.%m.%Y %H:%M", "%Y-%m-%d %H:%M"):
            try:
                dt = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        if dt is None:
            try:
                dt = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{value!r} is not a MALL datetime (YYYY-MM-DD HH:MM:SS)") from None
    else:
        raise ValueError(f"{value!r} is not a MALL datetime")
    if dt.tzinfo is None:
        return dt.replace(tzinfo=PRAGUE)
    return dt.astimezone(PRAGUE)


def format_mall_datetime(value: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in Prague local time, as MALL expects. Naive values are refused: their zone is a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a datetime sent to MALL must be timezone-aware")
    return value.astimezone(PRAGUE).strftime(MALL_DATETIME_FORMAT)


def _parse_date(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text in _EMPTY_DATES:
            return None
        if len(text) > 10:  # "2022-08-11 00:00:00": keep the day
            return parse_mall_datetime(text).date()
        return text
    if isinstance(value, datetime):
        return value.date()
    return value


def _number_to_str(value: Any) -> Any:
    """Old examples send phone/zip/ids as JSON numbers; real responses as strings. Keep them as text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    return value


#: Numbers from MALL must fit the ledger: ids positive 64-bit, other integers signed 64-bit, money finite and sane.
MallId = Annotated[int, Field(ge=1, le=INT64_MAX)]
Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
Money = Annotated[Decimal, Field(ge=-(10**12), le=10**12, allow_inf_nan=False)]

MallDateTime = Annotated[datetime, BeforeValidator(parse_mall_datetime)]
MallDate = Annotated[date, BeforeValidator(_parse_date)]
Text = Annotated[str, BeforeValidator(_number_to_str)]


class _MallModel(BaseModel):
    """Shared rules: keep unknown fields, treat null as omitted."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


def _status(value: Any) -> Any:
    if isinstance(value, str):
        return parse_status(value)
    return value


MallStatus = Annotated[Status, BeforeValidator(_status)]


class Address(_MallModel):
    """The customer's address (with pickup-point delivery it is still the customer's, not the branch's)."""

    customer_id: Int64 | None = None
    name: str | None = None
    company: str | None = None
    phone: Text | None = None
    email: str | None = None
    street: str | None = None
    city: str | None = None
    zip: Text | None = None
    country: str | None = None


class Item(_MallModel):
    """One order line. ``id`` is the partner's product/variant id (text); ``price`` is per unit."""

    id: Text
    article_id: Int64 | None = None
    title: str | None = None
    quantity: Annotated[int, Field(ge=0, le=1_000_000)]
    price: Money
    vat: Money | None = None
    commission: Money | None = None
    purchase_price: Money | None = None
    serial_numbers: list[Text] = Field(default_factory=list)

    @property
    def line_total(self) -> Decimal:
        return self.price * self.quantity


class Branches(_MallModel):
    """Pickup-point assignment. The change time is ``last_change`` (PHP3/5 entity) or ``branch_change_time``."""

    branch_id: Int64 | None = None
    secondary_branch_id: Int64 | None = None
    overridden: bool = False
    last_change: MallDateTime | None = None

    @model_validator(mode="before")
    @classmethod
    def _change_time_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("last_change") is None and data.get("branch_change_time") is not None:
            data = {**data, "last_change": data["branch_change_time"]}
        return data


class UlozenkaStatus(_MallModel):
    """An Uloženka consignment event; ``date`` comes as ``DD.MM.YYYY HH:MM:SS``."""

    id: Int64 | None = None
    name: str | None = None
    date: MallDateTime | None = None


class ConsignmentStatus(_MallModel):
    """A MALL Delivery consignment event. MALL's docs say ``code``, the PHP client reads ``status``: take either."""

    status: str | None = None
    date: MallDateTime | None = None
    flags: list[str] = Field(default_factory=list)
    tracking_number: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _code_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("status") is None and data.get("code") is not None:
            data = {**data, "status": data["code"]}
        return data


class _OrderCommon(_MallModel):
    """Fields shared by the detail and the basic list entry, including when the order entered each status."""

    id: MallId
    status: MallStatus
    confirmed: bool = False
    purchase_id: Int64 | None = None
    external_id: Text | None = None
    source: str | None = None
    cod: Money | None = None
    payment_type: str | None = None
    ship_date: MallDate | None = None
    tracking_number: Text | None = None
    tracking_url: str | None = None
    delivered_at: MallDateTime | None = None
    test: bool = False
    mdp: bool = False
    mdp_classic: bool = False
    mdp_spectrum: bool = False

    blocked: MallDateTime | None = None
    open: MallDateTime | None = None
    shipping: MallDateTime | None = None
    shipped: MallDateTime | None = None
    delivered: MallDateTime | None = None
    returned: MallDateTime | None = None
    cancelled: MallDateTime | None = None
    lost: MallDateTime | None = None

    def entered_at(self, status: Status) -> datetime | None:
        """When the order entered ``status`` (MALL's per-status timestamp), if MALL said."""
        return getattr(self, Status(status).value)


class BasicOrder(_OrderCommon):
    """An entry of a list fetched with ``filter=basic``: the customer's name is a plain ``customer`` string."""

    customer_id: Int64 | None = None
    customer: str | None = None

    @property
    def customer_name(self) -> str | None:
        return self.customer


class Order(_OrderCommon):
    """The full order (``GET /v1/orders/{id}``)."""

    external_order_id: Int64 | None = None
    currency: str | None = None
    delivery_price: Money | None = None
    cod_price: Money | None = None
    discount: Money | None = None
    delivery_method: Text | None = None
    delivery_method_id: Int64 | None = None
    branch_id: Int64 | None = None
    branches: Branches | None = None
    delivery_date: MallDate | None = None
    first_delivery_attempt: MallDateTime | None = None
    ready_to_return: bool = False
    address: Address | None = None
    items: list[Item] = Field(default_factory=list)
    ulozenka_status_history: list[UlozenkaStatus] = Field(default_factory=list)
    consignment_status_history: list[ConsignmentStatus] = Field(default_factory=list)

    @property
    def customer_name(self) -> str | None:
        return self.address.name if self.address else None

    @property
    def items_total(self) -> Decimal:
        """Sum of ``price * quantity`` over the items."""
        return sum((item.line_total for item in self.items), Decimal(0))

    @property
    def total(self) -> Decimal:
        """What the customer pays: items + ``delivery_price`` + ``cod_price`` - ``discount`` (missing = 0).

        The COD fee is included because the customer pays it: MALL's own example has 1799 (item) + 29
        (delivery) + 39 (COD fee) = 1867 = ``cod``. Prices are as MALL sends them (retail, most likely with VAT).
        """
        return (
            self.items_total
            + (self.delivery_price or 0)
            + (self.cod_price or 0)
            - (self.discount or 0)
        )


class Paging(_MallModel):
    """``{total, pages, size, page}``; any of them may be missing (``total`` often is)."""

    total: Count | None = None
    pages: Count | None = None
    size: Count | None = None
    page: Count | None = None


class Stats(_MallModel):
    """Orders per status over the last N days (``GET /v1/orders/stats``)."""

    blocked: Count = 0
    open: Count = 0
    shipping: Count = 0
    shipped: Count = 0
    delivered: Count = 0
    returned: Count = 0
    cancelled: Count = 0
    lost: Count = 0


class StatusUpdate(BaseModel):
    """The body of ``PUT /v1/orders/{id}``: confirm and/or change status, with tracking or delivery times.

    Unknown fields are refused here (unlike the response models): a typo must not silently drop data we
    meant to send. Datetimes given as text are MALL format in Prague time; datetime objects must be aware.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    confirmed: bool | None = None
    status: MallStatus | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    delivered_at: datetime | None = None
    first_delivery_attempt: datetime | None = None

    @field_validator("delivered_at", "first_delivery_attempt", mode="before")
    @classmethod
    def _aware_datetime(cls, value: Any) -> Any:
        if isinstance(value, datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError("must be timezone-aware (MALL expects Prague time; say which zone you mean)")
            return value
        return parse_mall_datetime(value)

    def to_body(self) -> dict[str, Any]:
        """The JSON body: fields left as None are not sent; datetimes as ``YYYY-MM-DD HH:MM:SS`` Prague time."""
        body: dict[str, Any] = {}
        for name in ("confirmed", "status", "tracking_number", "tracking_url", "delivered_at", "first_delivery_attempt"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, datetime):
                value = format_mall_datetime(value)
            elif isinstance(value, Status):
                value = value.value
            body[name] = value
        return body


# -- MALL Delivery labels (mall-api.md §2.7) --------------------------------------------------------------------

MAX_PARCELS = 100  # parcels (labels) per order, MALL's limit
#: A barcode as MALL prints it; bounded so a hostile answer cannot put megabytes into the ledger.
Barcode = Annotated[str, BeforeValidator(_number_to_str), Field(min_length=1, max_length=64)]


class LabelRequest(BaseModel):
    """One entry of ``POST /v1/orders/labels``' ``labels`` list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: MallId
    parcel_count: Annotated[int, Field(ge=1, le=MAX_PARCELS)] = 1


class LabelOrder(_MallModel):
    """The barcodes MALL made for one order (one per parcel)."""

    order_id: MallId
    barcodes: Annotated[list[Barcode], Field(max_length=MAX_PARCELS)] = Field(default_factory=list)


class Labels(_MallModel):
    """The answer of ``POST /v1/orders/labels``: barcodes per order and the label file (``labels_raw``, base64)."""

    orders: list[LabelOrder] = Field(default_factory=list)
    labels_raw: str

    @field_validator("labels_raw")
    @classmethod
    def _base64(cls, v: str) -> str:
        import base64
        import binascii

        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("labels_raw is not base64") from None
        return v

    def content(self) -> bytes:
        """The label file (PDF or ZPL) as bytes."""
        import base64

        return base64.b64decode(self.labels_raw)

    def barcodes_of(self, order_id: int) -> list[str]:
        return next((o.barcodes for o in self.orders if o.order_id == order_id), [])


class Consignment(_MallModel):
    """``GET /v1/orders/{id}/consignments``: the labels MALL stored for an order (``labels_raw`` base64).

    MALL's docs list ``{id, order_id, labels_raw, labels_type, parcel_count, type}``; ``barcodes`` is read when
    present (the sandbox sends it; whether MALL does is not documented)."""

    id: Text | None = None
    order_id: MallId | None = None
    labels_raw: str | None = None
    labels_type: str | None = None
    parcel_count: Annotated[int, Field(ge=0, le=MAX_PARCELS)] | None = None
    type: str | None = None
    barcodes: Annotated[list[Barcode], Field(max_length=MAX_PARCELS)] = Field(default_factory=list)
