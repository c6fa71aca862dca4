"""Order snapshots as the storefront sends them. The storefront owns the order; we keep the
latest snapshot and compute what can still be returned and refunded."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Customer(msgspec.Struct, frozen=True):
    id: str
    email: str | None = None


class OrderLine(msgspec.Struct, frozen=True):
    line_id: str
    sku: str
    title: str
    quantity: int
    unit_price: int  # minor units of the order's currency
    category: str | None = None
    final_sale: bool = False


class Payment(msgspec.Struct, frozen=True):
    gateway: str
    reference: str
    captured_amount: int


class Order(msgspec.Struct, frozen=True):
    merchant_id: str
    order_id: str
    currency: str
    placed_at: datetime
    delivered_at: datetime | None
    customer: Customer
    lines: list[OrderLine]
    shipping_total: int
    payment: Payment

    def line(self, line_id: str) -> OrderLine | None:
        return next((line for line in self.lines if line.line_id == line_id), None)
