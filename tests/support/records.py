"""Sample records the contract suite hands to every adapter."""

from __future__ import annotations

from adapters.base import MallChange, NewOrder, NewOrderItem


def new_order(oid: int) -> NewOrder:
    return NewOrder(
        mall_order_id=oid, purchase_id=oid * 10, status="open", shop_status="new", created_at="2026-11-30 10:00:00",
        ship_date=None, delivery_date=None, customer_name="Jana Nováková", company="", street="Dlouhá 1",
        city="Praha", zip="11000", country="CZ", phone="+420 777 123 456", email="jana@example.cz",
        delivery_method="PPL", branch_id=None, payment_type="card", cod=0.0, delivery_price=99.0, currency="CZK",
        items=(NewOrderItem(item_id="SKU-1", article_id=5, title="Hrnek", quantity=2, price=149.0, vat=21.0),),
    )


def cancelled(oid: int) -> MallChange:
    return MallChange(mall_order_id=oid, mall_status="cancelled", shop_status="cancelled",
                      changed_at="2026-11-30 11:00:00", branch_id=None, note="cancelled on MALL")
