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
    # the fuller reason only agents read (the customer's history, a flag): ``detail`` is what
    # everyone reads; storefront and customer views leave this out
    agent_detail: str | None = None


class Decision(msgspec.Struct, frozen=True):
    policy_version: int
    eligible: bool
    requires_review: bool
    requires_photos: bool
    auto_approve: bool
    outcomes: list[RuleOutcome]
    photo_count: int = 0
    keep_item: bool = False  # refund without return: the label costs more than the item
    # the policy's amounts the case was decided under, in the order's currency, by parameter
    # (``{"rules.return_shipping.label_cost": 500, ...}``): whenever the case's money is worked out
    # again these stand, not the policy's tables (which may since price the currency otherwise, or
    # not at all). Empty on a decision recorded before amounts were per currency.
    prices: dict[str, int] = msgspec.field(default_factory=dict)

    def without_agent_details(self) -> Decision:
        """The decision as the storefront and the customer read it."""
        outcomes = [msgspec.structs.replace(o, agent_detail=None) for o in self.outcomes]
        return msgspec.structs.replace(self, outcomes=outcomes)


class Payer(StrEnum):
    CUSTOMER = "customer"
    MERCHANT = "merchant"
    SPLIT = "split"
    UNDECIDED = "undecided"  # responsibility is unknown (reason ``other``) until an agent decides


class ShippingShares(msgspec.Struct, frozen=True, omit_defaults=True):
    payer: Payer
    customer_share: int
    merchant_share: int
    # what nobody is charged yet: the cost whose payer an agent decides, present only with payer
    # ``undecided``, so a storefront can say "a 5.00 EUR label may be deducted once we have looked"
    undecided_share: int = 0


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
