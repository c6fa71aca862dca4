"""What the policy decided about a case and what it costs: stored on the case as they were
when decided, so a later policy change never rewrites an open case."""

from __future__ import annotations

from enum import StrEnum

import msgspec


class RuleResult(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    REVIEW = "review"
    INFO = "info"


class RuleOutcome(msgspec.Struct, frozen=True):
    rule: str
    result: RuleResult
    detail: str
    overridden_by: str | None = None  # the agent who overrode this outcome, if any
    override_reason: str | None = None


class Decision(msgspec.Struct, frozen=True):
    policy_version: int
    eligible: bool
    requires_review: bool
    requires_photos: bool
    auto_approve: bool
    outcomes: list[RuleOutcome]
    photo_count: int = 0
    keep_item: bool = False  # refund without return: the label costs more than the item


class Payer(StrEnum):
    CUSTOMER = "customer"
    MERCHANT = "merchant"
    SPLIT = "split"


class ShippingShares(msgspec.Struct, frozen=True):
    payer: Payer
    customer_share: int
    merchant_share: int


class CaseMoney(msgspec.Struct, frozen=True):
    """The case's one money model, all in minor units of ``currency``."""

    currency: str
    items_total: int
    restocking_fee: int
    return_shipping: ShippingShares
    original_shipping_refund: int
    refund_total: int
    store_credit_total: int
    difference_due: int
    store_credit_bonus: int = 0  # included in store_credit_total

    @property
    def promised(self) -> int:
        """What this case may pay back through the payment gateway."""
        return self.refund_total
