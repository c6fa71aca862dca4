"""Order snapshots as the storefront sends them. The storefront owns the order; we keep the
latest snapshot and compute what can still be returned and refunded."""

from __future__ import annotations

from datetime import datetime

import msgspec

from domain.money import to_major


class Customer(msgspec.Struct, frozen=True):
    id: str
    email: str | None = None
    language: str | None = None  # BCP 47, for the customer's e-mail


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


class Address(msgspec.Struct, frozen=True):
    """A postal address (``country``: ISO 3166-1 alpha-2): the customer's, where a return label
    is from, or the merchant's, where it goes."""

    name: str
    street1: str
    city: str
    zip: str
    country: str
    street2: str | None = None
    state: str | None = None
    phone: str | None = None
    email: str | None = None


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
    shipping_address: Address | None = None  # the customer's: a return label's "from"

    def line(self, line_id: str) -> OrderLine | None:
        return next((line for line in self.lines if line.line_id == line_id), None)


class OrderHold(msgspec.Struct, frozen=True):
    """What rests on a stored order: the lines live cases claim, the money committed against its
    capture (the larger of what live cases promise and what its refunds have paid or may pay),
    and whether a live case refunds the original shipping."""

    claimed_lines: frozenset[str] = frozenset()
    committed_amount: int = 0
    shipping_refunded: bool = False


# What a claimed line's case items and money were computed from: all but the title.
_CLAIMED_LINE_FIELDS = ("sku", "unit_price", "quantity", "category", "final_sale")


def locked_changes(stored: Order, new: Order, hold: OrderHold) -> list[dict[str, str]]:
    """The changes from ``stored`` to ``new`` that cases or refunds rest on, each as
    ``{field, message}``; none means ``new`` may replace ``stored``.

    An order is held only by what is live on it: cases not cancelled or rejected (they release
    their lines and money) and refunds not failed or canceled. So an order whose cases were all
    released is as free as one that never had any, while a refund, once made, always counts: a
    case can only be cancelled or rejected before it refunds, so a refunded line stays claimed."""
    if not hold.claimed_lines and hold.committed_amount <= 0:
        return []
    locked: list[dict[str, str]] = []

    def lock(field: str, message: str) -> None:
        locked.append({"field": field, "message": message})

    if new.customer.id != stored.customer.id:
        lock("customer.id", f"the order's cases belong to customer '{stored.customer.id}'")
    if new.currency != stored.currency:
        lock("currency", f"its cases and refunds are in {stored.currency}")
    for field in ("gateway", "reference"):
        if getattr(new.payment, field) != getattr(stored.payment, field):
            lock(f"payment.{field}", "refunds go back to the original payment")
    captured = new.payment.captured_amount
    if captured < stored.payment.captured_amount and captured < hold.committed_amount:
        lock(
            "payment.captured_amount",
            f"cannot go below the {to_major(hold.committed_amount, stored.currency)} {stored.currency}"
            " that cases and refunds hold",
        )
    if hold.shipping_refunded and new.shipping_total != stored.shipping_total:
        lock("shipping_total", "a case refunds the original shipping")
    for line in stored.lines:
        if line.line_id not in hold.claimed_lines:
            continue
        index = next((i for i, other in enumerate(new.lines) if other.line_id == line.line_id), None)
        if index is None:
            lock("lines", f"line '{line.line_id}' is claimed by a case and cannot be removed")
            continue
        for field in _CLAIMED_LINE_FIELDS:
            if getattr(new.lines[index], field) != getattr(line, field):
                lock(f"lines[{index}].{field}", f"line '{line.line_id}' is claimed by a case; only its title may change")
    return locked
