"""mall-connector: keeps e-shop order statuses and MALL Marketplace order statuses in step."""

__version__ = "0.1.0"
