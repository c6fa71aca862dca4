"""The API's request and response bodies. Separate from the domain's types so the domain can
change without changing the contract. The frozen domain values ``Decision`` and ``CaseMoney``
already have the contract's exact shape, so views embed them rather than copy them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from domain.cases import (
    CaseState,
    CaseType,
    Condition,
    Diagnosis,
    Note,
    Reason,
    Resolution,
    Survey,
)
from domain.decision import CaseMoney, Decision
from domain.refunds import RefundStatus

# An id: letters, digits and ``_ . : -``, not only dots (``.`` and ``..`` are path segments).
# ``(?!\n)``: Python's ``$`` also matches before a final line feed. Unambiguous, so linear
# time. Ids in paths obey the same rule (``service.api.http.PathId``).
ID_PATTERN = r"^\.*[A-Za-z0-9_:\-][A-Za-z0-9_.:\-]*$(?!\n)"
ID_MAX_LENGTH = 128
Id = Annotated[str, Meta(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
# A moment: RFC 3339 with a time zone; one without is refused (it names no moment)
Timestamp = Annotated[datetime, Meta(tz=True)]
Text = Annotated[str, Meta(max_length=4000)]
ShortText = Annotated[str, Meta(min_length=1, max_length=200)]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$(?!\n)")]
Amount = Annotated[int, Meta(ge=0, le=10**13)]
Quantity = Annotated[int, Meta(ge=1, le=100_000)]
# One address. Every pattern is also valid ECMA-262 with the ``u`` flag (clients validate with
# it), where ``\"`` is an error: a quote needs no escape.
Email = Annotated[str, Meta(max_length=320, pattern=r'^[^@\s<>,;"]+@[^@\s<>,;"]+\.[^@\s<>,;"]+$(?!\n)')]


def time_zone_errors(**moments: datetime | None) -> list[dict[str, str]]:
    """``Timestamp``'s rule where msgspec's ``Meta`` does not reach (Litestar drops it from
    query parameters): one error per moment given without a time zone, naming it."""
    return [
        {"field": name, "message": "needs a time zone (RFC 3339, e.g. 2026-01-31T12:00:00Z)"}
        for name, moment in moments.items()
        if moment is not None and moment.tzinfo is None
    ]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies refuse unknown fields: a typo should fail loudly, not be ignored."""


# --------------------------------------------------------------------------- orders


class CustomerIn(Body):
    id: Id
    # not checked as an address (a mail that cannot go is recorded for the agents), but one line
    email: Annotated[str, Meta(max_length=320, pattern=r"^[^\x00-\x1f\x7f]*$(?!\n)")] | None = None
    # the customer's e-mail language (``en``, ``zh-CN``); else the merchant's default
    language: Annotated[str, Meta(max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$(?!\n)")] | None = None


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
    # the gateway's id of the payment, exactly: no space, control character or line break (a
    # payment is owned by its reference, so "pi_X " would name another payment than "pi_X")
    reference: Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\s\x00-\x1f\x7f]+$(?!\n)")]
    captured_amount: Amount


AddressLine = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$(?!\n)")]


class AddressIn(Body):
    """A postal address as carriers take it; ``country`` is ISO 3166-1 alpha-2 (``DE``, ``US``)."""

    name: AddressLine
    street1: AddressLine
    city: AddressLine
    zip: Annotated[str, Meta(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9 \-]+$(?!\n)")]
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$(?!\n)")]
    street2: AddressLine | None = None
    state: Annotated[str, Meta(min_length=1, max_length=50, pattern=r"^[^\x00-\x1f\x7f]+$(?!\n)")] | None = None
    phone: Annotated[str, Meta(min_length=3, max_length=30, pattern=r"^[0-9+()./ \-]+$(?!\n)")] | None = None
    email: Email | None = None


class OrderIn(Body):
    currency: Currency
    placed_at: Timestamp
    customer: CustomerIn
    lines: Annotated[list[OrderLineIn], Meta(min_length=1, max_length=500)]
    payment: PaymentIn
    delivered_at: Timestamp | None = None
    shipping_total: Amount = 0
    shipping_address: AddressIn | None = None  # the customer's: where a return label is from


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
    shipping_address: AddressIn | None = None


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
    status: RefundStatus
    gateway: str
    gateway_refund_id: str | None
    failure_reason: str | None
    created_at: datetime
    settled_at: datetime | None
    retried_by: str | None  # the refund that paid this failed one again (a retry is single-use)


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


class InfoRequestView(msgspec.Struct):
    """The agent's last request for information, for the customer to answer (``info``)."""

    message: str
    at: datetime


class RejectionView(msgspec.Struct):
    """Why the case was rejected; written for the customer."""

    reason: str
    note: str | None
    at: datetime


class MoneyOverrideView(msgspec.Struct):
    """The agent's figure for what the case pays back, in place of the policy's, and why."""

    refund_total: int
    reason: str
    by_role: str
    at: datetime


class TimelineEntryView(msgspec.Struct):
    """One step of a case as its customer may read it: what happened, when, and the state it left
    the case in. No actor and no data: agents' words and ids stay out."""

    event: str
    at: datetime
    state: CaseState | None


class LabelHoldView(msgspec.Struct):
    """Why the label was not bought unattended: its cheapest acceptable rate (``carrier``,
    ``service``, ``amount`` in minor units of ``currency``) is over ``ceiling`` (minor units of the
    same ``currency``): ``over_ceiling``, or ``other_currency`` when the rate is not in the case's
    currency and the merchant's ceiling does not price it. ``approved_by``: the agent who had it
    bought anyway (null while it waits, or when declined)."""

    reason: Literal["over_ceiling", "other_currency"]
    carrier: str
    service: str
    amount: int
    currency: str
    ceiling: int
    approved_by: str | None
    approved_at: datetime | None


class LabelView(msgspec.Struct):
    """The case's return label: ``pending`` (being bought), ``held`` (its rate is over the
    merchant's ceiling: it waits for an agent's ``label/buy`` or ``label/decline``), ``bought``
    (download it from ``/label``), ``failed`` (the carrier refused: the customer ships it
    themselves), ``cancelled`` (not needed before it was bought, or declined), ``void_requested``
    or ``voided``. ``hold`` (the agent's view only) says why it was held."""

    status: Literal["pending", "held", "bought", "failed", "cancelled", "void_requested", "voided"]
    carrier: str | None
    service: str | None
    tracking_code: str | None
    amount: int | None  # what it cost, minor units of ``currency``
    currency: str | None
    created_at: datetime
    hold: LabelHoldView | None = None


class CaseView(msgspec.Struct):
    """One case. The storefront's view leaves out what is for agents only: internal ``notes``,
    the ``assignee``, ``flags`` and which other case a photo matched (empty or null there)."""

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
    notes: list[Note]
    diagnosis: Diagnosis | None
    survey: Survey | None
    # the POST endpoints this caller may use on the case now, as path suffixes under
    # /v1/cases/{id}/ (storefront) or /admin/v1/cases/{id}/ (agent)
    allowed_actions: list[str]
    info_request: InfoRequestView | None = None
    rejection: RejectionView | None = None
    money_override: MoneyOverrideView | None = None
    # the customer's timeline: filled on GET /v1/cases/{id} (one case read through the storefront
    # API), empty elsewhere, so lists and actions cost no extra query
    timeline: list[TimelineEntryView] = []
    # where the item goes back (the merchant's mail settings), on that same read while the
    # customer is to send it (``return-shipment`` allowed); null when the merchant set none
    return_address: str | None = None
    label: LabelView | None = None
    delivered_at: datetime | None = None  # the carrier's delivery scan: the parcel is at the warehouse


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


class MoneyOverrideIn(Body):
    """An agent's figure for what the case pays back, in place of the policy's."""

    refund_total: Amount
    reason: Annotated[str, Meta(min_length=3, max_length=2000)]


class ResponsibilityIn(Body):
    """An agent's decision on an item whose reason (``other``) leaves responsibility unknown."""

    line_id: Id
    responsibility: Literal["customer", "merchant"]


class ApproveIn(Body):
    note: Text | None = None
    overrides: Annotated[list[OverrideIn], Meta(max_length=20)] = []
    money_override: MoneyOverrideIn | None = None
    # who is responsible for each ``other`` item; an undecided one is the merchant's on approval
    responsibility: Annotated[list[ResponsibilityIn], Meta(max_length=500)] = []
    # refund without return (returns only): the customer keeps the item and is paid back now
    keep_item: bool = False


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


class AssignIn(Body):
    assignee: Annotated[str, Meta(min_length=1, max_length=200)] | None  # null unassigns


class NoteIn(Body):
    text: Annotated[str, Meta(min_length=1, max_length=4000)]


class CloseIn(Body):
    note: Text | None = None


class DiagnoseIn(Body):
    finding: Annotated[str, Meta(min_length=1, max_length=4000)]
    in_warranty: bool
    quote_amount: Annotated[int, Meta(ge=1, le=10**13)] | None = None  # required out of warranty


class CompleteRepairIn(Body):
    note: Annotated[str, Meta(min_length=1, max_length=4000)]


class SurveyIn(Body):
    rating: Annotated[int, Meta(ge=1, le=5)]
    comment: Text | None = None


class StoreCreditGrantView(msgspec.Struct):
    id: str
    case_id: str
    amount: int
    bonus: int  # included in amount
    currency: str
    created_at: datetime


class StoreCreditBalance(msgspec.Struct):
    currency: str
    amount: int


class StoreCreditView(msgspec.Struct):
    customer_id: str
    balances: list[StoreCreditBalance]
    grants: list[StoreCreditGrantView]


class MailSettingsIn(Body):
    """The merchant's customer e-mail: who it is from (by name), where replies go, the language of
    customers who gave none, and the address items go back to (in the approval's instructions)."""

    sender_name: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$(?!\n)")] | None = None
    reply_to: Email | None = None
    default_language: Literal["en", "zh-CN"] = "en"
    return_address: Annotated[str, Meta(min_length=1, max_length=1000)] | None = None


class MailSettingsView(msgspec.Struct):
    sender_name: str | None
    reply_to: str | None
    default_language: str
    return_address: str | None


Grams = Annotated[int, Meta(ge=1, le=1_000_000)]
Millimetres = Annotated[int, Meta(ge=1, le=10_000)]


class ParcelIn(Body):
    """A parcel: its weight, and its size when known (all three, or none)."""

    weight_g: Grams
    length_mm: Millimetres | None = None
    width_mm: Millimetres | None = None
    height_mm: Millimetres | None = None


class CarrierPreferencesIn(Body):
    carriers: Annotated[list[ShortText], Meta(max_length=20)] = []  # as the carrier prints its name; empty: any
    services: Annotated[list[ShortText], Meta(max_length=50)] = []  # empty: any
    prefer: Literal["cheapest", "fastest"] = "cheapest"


class LabelCeilingIn(Body):
    """The most a label may cost to be bought without an agent (``service/labels.py``): at most
    ``percent_of_items`` % of the value of what comes back (null: no such limit) and, where
    ``max_amount`` prices the rate's currency, at most that (minor units). Amounts are compared in
    one currency only: a rate in another currency than the case's waits for an agent, unless
    ``other_currency`` is ``max_amount`` and ``max_amount`` prices the rate's currency."""

    percent_of_items: Annotated[int, Meta(ge=0, le=100)] | None = 50
    max_amount: Annotated[dict[Currency, Amount], Meta(max_length=50)] = {}
    other_currency: Literal["hold", "max_amount"] = "hold"


class ShippingSettingsIn(Body):
    """A merchant's return shipping. ``label_buyer``: ``merchant`` buys a label for every approved
    case whose item comes back, from the order's ``shipping_address`` to ``return_address``
    (required then); ``customer_ships`` buys none. Parcels per product category (an order line's
    ``category``), else ``default_parcel``; a label over ``label_ceiling`` waits for an agent.
    Replaced whole by PUT."""

    label_buyer: Literal["merchant", "customer_ships"] = "merchant"
    return_address: AddressIn | None = None
    default_parcel: ParcelIn = msgspec.field(default_factory=lambda: ParcelIn(weight_g=1000))
    parcels: Annotated[dict[ShortText, ParcelIn], Meta(max_length=200)] = {}
    carrier_preferences: CarrierPreferencesIn = msgspec.field(default_factory=CarrierPreferencesIn)
    label_ceiling: LabelCeilingIn = msgspec.field(default_factory=LabelCeilingIn)


class LabelDecisionIn(Body):
    """An agent's decision on a ``held`` label; ``note`` goes into the audit trail."""

    note: Text | None = None


class CustomerMailView(msgspec.Struct):
    """One e-mail to the customer: ``pending`` (``last_error`` says why it waits), ``sent``
    (handed to the mail server), or ``gave_up``."""

    id: str
    kind: Literal[
        "received",
        "approved",
        "rejected",
        "info_requested",
        "refund_sent",
        "store_credit",
        "survey",
        "label_ready",
        "in_transit",
        "delivered",
    ]
    recipient: str
    language: str
    status: Literal["pending", "sent", "gave_up"]
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class CustomerMailList(msgspec.Struct):
    items: list[CustomerMailView]


class WebhookEndpointIn(Body):
    url: Annotated[str, Meta(pattern=r"^https?://[^\s]+$(?!\n)", max_length=2000)]
    secret: Annotated[str, Meta(min_length=16, max_length=200)] | None = None  # generated when absent
    enabled: bool = True


class WebhookEndpointView(msgspec.Struct):
    id: str
    url: str
    enabled: bool
    created_at: datetime
    secret: str | None = None  # shown only when it is made (endpoint created, secret rotated)
    previous_secret_expires_at: datetime | None = None  # the secret before the last rotation signs too until then


class WebhookEndpointList(msgspec.Struct):
    items: list[WebhookEndpointView]
    next_cursor: str | None = None


class DeliveryView(msgspec.Struct):
    id: int
    endpoint_id: str
    topic: str
    event_id: int
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    at: datetime


class DeliveryList(msgspec.Struct):
    items: list[DeliveryView]
    next_cursor: str | None = None


class GatewayAccountIn(Body):
    account: Annotated[str, Meta(pattern=r"^acct_[A-Za-z0-9]+$(?!\n)", max_length=100)] | None


# --------------------------------------------------------------------------- finance


class LedgerRefundView(RefundView):
    """A refund as finance reads it: also whose it was and why it came back."""

    customer_id: str
    reason: str | None


class LedgerList(msgspec.Struct):
    items: list[LedgerRefundView]
    next_cursor: str | None


class ReconciliationIn(Body):
    period_from: Timestamp = msgspec.field(name="from")
    period_to: Timestamp = msgspec.field(name="to")


class ReconciliationEntry(msgspec.Struct):
    currency: str
    refund_id: str | None = None  # ours
    case_id: str | None = None
    gateway_refund_id: str | None = None
    our_amount: int | None = None
    gateway_amount: int | None = None
    our_status: str | None = None
    gateway_status: str | None = None


class ClassTotal(msgspec.Struct):
    count: int = 0
    our_amount: int = 0
    gateway_amount: int = 0


class CurrencyTotals(msgspec.Struct):
    """Per currency: ours = matched + amount_mismatch + status_mismatch + missing_at_gateway;
    gateway = matched + amount_mismatch + status_mismatch + unknown_at_gateway."""

    our_amount: int
    gateway_amount: int
    matched: ClassTotal
    missing_at_gateway: ClassTotal
    unknown_at_gateway: ClassTotal
    amount_mismatch: ClassTotal
    status_mismatch: ClassTotal


class ReconciliationView(msgspec.Struct):
    id: str
    period_from: datetime = msgspec.field(name="from")
    period_to: datetime = msgspec.field(name="to")
    created_at: datetime
    gateway: str
    matched: list[ReconciliationEntry] = []
    missing_at_gateway: list[ReconciliationEntry] = []
    unknown_at_gateway: list[ReconciliationEntry] = []
    amount_mismatch: list[ReconciliationEntry] = []
    status_mismatch: list[ReconciliationEntry] = []
    totals: dict[str, CurrencyTotals] = {}


class SummaryRow(msgspec.Struct):
    key: str
    currency: str
    refunds: int
    succeeded: int = 0
    failed: int = 0
    refunded: int = 0  # minor units, succeeded refunds
    in_flight: int = 0  # minor units, not settled yet
    items: int | None = None  # by SKU: items that came back
    item_value: int | None = None  # by SKU: their value
    failed_amount: int = 0  # minor units, failed refunds (a retry that paid them is in ``refunded``)


class SummaryReport(msgspec.Struct):
    period_from: datetime = msgspec.field(name="from")
    period_to: datetime = msgspec.field(name="to")
    group_by: str
    rows: list[SummaryRow]


class ReasonCount(msgspec.Struct):
    reason: str
    responsibility: str
    items: int
    cases: int


class SkuReasons(msgspec.Struct):
    sku: str
    items: int
    merchant_responsible_share: float
    reasons: list[ReasonCount]


class Csat(msgspec.Struct):
    surveys: int
    average_rating: float | None
    satisfied_share: float | None  # ratings of 4 or 5


class DayReasonCount(msgspec.Struct):
    sku: str
    reason: str
    responsibility: str
    items: int


class DayReasons(msgspec.Struct):
    """One UTC day of the reasons report (added): the cases opened that day."""

    day: str  # YYYY-MM-DD
    items: int
    merchant_responsible_share: float
    reasons: list[DayReasonCount]  # per SKU and reason, most items first
    csat: Csat  # surveys on the cases opened that day


class ReasonsReport(msgspec.Struct):
    period_from: datetime = msgspec.field(name="from")
    period_to: datetime = msgspec.field(name="to")
    items: int
    merchant_responsible_share: float
    by_sku: list[SkuReasons]
    csat: Csat
    by_day: list[DayReasons] | None = None  # added, with ?by_day=true: days with cases, oldest first


class MeView(msgspec.Struct):
    key_id: str
    role: str


class CaseCounts(msgspec.Struct):
    counts: dict[str, int]  # state → cases
