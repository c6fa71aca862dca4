"""The built-in rules of DESIGN.md §5 and the contract a custom rule follows.

A rule is a small object made from its parameters (a msgspec ``Params`` struct, so a bad policy
document is refused with the rule and parameter named). ``evaluate`` looks at the facts, may
adjust the case's money draft, and always returns one outcome whose detail says why, so a
decision lists every rule of the policy. Rules run in the policy's order; the money rules come
after the eligibility rules and before ``review`` and ``auto_approve``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Generic, TypeVar

import msgspec

from domain.cases import CaseType, Condition, Reason, Resolution, Responsibility
from domain.decision import Payer, RuleOutcome, RuleResult, ShippingShares
from domain.errors import PolicyCurrencyUnpriced
from domain.money import percent_of, split_half, to_major
from policies.facts import Facts

PASS, FAIL, REVIEW, INFO = RuleResult.PASS, RuleResult.FAIL, RuleResult.REVIEW, RuleResult.INFO


class MoneyDraft(msgspec.Struct):
    """The money being worked out while the rules run; the engine turns it into ``CaseMoney``."""

    currency: str
    item_values: dict[str, int]  # line_id → value of what comes back (after condition grading)
    restocking_fee: int = 0
    return_shipping: ShippingShares = ShippingShares(Payer.CUSTOMER, 0, 0)
    original_shipping_refund: int = 0
    store_credit_bonus_bp: int = 0  # basis points added when the customer takes store credit
    keep_item: bool = False
    label_cost: int = 0  # what the return label costs, set by ``return_shipping``

    @property
    def items_total(self) -> int:
        return sum(self.item_values.values())

    def show(self, amount: int) -> str:
        return f"{to_major(amount, self.currency)} {self.currency}"


class RuleParams(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    enabled: bool = True


def basis_points(percent: float) -> int:
    """A percentage parameter (``15`` or ``12.5``) as whole basis points; money stays integral."""
    return round(percent * 100)


P = TypeVar("P", bound=RuleParams, covariant=True)


class Rule(Generic[P]):
    """Base of every rule, built-in or plugged in through the ``returns.policies`` entry points;
    ``Rule[MyParams]`` types ``self.params`` (a plugin may leave it out: ``RuleParams``)."""

    name: ClassVar[str]
    Params: ClassVar[type[RuleParams]] = RuleParams
    # works out money: its outcome is refreshed when the money is (an agent decides who is
    # responsible); the eligibility rules' outcomes stand as decided
    money: ClassVar[bool] = False

    def __init__(self, params: P) -> None:
        self.params = params

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        raise NotImplementedError

    def outcome(self, result: RuleResult, detail: str, agent_detail: str | None = None) -> RuleOutcome:
        return RuleOutcome(rule=self.name, result=result, detail=detail, agent_detail=agent_detail)

    def price(self, parameter: str, currency: str) -> int:
        """A ``Prices`` parameter in the order's currency; an unpriced currency is refused, never
        read as 0 or in another currency's minor units (the engine checks every one up front)."""
        found = price_in(getattr(self.params, parameter), currency)
        if found is None:
            raise PolicyCurrencyUnpriced(currency, [f"rules.{self.name}.{parameter}"])
        return found


# --------------------------------------------------------------------------- eligibility


class Quantity(Rule[RuleParams]):
    name = "quantity"

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        too_many = []
        for item in facts.items:
            left = item.purchased_quantity - item.already_claimed_quantity
            if item.quantity < 1 or item.quantity > left:
                too_many.append(f"line {item.line_id}: {item.quantity} claimed, {max(left, 0)} left to claim")
        if too_many:
            return self.outcome(FAIL, "more than bought minus already returned or open: " + "; ".join(too_many))
        return self.outcome(PASS, "every quantity is within what was bought and not yet claimed")


class FinalSale(Rule[RuleParams]):
    name = "final_sale"

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        blocked = [i.line_id for i in facts.items if i.final_sale and i.responsibility != Responsibility.MERCHANT]
        if blocked:
            return self.outcome(
                FAIL, f"final-sale lines are returnable only when the merchant is responsible: {', '.join(blocked)}"
            )
        if any(i.final_sale for i in facts.items):
            return self.outcome(PASS, "final-sale item, but the merchant is responsible")
        return self.outcome(PASS, "no final-sale item")


Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
Days = Annotated[int, msgspec.Meta(ge=0, le=36_500)]
Amount = Annotated[int, msgspec.Meta(ge=0, le=10**13)]
# An amount per ISO 4217 currency, each in that currency's minor units (``{"EUR": 500, "JPY": 800}``):
# 500 is 5.00 EUR but 500 JPY, so a policy's amount is only ever read in the currency it was given
# for. A rule's parameter typed ``Prices`` (a plugin's too) is read and checked as such by the engine.
Prices = dict[str, Amount]
# The one key that is not a currency: a policy stored before amounts were per currency meant its
# bare amount in whatever currency the order had, and keeps meaning it (see ``load_policy``).
ANY_CURRENCY = "*"

# The default return label per currency (about 5 EUR each); an exchange's shipping defaults to
# twice it and the auto-approval limit to twenty times it. docs/policies.md lists the figures.
DEFAULT_LABEL_COSTS: dict[str, int] = {
    "EUR": 500, "USD": 500, "GBP": 500, "CHF": 500, "CAD": 700, "AUD": 800, "NZD": 800, "SGD": 700,
    "HKD": 4000, "CNY": 4000, "JPY": 800, "KRW": 7000, "INR": 45000, "SEK": 5000, "NOK": 5000,
    "DKK": 4000, "PLN": 2000, "CZK": 12500, "HUF": 200000, "BRL": 3000, "MXN": 10000,
}  # fmt: skip


def default_prices(times: int) -> Prices:
    return {currency: cost * times for currency, cost in DEFAULT_LABEL_COSTS.items()}


def price_in(prices: Prices, currency: str) -> int | None:
    """The amount for ``currency``, or None when the table does not price it."""
    return prices.get(currency, prices.get(ANY_CURRENCY))


class DaysParams(RuleParams, frozen=True):
    days: Days = 30


class ReturnWindow(Rule[DaysParams]):
    name = "return_window"
    Params = DaysParams

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        if facts.case_type == CaseType.REPAIR:
            return self.outcome(INFO, "repairs follow the warranty, not the return window")
        since = "delivery" if facts.order.delivered_at else "purchase (never delivered)"
        age = facts.days_held
        if age > self.params.days:
            return self.outcome(FAIL, f"{age} days since {since}; the window is {self.params.days} days")
        return self.outcome(PASS, f"{age} days since {since}, within {self.params.days} days")


class WarrantyParams(RuleParams, frozen=True):
    days: Days = 365


class RepairWarranty(Rule[WarrantyParams]):
    name = "repair_warranty"
    Params = WarrantyParams

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        if facts.case_type != CaseType.REPAIR:
            return self.outcome(INFO, "applies to repairs only")
        age = facts.days_held
        if age > self.params.days:
            return self.outcome(INFO, f"{age} days old, outside the {self.params.days}-day warranty: a paid repair with a quote")
        return self.outcome(PASS, f"{age} days old, within the {self.params.days}-day warranty")


class PhotoParams(RuleParams, frozen=True):
    reasons: list[Reason] = msgspec.field(
        default_factory=lambda: [Reason.DEFECTIVE, Reason.DAMAGED_IN_TRANSIT, Reason.NOT_AS_DESCRIBED, Reason.WRONG_ITEM]
    )
    min_photos: Annotated[int, msgspec.Meta(ge=0, le=100)] = 1


class PhotoEvidence(Rule[PhotoParams]):
    name = "photo_evidence"
    Params = PhotoParams

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        needing = sorted({i.reason.value for i in facts.items if i.reason in self.params.reasons})
        if not needing:
            return self.outcome(PASS, "no reason on this case needs photos")
        if facts.photo_count < self.params.min_photos:
            return self.outcome(
                REVIEW,
                f"{', '.join(needing)} needs at least {self.params.min_photos} photo(s); {facts.photo_count} received",
            )
        return self.outcome(PASS, f"{facts.photo_count} photo(s) received for {', '.join(needing)}")


# --------------------------------------------------------------------------- money


def _default_grades() -> dict[Condition, int | None]:
    return {
        Condition.AS_NEW: 100,
        Condition.OPENED: 100,
        Condition.USED: 100,
        Condition.DAMAGED: None,
        Condition.DEFECTIVE: 100,
        Condition.WRONG_ITEM: 100,
        Condition.MISSING: 0,
    }


class GradingParams(RuleParams, frozen=True):
    """Percent of an item's value refunded per condition on arrival; ``null``: an agent decides."""

    grades: dict[Condition, Annotated[int, msgspec.Meta(ge=0, le=100)] | None] = msgspec.field(default_factory=_default_grades)


class ConditionGrading(Rule[GradingParams]):
    name = "condition_grading"
    money = True
    Params = GradingParams

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        received = [i for i in facts.items if i.condition is not None]
        if not received:
            return self.outcome(INFO, "graded when the items arrive")
        undecided, details = [], []
        for item in received:
            grade = self.params.grades.get(item.condition, 100)  # type: ignore[arg-type]
            if grade is None:
                grade = item.graded_percent
            if grade is None:
                undecided.append(item.line_id)
                grade = 0
            money.item_values[item.line_id] = percent_of(money.item_values[item.line_id], grade * 100)
            details.append(f"{item.line_id} {item.condition}: {grade}%")
        if undecided:
            return self.outcome(REVIEW, "an agent decides the value of " + ", ".join(undecided) + "; " + "; ".join(details))
        return self.outcome(INFO, "; ".join(details))


class PercentParams(RuleParams, frozen=True):
    percent: Percent = 0


class RestockingFee(Rule[PercentParams]):
    """Charged only on customer-responsible returns of items that arrive opened."""

    name = "restocking_fee"
    money = True
    Params = PercentParams

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        bp = basis_points(self.params.percent)
        if facts.case_type != CaseType.RETURN or bp == 0:
            return self.outcome(INFO, "no restocking fee")
        opened = [i for i in facts.items if i.responsibility == Responsibility.CUSTOMER and i.condition == Condition.OPENED]
        if not opened:
            return self.outcome(INFO, f"{self.params.percent:g}% fee if a customer-responsible item arrives opened")
        money.restocking_fee = sum(percent_of(money.item_values[i.line_id], bp) for i in opened)
        return self.outcome(INFO, f"{self.params.percent:g}% on opened items: {money.show(money.restocking_fee)}")


class ReturnShippingParams(RuleParams, frozen=True):
    label_cost: Prices = msgspec.field(default_factory=lambda: default_prices(1))
    refund_original_shipping: bool = True  # when the merchant is responsible


class ReturnShipping(Rule[ReturnShippingParams]):
    """The customer pays the label when every item comes back for their own reason; the
    merchant pays it when any item is theirs, and refunds the original shipping (once per
    order; not when the parcel came back empty). While an item's responsibility is unknown (reason ``other``) nobody is charged: the
    label is ``undecided`` until an agent decides on approval."""

    name = "return_shipping"
    money = True
    Params = ReturnShippingParams

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        money.label_cost = label = self.price("label_cost", money.currency)
        if facts.case_type == CaseType.EXCHANGE:
            return self.outcome(INFO, "exchanges follow exchange_shipping")
        if facts.merchant_responsible:
            money.return_shipping = ShippingShares(Payer.MERCHANT, 0, label)
            if facts.came_back_empty:  # nothing to refund the shipping of, nor to use up the order's one refund on
                return self.outcome(
                    INFO, f"the merchant is responsible and pays the {money.show(label)} label; nothing came back"
                )
            if (
                self.params.refund_original_shipping
                and facts.case_type == CaseType.RETURN
                and not facts.shipping_already_refunded
            ):
                money.original_shipping_refund = facts.order.shipping_total
            return self.outcome(INFO, f"the merchant is responsible and pays the {money.show(label)} label")
        if facts.responsibility_undecided:
            money.return_shipping = ShippingShares(Payer.UNDECIDED, 0, 0, undecided_share=label)
            return self.outcome(INFO, f"who pays the {money.show(label)} label waits for an agent to decide who is responsible")
        money.return_shipping = ShippingShares(Payer.CUSTOMER, label, 0)
        return self.outcome(INFO, f"the customer pays the {money.show(label)} label, deducted from the refund")


class ExchangeShippingParams(RuleParams, frozen=True):
    cost: Prices = msgspec.field(default_factory=lambda: default_prices(2))  # return label plus the replacement's shipping
    customer_percent: Percent = 50


class ExchangeShipping(Rule[ExchangeShippingParams]):
    """Split between customer and merchant when the customer is responsible (an odd minor unit
    goes to the merchant); all on the merchant when any item is theirs; ``undecided`` (nobody
    charged) while an item's responsibility waits for an agent."""

    name = "exchange_shipping"
    money = True
    Params = ExchangeShippingParams

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        if facts.case_type != CaseType.EXCHANGE:
            return self.outcome(INFO, "applies to exchanges only")
        cost = self.price("cost", money.currency)
        if facts.merchant_responsible:
            money.return_shipping = ShippingShares(Payer.MERCHANT, 0, cost)
            return self.outcome(INFO, f"the merchant is responsible and pays all {money.show(cost)} shipping")
        customer, merchant = self._split(cost)
        if facts.responsibility_undecided:
            # what may be charged: the customer's part, should the agent find them responsible
            money.return_shipping = ShippingShares(Payer.UNDECIDED, 0, 0, undecided_share=customer)
            return self.outcome(
                INFO,
                f"who pays {money.show(customer)} of the {money.show(cost)} shipping waits for an agent to decide "
                "who is responsible",
            )
        money.return_shipping = ShippingShares(Payer.SPLIT, customer, merchant)
        return self.outcome(
            INFO, f"shipping {money.show(cost)} split: customer {money.show(customer)}, merchant {money.show(merchant)}"
        )

    def _split(self, cost: int) -> tuple[int, int]:
        """The customer's and the merchant's parts of ``cost``; an odd minor unit is the merchant's."""
        bp = basis_points(self.params.customer_percent)
        if bp == 5000:
            return split_half(cost)
        customer = cost * bp // 10_000  # rounding down: the odd unit stays with the merchant
        return customer, cost - customer


class KeepItemParams(RuleParams, frozen=True):
    merchant_responsible_only: bool = True


class KeepItem(Rule[KeepItemParams]):
    """Refund without return when what comes back is worth less than the return label."""

    name = "keep_item"
    money = True
    Params = KeepItemParams

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        if facts.case_type != CaseType.RETURN:
            return self.outcome(INFO, "applies to returns only")
        if facts.kept_by_agent:
            money.keep_item = True
            money.return_shipping = ShippingShares(money.return_shipping.payer, 0, 0)
            return self.outcome(PASS, "an agent lets the customer keep it: refunded without return")
        if any(i.condition is not None for i in facts.items):
            return self.outcome(INFO, "the item came back")
        if self.params.merchant_responsible_only and not facts.merchant_responsible:
            return self.outcome(INFO, "the customer is responsible: the item comes back")
        if money.items_total >= money.label_cost:
            return self.outcome(INFO, f"worth {money.show(money.items_total)}, not less than the label: the item comes back")
        money.keep_item = True
        # no label is bought, so none waits for an agent's decision: an undecided item kept is
        # the merchant's to forgo, like any item the merchant lets the customer keep
        payer = Payer.MERCHANT if money.return_shipping.payer == Payer.UNDECIDED else money.return_shipping.payer
        money.return_shipping = ShippingShares(payer, 0, 0)
        return self.outcome(
            PASS, f"worth {money.show(money.items_total)}, less than the {money.show(money.label_cost)} label: keep it"
        )


class StoreCreditBonus(Rule[PercentParams]):
    name = "store_credit_bonus"
    money = True
    Params = PercentParams

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        if facts.resolution != Resolution.STORE_CREDIT:
            return self.outcome(INFO, f"{self.params.percent:g}% bonus when choosing store credit")
        money.store_credit_bonus_bp = basis_points(self.params.percent)
        return self.outcome(INFO, f"store credit with a {self.params.percent:g}% bonus")


# --------------------------------------------------------------------------- workflow


AN_AGENT_REVIEWS = "an agent reviews this case"


class ReviewParams(RuleParams, frozen=True):
    reasons: list[Reason] = msgspec.field(default_factory=lambda: [Reason.OTHER])
    max_return_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5  # items returned / bought, 90 days
    min_items_for_rate: Annotated[int, msgspec.Meta(ge=0)] = 3  # too few purchases say nothing
    flagged_customers: bool = True


class Review(Rule[ReviewParams]):
    name = "review"
    Params = ReviewParams

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        """What the customer's history says (return rate, a flag) is told to agents only: the
        customer reads that an agent reviews the case."""
        told = []
        reasons = sorted({i.reason.value for i in facts.items if i.reason in self.params.reasons})
        if reasons:
            told.append(f"reason {', '.join(reasons)} needs an agent")
        private = []
        history = facts.customer
        if history.items_purchased_90d >= self.params.min_items_for_rate:
            rate = history.items_returned_90d / history.items_purchased_90d
            if rate > self.params.max_return_rate:
                private.append(
                    f"customer returned {history.items_returned_90d} of {history.items_purchased_90d} items in 90 days"
                )
        if self.params.flagged_customers and history.flagged:
            private.append("customer is flagged")
        if private:
            return self.outcome(REVIEW, "; ".join(told) or AN_AGENT_REVIEWS, agent_detail="; ".join(told + private))
        if told:
            return self.outcome(REVIEW, "; ".join(told))
        return self.outcome(PASS, "nothing needs an agent's eye")


class AutoApproveParams(RuleParams, frozen=True):
    max_amount: Prices = msgspec.field(default_factory=lambda: default_prices(20))
    # the carrier's delivery scan receives such a return (customer-responsible, within max_amount)
    # as new, without an agent: for goods not worth an inspection
    receive_on_delivery: bool = False


class AutoApprove(Rule[AutoApproveParams]):
    """Only customer-responsible, unflagged cases under the amount; the engine adds that the
    case must be eligible with nothing to review."""

    name = "auto_approve"
    Params = AutoApproveParams

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        if facts.case_type == CaseType.REPAIR:
            return self.outcome(INFO, "repairs are approved by an agent")
        if not facts.customer_responsible:
            return self.outcome(INFO, "not every reason is the customer's: an agent approves")
        if facts.customer.flagged:
            return self.outcome(INFO, "an agent approves", agent_detail="flagged customer: an agent approves")
        limit = self.price("max_amount", money.currency)
        if money.items_total > limit:
            return self.outcome(INFO, f"{money.show(money.items_total)} is over the {money.show(limit)} auto-approval limit")
        return self.outcome(PASS, f"customer-responsible and within {money.show(limit)}")


BUILT_IN_RULES: tuple[type[Rule[RuleParams]], ...] = (
    Quantity,
    FinalSale,
    ReturnWindow,
    RepairWarranty,
    PhotoEvidence,
    ConditionGrading,
    RestockingFee,
    ReturnShipping,
    ExchangeShipping,
    KeepItem,
    StoreCreditBonus,
    Review,
    AutoApprove,
)
