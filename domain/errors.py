"""Domain errors. Each carries the stable problem ``code`` of DESIGN.md §3, so one mapper in
the API turns any of them into a problem+json answer."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "domain_error"
    status = 422

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidTransition(DomainError):
    code = "invalid_transition"
    status = 409

    def __init__(self, entity: str, state: str, action: str) -> None:
        super().__init__(
            f"cannot {action.replace('_', ' ')} a {entity} in state '{state}'",
            state=state,
            action=action,
        )
        self.state = state
        self.action = action


class SurveyAlreadyAnswered(DomainError):
    """A case's survey is answered once; the case is still closed, so ``invalid_transition``
    (which names the state) would not say what is wrong."""

    code = "survey_already_answered"
    status = 409


class CurrencyMismatch(DomainError):
    code = "validation_error"


class InvalidRequest(DomainError):
    """A request that is well formed but makes no sense against the stored data
    (unknown line, quantity over what was bought, …). ``errors`` names the fields."""

    code = "validation_error"

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail, errors=errors or [])
        self.errors = errors or []


class PolicyViolation(DomainError):
    code = "policy_violation"

    def __init__(self, detail: str, outcomes: list[Any]) -> None:
        super().__init__(detail, outcomes=outcomes)
        self.outcomes = outcomes


class RefundExceedsCaptured(DomainError):
    code = "refund_exceeds_captured"


class RefundExceedsCaseTotal(DomainError):
    """The case's live refunds would pay more than the case owes (its ``refund_total``)."""

    code = "refund_exceeds_case_total"


class RefundAlreadyRetried(DomainError):
    """A failed refund is retried once; the retry carries on from there."""

    code = "refund_already_retried"
    status = 409


class GatewayAccountTaken(DomainError):
    """A gateway account belongs to one merchant: another may not refund on it."""

    code = "gateway_account_taken"
    status = 409


class PaymentTaken(InvalidRequest):
    """A payment belongs to one merchant: the first whose order names it on its gateway account.
    Another merchant's order naming it is refused (``errors`` names ``payment.reference``), and so
    is a refund of it (an order stored before payments had owners)."""

    code = "payment_taken"
    status = 409


class GatewayAccountReadOnly(DomainError):
    """The operator binds gateway accounts; a merchant's admin may not."""

    code = "gateway_account_read_only"
    status = 403


class OrderLocked(DomainError):
    """An order snapshot that would change what cases or refunds rest on. ``errors`` names each
    such field, as validation errors do."""

    code = "order_locked"
    status = 409

    def __init__(self, errors: list[dict[str, str]]) -> None:
        fields = ", ".join(error["field"] for error in errors)
        super().__init__(f"the order has cases or refunds resting on it, so these may not change: {fields}", errors=errors)
        self.errors = errors


class PolicyCurrencyUnpriced(DomainError):
    """The order's currency has no amount in the merchant's policy. Amounts are per currency, and
    one is never read in another currency's minor units nor taken as 0; ``errors`` names each
    parameter that lacks it, so the merchant knows what to price."""

    code = "policy_currency_unpriced"

    def __init__(self, currency: str, fields: list[str]) -> None:
        errors = [{"field": field, "message": f"no amount for {currency}"} for field in fields]
        super().__init__(
            f"the merchant's policy has no {currency} amount for {', '.join(fields)}, "
            f"so it cannot quote a case in {currency} until the merchant prices it",
            errors=errors,
            currency=currency,
        )
        self.errors = errors


class LabelNotReady(DomainError):
    """The case has no return label to hand out: none was bought for it (yet), or it was voided."""

    code = "label_not_ready"
    status = 404


class LabelNotHeld(DomainError):
    """An agent's decision on a label that waits for none: there is no label, it is not ``held``
    (never was, or another agent decided first: one decision per hold)."""

    code = "label_not_held"
    status = 409
