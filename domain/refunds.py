"""A refund is one payout attempt through the payment gateway; a case may have several
(a failed one is retried, once, as a new refund). Its state machine never moves backwards, so a
late or repeated gateway event can't undo a newer state, with one exception the gateway makes:
a succeeded refund may still fail (Stripe: the customer's bank sent it back, a closed card)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

from domain.errors import InvalidTransition, RefundAlreadyRetried
from domain.statemachine import Table, next_state


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REQUIRES_ACTION = "requires_action"
    CANCELED = "canceled"


class RefundAction(StrEnum):
    SUBMIT = "submit"
    SUCCEED = "succeed"
    FAIL = "fail"
    REQUIRE_ACTION = "require_action"
    CANCEL = "cancel"


_R, _RA = RefundStatus, RefundAction

REFUND_TABLE: Table[RefundStatus, RefundAction] = {
    (_R.PENDING, _RA.SUBMIT): _R.SUBMITTED,
    # Refused by the gateway before it accepted anything (e.g. over-refund, bad payment).
    (_R.PENDING, _RA.FAIL): _R.FAILED,
    (_R.SUBMITTED, _RA.SUCCEED): _R.SUCCEEDED,
    (_R.SUBMITTED, _RA.FAIL): _R.FAILED,
    (_R.SUBMITTED, _RA.REQUIRE_ACTION): _R.REQUIRES_ACTION,
    (_R.REQUIRES_ACTION, _RA.SUCCEED): _R.SUCCEEDED,
    (_R.REQUIRES_ACTION, _RA.FAIL): _R.FAILED,
    (_R.REQUIRES_ACTION, _RA.CANCEL): _R.CANCELED,
    # the money did not arrive after all: the case goes back to the agents
    (_R.SUCCEEDED, _RA.FAIL): _R.FAILED,
}

FINAL_STATUSES = frozenset({_R.SUCCEEDED, _R.FAILED, _R.CANCELED})
# Statuses whose amount counts against what is still refundable on the order and owed by the case.
COMMITTED_STATUSES = frozenset(RefundStatus) - {_R.FAILED, _R.CANCELED}
RETRYABLE_STATUSES = frozenset({_R.FAILED, _R.CANCELED})


class Refund(msgspec.Struct):
    id: str
    merchant_id: str
    case_id: str
    order_id: str
    customer_id: str
    amount: int
    currency: str
    status: RefundStatus
    gateway: str
    payment_reference: str
    attempt: int
    created_at: datetime
    updated_at: datetime
    reason: str | None = None  # the case's main return reason, for finance reports
    gateway_account: str | None = None  # e.g. the merchant's Stripe Connect account
    gateway_refund_id: str | None = None
    failure_reason: str | None = None
    settled_at: datetime | None = None
    retried_by: str | None = None  # the refund that paid this failed one again: a retry is single-use
    version: int = 1

    @property
    def idempotency_key(self) -> str:
        """Deterministic per refund and attempt: a retry after a crash replays, never repeats."""
        return f"{self.id}:{self.attempt}"

    def check_retryable(self) -> None:
        """Only a failed (or canceled) refund is paid again, and only once: two successors
        would pay the same money twice."""
        if self.status not in RETRYABLE_STATUSES:
            raise InvalidTransition("refund", str(self.status), "retry")
        if self.retried_by is not None:
            raise RefundAlreadyRetried(f"refund {self.id} was already retried as {self.retried_by}", retried_by=self.retried_by)

    def retried_as(self, successor_id: str, at: datetime) -> None:
        """Link this refund to the one that pays it again."""
        self.check_retryable()
        self.retried_by = successor_id
        self.updated_at = at
        self.version += 1

    def apply(self, action: RefundAction, at: datetime, failure_reason: str | None = None) -> None:
        """Move the refund by ``action`` or raise ``InvalidTransition`` leaving it unchanged."""
        self.status = next_state("refund", REFUND_TABLE, self.status, action)
        self.updated_at = at
        self.version += 1
        if failure_reason:
            self.failure_reason = failure_reason
        if self.status in FINAL_STATUSES:
            self.settled_at = at


# The actions that bring a refund from ``status`` to what the gateway reports, in order. A
# report that is behind (or equal to) what we know maps to no actions: never backwards.
_PATHS: dict[tuple[RefundStatus, RefundStatus], tuple[RefundAction, ...]] = {
    (_R.PENDING, _R.SUBMITTED): (_RA.SUBMIT,),
    (_R.PENDING, _R.SUCCEEDED): (_RA.SUBMIT, _RA.SUCCEED),
    (_R.PENDING, _R.FAILED): (_RA.FAIL,),
    (_R.PENDING, _R.REQUIRES_ACTION): (_RA.SUBMIT, _RA.REQUIRE_ACTION),
    (_R.PENDING, _R.CANCELED): (_RA.SUBMIT, _RA.REQUIRE_ACTION, _RA.CANCEL),
    (_R.SUBMITTED, _R.SUCCEEDED): (_RA.SUCCEED,),
    (_R.SUBMITTED, _R.FAILED): (_RA.FAIL,),
    (_R.SUBMITTED, _R.REQUIRES_ACTION): (_RA.REQUIRE_ACTION,),
    (_R.SUBMITTED, _R.CANCELED): (_RA.REQUIRE_ACTION, _RA.CANCEL),
    (_R.REQUIRES_ACTION, _R.SUCCEEDED): (_RA.SUCCEED,),
    (_R.REQUIRES_ACTION, _R.FAILED): (_RA.FAIL,),
    (_R.REQUIRES_ACTION, _R.CANCELED): (_RA.CANCEL,),
    (_R.SUCCEEDED, _R.FAILED): (_RA.FAIL,),
}


def catch_up(current: RefundStatus, reported: RefundStatus) -> tuple[RefundAction, ...]:
    """The actions that move a refund forward to the gateway's reported status (none when the
    report is stale, a repeat, or would go backwards; succeeded to failed is the gateway's own)."""
    return _PATHS.get((current, reported), ())
