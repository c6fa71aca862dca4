"""The case aggregate: one return, exchange or repair, moved by its state machine.

Every change goes through ``Case.apply`` (a state transition) or ``Case.record`` (a change that
keeps the state: a note, an assignment, a photo). Both append a ``CaseEvent`` for the audit
trail and outbox and bump ``version`` for optimistic concurrency; ``apply`` leaves the case
untouched when the transition is not allowed."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import msgspec

from domain.decision import CaseMoney, Decision
from domain.statemachine import Table, next_state


class CaseType(StrEnum):
    RETURN = "return"
    EXCHANGE = "exchange"
    REPAIR = "repair"


class CaseState(StrEnum):
    REQUESTED = "requested"
    PENDING_REVIEW = "pending_review"
    INFO_REQUESTED = "info_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    REFUND_PENDING = "refund_pending"
    REFUNDED = "refunded"
    REPLACEMENT_SHIPPED = "replacement_shipped"
    DIAGNOSING = "diagnosing"
    QUOTE_PENDING = "quote_pending"
    REPAIRING = "repairing"
    SHIPPED_BACK = "shipped_back"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class CaseAction(StrEnum):
    SUBMIT_FOR_REVIEW = "submit_for_review"
    AUTO_APPROVE = "auto_approve"
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_INFO = "request_info"
    PROVIDE_INFO = "provide_info"
    SHIP = "ship"
    RECEIVE = "receive"
    REFUND_WITHOUT_RETURN = "refund_without_return"
    START_REFUND = "start_refund"
    REFUND_SUCCEEDED = "refund_succeeded"
    SHIP_REPLACEMENT = "ship_replacement"
    START_DIAGNOSIS = "start_diagnosis"
    REPAIR_IN_WARRANTY = "repair_in_warranty"
    QUOTE = "quote"
    ACCEPT_QUOTE = "accept_quote"
    DECLINE_QUOTE = "decline_quote"
    SHIP_BACK = "ship_back"
    CLOSE = "close"
    CANCEL = "cancel"


class Resolution(StrEnum):
    REFUND = "refund"
    STORE_CREDIT = "store_credit"


class Reason(StrEnum):
    CHANGED_MIND = "changed_mind"
    WRONG_SIZE = "wrong_size"
    ORDERED_BY_MISTAKE = "ordered_by_mistake"
    BETTER_PRICE_ELSEWHERE = "better_price_elsewhere"
    DEFECTIVE = "defective"
    DAMAGED_IN_TRANSIT = "damaged_in_transit"
    WRONG_ITEM = "wrong_item"
    NOT_AS_DESCRIBED = "not_as_described"
    ARRIVED_LATE = "arrived_late"
    MISSING_PARTS = "missing_parts"
    OTHER = "other"


class Responsibility(StrEnum):
    CUSTOMER = "customer"
    MERCHANT = "merchant"
    UNKNOWN = "unknown"  # reason ``other``: an agent decides


CUSTOMER_REASONS = frozenset({Reason.CHANGED_MIND, Reason.WRONG_SIZE, Reason.ORDERED_BY_MISTAKE, Reason.BETTER_PRICE_ELSEWHERE})


def responsibility(reason: Reason) -> Responsibility:
    if reason in CUSTOMER_REASONS:
        return Responsibility.CUSTOMER
    if reason == Reason.OTHER:
        return Responsibility.UNKNOWN
    return Responsibility.MERCHANT


class Condition(StrEnum):
    AS_NEW = "as_new"
    OPENED = "opened"
    USED = "used"
    DAMAGED = "damaged"
    DEFECTIVE = "defective"
    WRONG_ITEM = "wrong_item"
    MISSING = "missing"


_S, _A = CaseState, CaseAction

# Shared by all three types: from the request up to the item arriving.
_INTAKE: dict[tuple[CaseState, CaseAction], CaseState] = {
    (_S.REQUESTED, _A.SUBMIT_FOR_REVIEW): _S.PENDING_REVIEW,
    (_S.REQUESTED, _A.AUTO_APPROVE): _S.APPROVED,
    (_S.PENDING_REVIEW, _A.APPROVE): _S.APPROVED,
    (_S.PENDING_REVIEW, _A.REJECT): _S.REJECTED,
    (_S.PENDING_REVIEW, _A.REQUEST_INFO): _S.INFO_REQUESTED,
    (_S.INFO_REQUESTED, _A.PROVIDE_INFO): _S.PENDING_REVIEW,
    (_S.APPROVED, _A.SHIP): _S.IN_TRANSIT,
    (_S.IN_TRANSIT, _A.RECEIVE): _S.RECEIVED,
    # The parcel may arrive before the customer reports the shipment: receiving it then is fine.
    (_S.APPROVED, _A.RECEIVE): _S.RECEIVED,
    **{
        (state, _A.CANCEL): _S.CANCELLED
        for state in (_S.REQUESTED, _S.PENDING_REVIEW, _S.INFO_REQUESTED, _S.APPROVED, _S.IN_TRANSIT)
    },
}

RETURN_TABLE: Table[CaseState, CaseAction] = {
    **_INTAKE,
    (_S.APPROVED, _A.REFUND_WITHOUT_RETURN): _S.REFUND_PENDING,
    (_S.RECEIVED, _A.START_REFUND): _S.REFUND_PENDING,
    # Nothing refundable arrived (all missing): the agent closes it.
    (_S.RECEIVED, _A.CLOSE): _S.CLOSED,
    (_S.REFUND_PENDING, _A.REFUND_SUCCEEDED): _S.REFUNDED,
    (_S.REFUNDED, _A.CLOSE): _S.CLOSED,
}

EXCHANGE_TABLE: Table[CaseState, CaseAction] = {
    **_INTAKE,
    (_S.RECEIVED, _A.SHIP_REPLACEMENT): _S.REPLACEMENT_SHIPPED,
    (_S.REPLACEMENT_SHIPPED, _A.CLOSE): _S.CLOSED,
}

REPAIR_TABLE: Table[CaseState, CaseAction] = {
    **_INTAKE,
    (_S.RECEIVED, _A.START_DIAGNOSIS): _S.DIAGNOSING,
    (_S.DIAGNOSING, _A.REPAIR_IN_WARRANTY): _S.REPAIRING,
    (_S.DIAGNOSING, _A.QUOTE): _S.QUOTE_PENDING,
    (_S.QUOTE_PENDING, _A.ACCEPT_QUOTE): _S.REPAIRING,
    (_S.QUOTE_PENDING, _A.DECLINE_QUOTE): _S.SHIPPED_BACK,
    (_S.REPAIRING, _A.SHIP_BACK): _S.SHIPPED_BACK,
    (_S.SHIPPED_BACK, _A.CLOSE): _S.CLOSED,
}

TABLES: dict[CaseType, Table[CaseState, CaseAction]] = {
    CaseType.RETURN: RETURN_TABLE,
    CaseType.EXCHANGE: EXCHANGE_TABLE,
    CaseType.REPAIR: REPAIR_TABLE,
}

TERMINAL_STATES = frozenset({_S.CLOSED, _S.CANCELLED, _S.REJECTED})

# States in which a case still holds its items against the order's returnable quantity.
HOLDS_ITEMS = frozenset(CaseState) - {_S.CANCELLED, _S.REJECTED}

# How long each state may wait before the case is overdue (DESIGN: SLA per state).
DEFAULT_SLA = {
    _S.REQUESTED: timedelta(hours=4),
    _S.PENDING_REVIEW: timedelta(hours=24),
    _S.INFO_REQUESTED: timedelta(days=7),
    _S.APPROVED: timedelta(days=14),
    _S.IN_TRANSIT: timedelta(days=14),
    _S.RECEIVED: timedelta(hours=48),
    _S.REFUND_PENDING: timedelta(hours=24),
    _S.REFUNDED: timedelta(hours=24),
    _S.REPLACEMENT_SHIPPED: timedelta(days=14),
    _S.DIAGNOSING: timedelta(days=3),
    _S.QUOTE_PENDING: timedelta(days=14),
    _S.REPAIRING: timedelta(days=10),
    _S.SHIPPED_BACK: timedelta(days=14),
}


class Actor(msgspec.Struct, frozen=True):
    id: str  # api key id, or "system"
    role: str  # storefront | agent | finance | admin | system


SYSTEM = Actor(id="system", role="system")


class CaseItem(msgspec.Struct):
    line_id: str
    sku: str
    quantity: int
    unit_price: int
    reason: Reason
    note: str | None = None
    replacement_sku: str | None = None
    replacement_unit_price: int | None = None
    received_quantity: int | None = None
    condition: Condition | None = None
    graded_percent: int | None = None  # the agent's grading where the policy leaves it to them
    # an agent's decision on approval where the reason leaves it unknown (``other``)
    decided_responsibility: Responsibility | None = None

    @property
    def responsibility(self) -> Responsibility:
        return self.decided_responsibility or responsibility(self.reason)


class Shipment(msgspec.Struct, frozen=True):
    direction: str  # return | replacement | ship_back
    carrier: str
    tracking_number: str
    at: datetime


class Note(msgspec.Struct, frozen=True):
    author: str  # the agent's key id
    text: str
    at: datetime


class Diagnosis(msgspec.Struct, frozen=True):
    finding: str
    in_warranty: bool
    quote_amount: int | None  # minor units; a paid repair's price, for the customer to accept
    at: datetime


class Survey(msgspec.Struct, frozen=True):
    rating: int  # 1..5
    comment: str | None
    at: datetime


class InfoRequest(msgspec.Struct, frozen=True):
    """The agent's last question to the customer (``request-info``); the customer reads it."""

    message: str
    at: datetime


class Rejection(msgspec.Struct, frozen=True):
    """Why the case was rejected: the reason and its note are written for the customer."""

    reason: str
    note: str | None
    at: datetime


class MoneyOverrideRecord(msgspec.Struct, frozen=True):
    """Why and by whom the policy's money was replaced on approval (the figure is ``money_override``)."""

    reason: str
    by: Actor
    at: datetime


# A photo already seen on another customer's case: it accuses the customer, so it marks them.
REUSED_PHOTO = "reused_photo"
# Many returns lately (see ``service.cases``): a fact about recent history, judged again for
# every new case, so it marks this case only, never the customer.
HIGH_RETURN_RATE = "high_return_rate"
CUSTOMER_FLAGS = frozenset({REUSED_PHOTO})


class CaseEvent(msgspec.Struct, frozen=True):
    case_id: str
    type: str  # the action, or a non-transition event such as "created", "note_added"
    actor: Actor
    at: datetime
    from_state: CaseState | None
    to_state: CaseState | None
    data: dict[str, Any] = {}


class Case(msgspec.Struct):
    id: str
    merchant_id: str
    order_id: str
    customer_id: str
    type: CaseType
    state: CaseState
    items: list[CaseItem]
    resolution: Resolution | None
    decision: Decision
    money: CaseMoney
    created_at: datetime
    updated_at: datetime
    sla_due_at: datetime | None
    customer_note: str | None = None
    issue_description: str | None = None
    shipments: list[Shipment] = []
    assignee: str | None = None
    flags: list[str] = []
    notes: list[Note] = []
    diagnosis: Diagnosis | None = None
    survey: Survey | None = None
    # an agent's approved figure for what the case pays back (refund or credit), audited on the
    # approval; it stands over the policy's money when the case is settled on receipt
    money_override: int | None = None
    money_override_record: MoneyOverrideRecord | None = None
    info_request: InfoRequest | None = None
    rejection: Rejection | None = None
    # refund without return: an agent let the customer keep the item on approval (a return only)
    kept_by_agent: bool = False
    # the carrier scanned the parcel delivered to the warehouse: it waits in the agents' receive queue
    delivered_at: datetime | None = None
    version: int = 1
    pending_events: list[CaseEvent] = []

    @classmethod
    def open(
        cls,
        *,
        case_id: str,
        merchant_id: str,
        order_id: str,
        customer_id: str,
        case_type: CaseType,
        items: list[CaseItem],
        resolution: Resolution | None,
        decision: Decision,
        money: CaseMoney,
        actor: Actor,
        at: datetime,
        customer_note: str | None = None,
        issue_description: str | None = None,
    ) -> Case:
        case = cls(
            id=case_id,
            merchant_id=merchant_id,
            order_id=order_id,
            customer_id=customer_id,
            type=case_type,
            state=CaseState.REQUESTED,
            items=items,
            resolution=resolution,
            decision=decision,
            money=money,
            created_at=at,
            updated_at=at,
            sla_due_at=at + DEFAULT_SLA[CaseState.REQUESTED],
            customer_note=customer_note,
            issue_description=issue_description,
        )
        case.pending_events.append(CaseEvent(case_id, "created", actor, at, None, CaseState.REQUESTED, {"type": case_type}))
        return case

    @property
    def flagged(self) -> bool:
        """A flag that marks the customer: their later cases count them as flagged."""
        return not CUSTOMER_FLAGS.isdisjoint(self.flags)

    @property
    def table(self) -> Table[CaseState, CaseAction]:
        return TABLES[self.type]

    def apply(self, action: CaseAction, actor: Actor, at: datetime, data: dict[str, Any] | None = None) -> None:
        """Move the case by ``action`` or raise ``InvalidTransition`` leaving it unchanged."""
        new_state = next_state("case", self.table, self.state, action)
        event = CaseEvent(self.id, str(action), actor, at, self.state, new_state, data or {})
        self.state = new_state
        sla = DEFAULT_SLA.get(new_state)
        self.sla_due_at = at + sla if sla else None
        self._changed(event)

    def record(self, event_type: str, actor: Actor, at: datetime, data: dict[str, Any]) -> None:
        """A change that keeps the state (note, assignment, evidence) still goes in the trail."""
        self._changed(CaseEvent(self.id, event_type, actor, at, self.state, self.state, data))

    def _changed(self, event: CaseEvent) -> None:
        self.updated_at = event.at
        self.version += 1
        self.pending_events.append(event)

    def take_events(self) -> list[CaseEvent]:
        events, self.pending_events = self.pending_events, []
        return events
