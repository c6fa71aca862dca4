"""What a policy sees: plain values gathered by the service, so every rule is a pure function."""

from __future__ import annotations

from datetime import datetime

import msgspec

from domain.cases import (
    CaseType,
    Condition,
    Reason,
    Resolution,
    Responsibility,
    responsibility,
)
from domain.orders import Order


class ItemFacts(msgspec.Struct, frozen=True):
    line_id: str
    sku: str
    category: str | None
    quantity: int  # claimed on this case
    unit_price: int
    reason: Reason
    final_sale: bool
    purchased_quantity: int
    already_claimed_quantity: int  # by other cases of the order that are not cancelled/rejected
    note: str | None = None
    replacement_sku: str | None = None
    replacement_unit_price: int | None = None
    condition: Condition | None = None  # known once the item is received
    received_quantity: int | None = None  # known once the item is received
    graded_percent: int | None = None  # an agent's grading where the policy leaves it to them
    decided_responsibility: Responsibility | None = None  # an agent's, where the reason leaves it unknown

    @property
    def responsibility(self) -> Responsibility:
        return self.decided_responsibility or responsibility(self.reason)

    @property
    def settled_quantity(self) -> int:
        """What the money is computed on: what arrived once received, else what is claimed."""
        return self.quantity if self.received_quantity is None else self.received_quantity


class CustomerHistory(msgspec.Struct, frozen=True):
    items_purchased_90d: int = 0
    items_returned_90d: int = 0
    flagged: bool = False  # a case of this customer was flagged (e.g. a reused photo)


class Facts(msgspec.Struct, frozen=True):
    case_type: CaseType
    resolution: Resolution | None
    order: Order
    items: list[ItemFacts]
    now: datetime
    photo_count: int = 0
    customer: CustomerHistory = CustomerHistory()
    order_remaining_refundable: int = 0  # captured − refunded − promised by other open cases
    shipping_already_refunded: bool = False
    kept_by_agent: bool = False  # an agent let the customer keep the item (refund without return)

    @property
    def responsibilities(self) -> set[Responsibility]:
        return {item.responsibility for item in self.items}

    @property
    def merchant_responsible(self) -> bool:
        return Responsibility.MERCHANT in self.responsibilities

    @property
    def responsibility_undecided(self) -> bool:
        """No item is the merchant's and some item's responsibility is still unknown: who pays
        the shipping waits for an agent (the merchant pays it anyway once any item is theirs)."""
        return not self.merchant_responsible and Responsibility.UNKNOWN in self.responsibilities

    @property
    def customer_responsible(self) -> bool:
        """Every item comes back for a customer-responsible reason."""
        return self.responsibilities == {Responsibility.CUSTOMER}

    @property
    def came_back_empty(self) -> bool:
        """Received, and not one item in the parcel."""
        return all(item.received_quantity == 0 for item in self.items)

    @property
    def days_held(self) -> int:
        """Whole days since delivery (since purchase if it never arrived): windows and warranties."""
        return (self.now - (self.order.delivered_at or self.order.placed_at)).days
