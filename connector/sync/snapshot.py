"""MALL's order as the ledger keeps it: the values stored from a read, and the order read back.

Shared by the outbound and inbound engines and the exports, so neither engine imports the other.
"""

from __future__ import annotations

from connector.ledger.rows import utcnow
from connector.mall.models import Order
from connector.sync.common import mall_time


def branch_of(order: Order) -> int | None:
    return order.branch_id if order.branch_id is not None else (order.branches.branch_id if order.branches else None)


def snapshot_values(order: Order) -> dict:
    """The orders-row columns for what MALL says about an order now."""
    address = order.address
    return dict(
        mall_status=order.status.value, mall_confirmed=order.confirmed, mall_read_at=utcnow(),
        mdp=order.mdp, test=order.test, purchase_id=order.purchase_id,
        customer=(address.name if address else None), delivery_method=order.delivery_method,
        branch_id=branch_of(order), ship_date=order.ship_date.isoformat() if order.ship_date else None,
        mall_delivered_at=mall_time(order.delivered_at),
        snapshot=order.model_dump_json(exclude_none=True),
    )


def store_snapshot(ledger, c, order: Order) -> None:
    """Record what MALL says about an order (inside the caller's write transaction)."""
    ledger.orders.ensure(c, order.id, **snapshot_values(order))


def order_from_snapshot(snapshot: str) -> Order:
    return Order.model_validate_json(snapshot)
