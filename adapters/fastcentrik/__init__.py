"""FastCentrik adapter: its XML (or CSV/XLSX) order export in, outbox files and instructions out."""

from adapters.fastcentrik.adapter import FastCentrikAdapter, detect_format
from adapters.fastcentrik.feed import ParsedFeed, column_map, parse_orders_table, parse_orders_xml

__all__ = ["FastCentrikAdapter", "detect_format", "ParsedFeed", "column_map", "parse_orders_table", "parse_orders_xml"]
