"""``[shop.fastcentrik]`` and ``[shop.fastcentrik.fields]`` (keys in config.example.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from adapters.shared.sections import AdapterSection, FeedSection

MAX_XML_DEPTH = 64  # an order export nests about 4 deep


class FastCentrikFields(AdapterSection):
    """The element (XML) or column (CSV/XLSX) names of the export; they vary per shop."""

    order: str = "ORDER"
    mall_order_id: str = "MALL_ORDER_ID"
    shop_order_id: str = "ORDER_ID"
    status: str = "STATUS"
    tracking_number: str = "TRACKING_NUMBER"
    tracking_url: str = "TRACKING_URL"
    carrier: str = "CARRIER"
    delivered_at: str = "DELIVERED_AT"
    first_delivery_attempt: str = "FIRST_DELIVERY_ATTEMPT"
    location: str = "LOCATION"


class FastCentrikConfig(FeedSection):
    format: Literal["xml", "csv", "xlsx", "auto"] = "auto"
    max_xml_depth: int = Field(MAX_XML_DEPTH, ge=4, le=10_000)
    fields: FastCentrikFields = FastCentrikFields()
