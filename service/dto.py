"""The API's request and response bodies. Separate from the domain's types so the domain can
change without changing the contract. The frozen domain values ``Decision`` and ``CaseMoney``
already have the contract's exact shape, so views embed them rather than copy them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from domain.cases import CaseState, CaseType, Condition, Reason, Resolution
from domain.decision import CaseMoney, Decision

Id = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Text = Annotated[str, Meta(max_length=4000)]
ShortText = Annotated[str, Meta(min_length=1, max_length=200)]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
Amount = Annotated[int, Meta(ge=0, le=10**13)]
Quantity = Annotated[int, Meta(ge=1, le=100_000)]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies refuse unknown fields: a typo should fail loudly, not be ignored."""


# --------------------------------------------------------------------------- orders


class CustomerIn(Body):
    id: Id
    email: Annotated[str, Meta(max_length=320)] | None = None


class OrderLineIn(Body):
    line_id: Id
    sku: ShortText
    title: Annotated[str, Meta(max_length=500)]
    quantity: Quantity
    unit_price: Amount
    category: ShortText | None = None
    final_sale: bool = False


class PaymentIn(Body):
    gateway: ShortText
    reference: ShortText
    captured_amount: Amount


class OrderIn(Body):
    currency: Currency
    placed_at: datetime
    customer: CustomerIn
    lines: Annotated[list[OrderLineIn], Meta(min_length=1, max_length=500)]
    payment: PaymentIn
    delivered_at: datetime | None = None
    shipping_total: Amount = 0


class OrderLineView(msgspec.Struct):
    line_id: str
    sku: str
    title: str
    quantity: int
    unit_price: int
    category: str | None
    final_sale: bool
    returnable_quantity: int


class OrderView(msgspec.Struct):
    order_id: str
    currency: str
    placed_at: datetime
    delivered_at: datetime | None
    customer: CustomerIn
    lines: list[OrderLineView]
    shipping_total: int
    payment: PaymentIn
    refundable_amount: int


# --------------------------------------------------------------------------- cases


class CaseItemIn(Body):
    line_id: Id
    quantity: Quantity
    reason: Reason
    note: Text | None = None
    replacement_sku: ShortText | None = None
    replacement_unit_price: Amount | None = None


class CaseIn(Body):
    order_id: Id
    type: CaseType
    items: Annotated[list[CaseItemIn], Meta(min_length=1, max_length=100)]
    resolution: Resolution | None = None
    customer_note: Text | None = None
    issue_description: Text | None = None


class CaseItemView(msgspec.Struct):
    line_id: str
    sku: str
    quantity: int
    unit_price: int
    reason: Reason
    responsibility: str
    note: str | None
    replacement_sku: str | None
    replacement_unit_price: int | None
    received_quantity: int | None
    condition: Condition | None
    graded_percent: int | None


class ShipmentView(msgspec.Struct):
    direction: str
    carrier: str
    tracking_number: str
    at: datetime


class RefundView(msgspec.Struct):
    id: str
    case_id: str
    order_id: str
    amount: int
    currency: str
    status: str
    gateway: str
    gateway_refund_id: str | None
    failure_reason: str | None
    created_at: datetime
    settled_at: datetime | None


class PhotoView(msgspec.Struct):
    id: str
    case_id: str
    content_type: str
    width: int
    height: int
    sha256: str
    created_at: datetime
    url: str
    thumbnail_url: str
    matches_case_id: str | None = None


class CaseView(msgspec.Struct):
    id: str
    order_id: str
    customer_id: str
    type: CaseType
    state: CaseState
    items: list[CaseItemView]
    resolution: Resolution | None
    decision: Decision
    money: CaseMoney
    refunds: list[RefundView]
    photos: list[PhotoView]
    shipments: list[ShipmentView]
    version: int
    created_at: datetime
    updated_at: datetime
    sla_due_at: datetime | None
    customer_note: str | None
    issue_description: str | None
    assignee: str | None
    flags: list[str]
    allowed_actions: list[str]


class CaseList(msgspec.Struct):
    items: list[CaseView]
    next_cursor: str | None


class QuoteView(msgspec.Struct):
    """What ``POST /v1/cases/preview`` answers: the decision and money a case would get."""

    decision: Decision
    money: CaseMoney


class ShipmentIn(Body):
    carrier: ShortText
    tracking_number: ShortText


# --------------------------------------------------------------------------- agent actions


class OverrideIn(Body):
    rule: ShortText
    reason: Annotated[str, Meta(min_length=3, max_length=2000)]


class ApproveIn(Body):
    note: Text | None = None
    overrides: Annotated[list[OverrideIn], Meta(max_length=20)] = []


class RejectIn(Body):
    reason: Annotated[str, Meta(min_length=1, max_length=2000)]
    note: Text | None = None


class RequestInfoIn(Body):
    message: Annotated[str, Meta(min_length=1, max_length=4000)]


class ProvideInfoIn(Body):
    message: Annotated[str, Meta(min_length=1, max_length=4000)]


class ReceivedItemIn(Body):
    line_id: Id
    quantity: Annotated[int, Meta(ge=0, le=100_000)]
    condition: Condition
    # the agent's grading, where the policy leaves it to them (by default: damaged items)
    value_percent: Annotated[int, Meta(ge=0, le=100)] | None = None


class ReceiveIn(Body):
    items: Annotated[list[ReceivedItemIn], Meta(min_length=1, max_length=500)]
    note: Text | None = None


class EventView(msgspec.Struct):
    type: str
    actor_id: str
    actor_role: str
    at: datetime
    from_state: str | None
    to_state: str | None
    data: dict


class EventList(msgspec.Struct):
    items: list[EventView]
    next_cursor: str | None = None


class PolicyView(msgspec.Struct):
    version: int
    document: dict
    is_default: bool
