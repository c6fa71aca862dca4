"""The policy engine of DESIGN.md §5 through its public API: facts in, ``Verdict`` out.

Pure unit tests (no database, no HTTP). Every expected figure is worked out by hand in the test
(minor units of the order's currency), so a change in the engine's arithmetic shows up here.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from domain.cases import CaseType, Condition, Reason, Resolution, Responsibility
from domain.decision import Payer, RuleOutcome, RuleResult, ShippingShares
from domain.errors import PolicyCurrencyUnpriced
from domain.money import to_major
from domain.orders import Customer, Order, OrderLine, Payment
from policies.engine import (
    CAPTURED_LIMIT,
    DEFAULT_POLICY,
    Policy,
    PolicyInvalid,
    Verdict,
    load_policy,
)
from policies.facts import CustomerHistory, Facts, ItemFacts
from policies.registry import RuleRegistry
from policies.rules import MoneyDraft, Prices, Rule, RuleParams

PASS, FAIL, REVIEW, INFO = RuleResult.PASS, RuleResult.FAIL, RuleResult.REVIEW, RuleResult.INFO
RETURN, EXCHANGE, REPAIR = CaseType.RETURN, CaseType.EXCHANGE, CaseType.REPAIR

NOW = datetime(2024, 6, 15, 14, 30, tzinfo=UTC)
SHIPPING_TOTAL = 700  # what the customer paid for the original shipping
PLENTY = 1_000_000  # order_remaining_refundable large enough never to cap

BUILT_IN_ORDER = [
    "quantity",
    "final_sale",
    "return_window",
    "repair_warranty",
    "photo_evidence",
    "condition_grading",
    "restocking_fee",
    "return_shipping",
    "exchange_shipping",
    "keep_item",
    "store_credit_bonus",
    "review",
    "auto_approve",
]


# --------------------------------------------------------------------------- builders


def item(
    line_id: str = "L1",
    *,
    unit_price: int = 2000,
    quantity: int = 1,
    reason: Reason = Reason.CHANGED_MIND,
    final_sale: bool = False,
    purchased: int | None = None,
    already: int = 0,
    replacement_price: int | None = None,
    condition: Condition | None = None,
    received: int | None = None,
    graded: int | None = None,
    decided: Responsibility | None = None,
) -> ItemFacts:
    return ItemFacts(
        line_id=line_id,
        sku=f"SKU-{line_id}",
        category="apparel",
        quantity=quantity,
        unit_price=unit_price,
        reason=reason,
        final_sale=final_sale,
        purchased_quantity=quantity if purchased is None else purchased,
        already_claimed_quantity=already,
        replacement_sku=None if replacement_price is None else f"SKU-{line_id}-X",
        replacement_unit_price=replacement_price,
        condition=condition,
        received_quantity=received,
        graded_percent=graded,
        decided_responsibility=decided,
    )


def facts(
    *items: ItemFacts,
    case_type: CaseType = RETURN,
    resolution: Resolution | None = None,
    currency: str = "EUR",
    delivered_ago: timedelta | None = timedelta(days=5),
    placed_ago: timedelta | None = None,
    photos: int = 0,
    customer: CustomerHistory | None = None,
    remaining: int = PLENTY,
    shipping_refunded: bool = False,
    shipping_total: int = SHIPPING_TOTAL,
    now: datetime = NOW,
) -> Facts:
    """A case's facts; one changed-mind line worth 2000 when no item is given. ``delivered_ago``
    None means never delivered; ``placed_ago`` defaults to two days before delivery."""
    items = items or (item(),)
    if placed_ago is None:
        placed_ago = (delivered_ago or timedelta(days=5)) + timedelta(days=2)
    lines = [
        OrderLine(i.line_id, i.sku, f"title {i.line_id}", i.purchased_quantity, i.unit_price, i.category, i.final_sale)
        for i in items
    ]
    order = Order(
        merchant_id="m1",
        order_id="o1",
        currency=currency,
        placed_at=now - placed_ago,
        delivered_at=None if delivered_ago is None else now - delivered_ago,
        customer=Customer("c1", "c1@example.com"),
        lines=lines,
        shipping_total=shipping_total,
        payment=Payment("simulated", "pay_1", sum(line.quantity * line.unit_price for line in lines) + shipping_total),
    )
    if resolution is None and case_type == RETURN:
        resolution = Resolution.REFUND
    return Facts(
        case_type=case_type,
        resolution=resolution,
        order=order,
        items=list(items),
        now=now,
        photo_count=photos,
        customer=customer or CustomerHistory(),
        order_remaining_refundable=remaining,
        shipping_already_refunded=shipping_refunded,
    )


def policy(rules: dict[str, Any] | None = None, version: int = 1) -> Policy:
    return load_policy({"rules": rules or {}}, version, RuleRegistry())


def run(f: Facts, rules: dict[str, Any] | None = None) -> Verdict:
    return policy(rules).evaluate(f)


def outcome(v: Verdict, rule: str) -> RuleOutcome:
    found = [o for o in v.decision.outcomes if o.rule == rule]
    assert len(found) == 1, f"{rule}: {found}"
    return found[0]


def eur(amount: int) -> str:
    return f"{to_major(amount, 'EUR')} EUR"


# --------------------------------------------------------------------------- the builder itself


def test_the_plain_case_passes_everything_and_is_auto_approved() -> None:
    v = run(facts())
    d = v.decision
    assert [o.rule for o in d.outcomes] == BUILT_IN_ORDER
    assert (d.eligible, d.requires_review, d.requires_photos, d.auto_approve, d.keep_item) == (True, False, False, True, False)
    # 2000 item − 500 label paid by the customer
    assert v.money.items_total == 2000
    assert v.money.refund_total == 1500
    assert v.money.return_shipping == ShippingShares(Payer.CUSTOMER, 500, 0)
    assert v.money.currency == "EUR"


# --------------------------------------------------------------------------- return_window


@pytest.mark.parametrize(
    ("delivered_ago", "rules", "result", "detail"),
    [
        (timedelta(days=0), None, PASS, "0 days since delivery, within 30 days"),
        (timedelta(days=29), None, PASS, "29 days since delivery, within 30 days"),
        (timedelta(days=30), None, PASS, "30 days since delivery, within 30 days"),
        (timedelta(days=31) - timedelta(seconds=1), None, PASS, "30 days since delivery, within 30 days"),
        (timedelta(days=31), None, FAIL, "31 days since delivery; the window is 30 days"),
        (timedelta(days=90), None, FAIL, "90 days since delivery; the window is 30 days"),
        (timedelta(days=14), {"days": 14}, PASS, "14 days since delivery, within 14 days"),
        (timedelta(days=15), {"days": 14}, FAIL, "15 days since delivery; the window is 14 days"),
        (timedelta(days=60), {"days": 60}, PASS, "60 days since delivery, within 60 days"),
    ],
    ids=["day0", "day29", "day30", "day31-1s", "day31", "day90", "14of14", "15of14", "60of60"],
)
def test_return_window(delivered_ago: timedelta, rules: dict | None, result: RuleResult, detail: str) -> None:
    v = run(facts(delivered_ago=delivered_ago), {"return_window": rules} if rules else None)
    o = outcome(v, "return_window")
    assert (o.result, o.detail) == (result, detail)
    assert v.decision.eligible is (result == PASS)
    assert v.decision.auto_approve is (result == PASS)


@pytest.mark.parametrize(("placed_ago", "result"), [(timedelta(days=30), PASS), (timedelta(days=31), FAIL)])
def test_return_window_counts_from_purchase_when_never_delivered(placed_ago: timedelta, result: RuleResult) -> None:
    o = outcome(run(facts(delivered_ago=None, placed_ago=placed_ago)), "return_window")
    assert o.result == result
    assert o.detail.startswith(f"{placed_ago.days} days since purchase (never delivered)")


def test_return_window_counts_from_delivery_not_purchase() -> None:
    o = outcome(run(facts(placed_ago=timedelta(days=60), delivered_ago=timedelta(days=10))), "return_window")
    assert (o.result, o.detail) == (PASS, "10 days since delivery, within 30 days")


@pytest.mark.parametrize(("delivered_ago", "result"), [(timedelta(days=30), PASS), (timedelta(days=31), FAIL)])
def test_return_window_is_the_same_instant_in_any_time_zone(delivered_ago: timedelta, result: RuleResult) -> None:
    # delivered 09:00+09:00 is 00:00 UTC: still the same number of whole days to ``now``
    f = facts(delivered_ago=delivered_ago)
    tokyo = timezone(timedelta(hours=9))
    f = msgspec.structs.replace(f, order=msgspec.structs.replace(f.order, delivered_at=f.order.delivered_at.astimezone(tokyo)))
    assert outcome(run(f), "return_window").result == result


@pytest.mark.parametrize(("case_type", "result"), [(EXCHANGE, FAIL), (REPAIR, INFO)])
def test_return_window_for_exchanges_and_repairs(case_type: CaseType, result: RuleResult) -> None:
    f = facts(item(reason=Reason.DEFECTIVE), case_type=case_type, photos=1, delivered_ago=timedelta(days=45))
    o = outcome(run(f), "return_window")
    assert o.result == result
    if case_type == REPAIR:
        assert o.detail == "repairs follow the warranty, not the return window"


# --------------------------------------------------------------------------- repair_warranty


@pytest.mark.parametrize(
    ("delivered_ago", "rules", "result", "detail"),
    [
        (timedelta(days=364), None, PASS, "364 days old, within the 365-day warranty"),
        (timedelta(days=365), None, PASS, "365 days old, within the 365-day warranty"),
        (timedelta(days=366), None, INFO, "366 days old, outside the 365-day warranty: a paid repair with a quote"),
        (timedelta(days=730), {"days": 730}, PASS, "730 days old, within the 730-day warranty"),
        (timedelta(days=731), {"days": 730}, INFO, "731 days old, outside the 730-day warranty: a paid repair with a quote"),
    ],
)
def test_repair_warranty(delivered_ago: timedelta, rules: dict | None, result: RuleResult, detail: str) -> None:
    f = facts(item(reason=Reason.DEFECTIVE), case_type=REPAIR, photos=1, delivered_ago=delivered_ago)
    v = run(f, {"repair_warranty": rules} if rules else None)
    o = outcome(v, "repair_warranty")
    assert (o.result, o.detail) == (result, detail)
    # outside the warranty is still a case (a paid repair), never a refusal
    assert v.decision.eligible
    assert not v.decision.auto_approve  # repairs are approved by an agent
    assert v.money.refund_total == 0


def test_repair_warranty_counts_from_purchase_when_never_delivered() -> None:
    f = facts(item(reason=Reason.DEFECTIVE), case_type=REPAIR, photos=1, delivered_ago=None, placed_ago=timedelta(days=366))
    assert outcome(run(f), "repair_warranty").result == INFO


@pytest.mark.parametrize("case_type", [RETURN, EXCHANGE])
def test_repair_warranty_is_not_evaluated_for_returns_or_exchanges(case_type: CaseType) -> None:
    o = outcome(run(facts(case_type=case_type, delivered_ago=timedelta(days=400))), "repair_warranty")
    assert (o.result, o.detail) == (INFO, "applies to repairs only")


# --------------------------------------------------------------------------- final_sale


@pytest.mark.parametrize(
    ("reason", "photos", "result", "detail"),
    [
        (Reason.CHANGED_MIND, 0, FAIL, "final-sale lines are returnable only when the merchant is responsible: L1"),
        (Reason.WRONG_SIZE, 0, FAIL, "final-sale lines are returnable only when the merchant is responsible: L1"),
        (Reason.OTHER, 0, FAIL, "final-sale lines are returnable only when the merchant is responsible: L1"),
        (Reason.DEFECTIVE, 1, PASS, "final-sale item, but the merchant is responsible"),
        (Reason.ARRIVED_LATE, 0, PASS, "final-sale item, but the merchant is responsible"),
    ],
)
def test_final_sale(reason: Reason, photos: int, result: RuleResult, detail: str) -> None:
    v = run(facts(item(final_sale=True, reason=reason), photos=photos))
    o = outcome(v, "final_sale")
    assert (o.result, o.detail) == (result, detail)
    assert v.decision.eligible is (result == PASS)


def test_final_sale_names_only_the_blocked_lines() -> None:
    f = facts(
        item("L1", final_sale=True, reason=Reason.WRONG_SIZE),
        item("L2", final_sale=False, reason=Reason.WRONG_SIZE),
        item("L3", final_sale=True, reason=Reason.CHANGED_MIND),
    )
    o = outcome(run(f), "final_sale")
    assert (o.result, o.detail) == (FAIL, "final-sale lines are returnable only when the merchant is responsible: L1, L3")


def test_no_final_sale_item() -> None:
    assert outcome(run(facts()), "final_sale").detail == "no final-sale item"


# --------------------------------------------------------------------------- quantity


@pytest.mark.parametrize(
    ("claimed", "purchased", "already", "result", "detail"),
    [
        (3, 3, 0, PASS, "every quantity is within what was bought and not yet claimed"),
        (4, 3, 0, FAIL, "line L1: 4 claimed, 3 left to claim"),
        (2, 5, 3, PASS, "every quantity is within what was bought and not yet claimed"),
        (3, 5, 3, FAIL, "line L1: 3 claimed, 2 left to claim"),
        (1, 2, 2, FAIL, "line L1: 1 claimed, 0 left to claim"),
        (0, 3, 0, FAIL, "line L1: 0 claimed, 3 left to claim"),
        (-1, 3, 0, FAIL, "line L1: -1 claimed, 3 left to claim"),
        (1, 2, 3, FAIL, "line L1: 1 claimed, 0 left to claim"),  # over-claimed elsewhere: never negative
    ],
)
def test_quantity(claimed: int, purchased: int, already: int, result: RuleResult, detail: str) -> None:
    v = run(facts(item(quantity=claimed, purchased=purchased, already=already, unit_price=100)))
    o = outcome(v, "quantity")
    assert o.result == result
    if result == PASS:
        assert o.detail == detail
    else:
        assert o.detail == "more than bought minus already returned or open: " + detail
    assert v.decision.eligible is (result == PASS)


def test_quantity_lists_every_line_over() -> None:
    f = facts(item("L1", quantity=2, purchased=1), item("L2", quantity=1, purchased=1), item("L3", quantity=0, purchased=1))
    o = outcome(run(f), "quantity")
    assert o.detail.endswith("line L1: 2 claimed, 1 left to claim; line L3: 0 claimed, 1 left to claim")


# --------------------------------------------------------------------------- photo_evidence


@pytest.mark.parametrize(
    ("reason", "photos", "rules", "result", "detail"),
    [
        (Reason.DEFECTIVE, 0, None, REVIEW, "defective needs at least 1 photo(s); 0 received"),
        (Reason.DEFECTIVE, 1, None, PASS, "1 photo(s) received for defective"),
        (Reason.DAMAGED_IN_TRANSIT, 0, None, REVIEW, "damaged_in_transit needs at least 1 photo(s); 0 received"),
        (Reason.NOT_AS_DESCRIBED, 0, None, REVIEW, "not_as_described needs at least 1 photo(s); 0 received"),
        (Reason.WRONG_ITEM, 0, None, REVIEW, "wrong_item needs at least 1 photo(s); 0 received"),
        (Reason.ARRIVED_LATE, 0, None, PASS, "no reason on this case needs photos"),
        (Reason.MISSING_PARTS, 0, None, PASS, "no reason on this case needs photos"),
        (Reason.CHANGED_MIND, 0, None, PASS, "no reason on this case needs photos"),
        (Reason.DEFECTIVE, 1, {"min_photos": 2}, REVIEW, "defective needs at least 2 photo(s); 1 received"),
        (Reason.DEFECTIVE, 2, {"min_photos": 2}, PASS, "2 photo(s) received for defective"),
        (Reason.CHANGED_MIND, 0, {"reasons": ["changed_mind"]}, REVIEW, "changed_mind needs at least 1 photo(s); 0 received"),
        (Reason.DEFECTIVE, 0, {"reasons": ["wrong_item"]}, PASS, "no reason on this case needs photos"),
    ],
)
def test_photo_evidence(reason: Reason, photos: int, rules: dict | None, result: RuleResult, detail: str) -> None:
    v = run(facts(item(reason=reason), photos=photos), {"photo_evidence": rules} if rules else None)
    o = outcome(v, "photo_evidence")
    assert (o.result, o.detail) == (result, detail)
    d = v.decision
    assert d.requires_photos is (result == REVIEW)
    assert d.photo_count == photos
    if result == REVIEW:
        assert d.requires_review and d.eligible and not d.auto_approve


def test_photo_evidence_lists_the_reasons_needing_photos_once_and_sorted() -> None:
    f = facts(item("L1", reason=Reason.WRONG_ITEM), item("L2", reason=Reason.DEFECTIVE), item("L3", reason=Reason.DEFECTIVE))
    assert outcome(run(f), "photo_evidence").detail == "defective, wrong_item needs at least 1 photo(s); 0 received"


def test_reevaluate_one_rule_on_new_facts() -> None:
    p = policy()
    assert p.reevaluate("photo_evidence", facts(item(reason=Reason.DEFECTIVE), photos=0)).result == REVIEW
    assert p.reevaluate("photo_evidence", facts(item(reason=Reason.DEFECTIVE), photos=1)).result == PASS
    assert policy({"photo_evidence": {"enabled": False}}).reevaluate("photo_evidence", facts()) is None


# --------------------------------------------------------------------------- return_shipping


@pytest.mark.parametrize(
    ("items", "photos", "shipping_refunded", "shares", "original", "refund"),
    [
        # customer pays the 500 label out of the refund
        ([item(reason=Reason.CHANGED_MIND)], 0, False, (Payer.CUSTOMER, 500, 0), 0, 2000 - 500),
        ([item(reason=Reason.WRONG_SIZE, unit_price=3000)], 0, False, (Payer.CUSTOMER, 500, 0), 0, 3000 - 500),
        # merchant pays the label and refunds the original shipping (700) once
        ([item(reason=Reason.DEFECTIVE)], 1, False, (Payer.MERCHANT, 0, 500), SHIPPING_TOTAL, 2000 + 700),
        ([item(reason=Reason.DEFECTIVE)], 1, True, (Payer.MERCHANT, 0, 500), 0, 2000),
        ([item(reason=Reason.ARRIVED_LATE)], 0, False, (Payer.MERCHANT, 0, 500), SHIPPING_TOTAL, 2000 + 700),
        # mixed reasons: the merchant is responsible for the whole box
        (
            [item("L1", reason=Reason.CHANGED_MIND), item("L2", reason=Reason.DEFECTIVE, unit_price=1000)],
            1,
            False,
            (Payer.MERCHANT, 0, 500),
            SHIPPING_TOTAL,
            2000 + 1000 + 700,
        ),
    ],
    ids=["changed_mind", "wrong_size", "defective", "defective-shipping-already-refunded", "arrived_late", "mixed"],
)
def test_return_shipping(
    items: list[ItemFacts], photos: int, shipping_refunded: bool, shares: tuple, original: int, refund: int
) -> None:
    v = run(facts(*items, photos=photos, shipping_refunded=shipping_refunded))
    assert v.money.return_shipping == ShippingShares(*shares)
    assert v.money.original_shipping_refund == original
    assert v.money.refund_total == refund
    o = outcome(v, "return_shipping")
    assert o.result == INFO
    if shares[0] == Payer.CUSTOMER:
        assert o.detail == "the customer pays the 5.00 EUR label, deducted from the refund"
    else:
        assert o.detail == "the merchant is responsible and pays the 5.00 EUR label"


@pytest.mark.parametrize(
    ("reason", "photos", "rules", "shares", "original", "refund"),
    [
        (Reason.CHANGED_MIND, 0, {"label_cost": 800}, (Payer.CUSTOMER, 800, 0), 0, 1200),
        (Reason.CHANGED_MIND, 0, {"label_cost": 0}, (Payer.CUSTOMER, 0, 0), 0, 2000),
        (Reason.DEFECTIVE, 1, {"refund_original_shipping": False}, (Payer.MERCHANT, 0, 500), 0, 2000),
    ],
)
def test_return_shipping_parameters(reason: Reason, photos: int, rules: dict, shares: tuple, original: int, refund: int) -> None:
    v = run(facts(item(reason=reason), photos=photos), {"return_shipping": rules})
    assert (v.money.return_shipping, v.money.original_shipping_refund, v.money.refund_total) == (
        ShippingShares(*shares),
        original,
        refund,
    )


@pytest.mark.parametrize(
    ("items", "photos", "shares", "original", "refund"),
    [
        # responsibility unknown: nobody pays the label yet, the refund is the items' full value
        ([item(reason=Reason.OTHER)], 0, (Payer.UNDECIDED, 0, 0, 500), 0, 2000),
        ([item("L1", reason=Reason.OTHER), item("L2", reason=Reason.WRONG_SIZE)], 0, (Payer.UNDECIDED, 0, 0, 500), 0, 4000),
        # a merchant-responsible item makes the merchant pay the one label whatever the other is
        ([item("L1", reason=Reason.OTHER), item("L2", reason=Reason.DEFECTIVE)], 1, (Payer.MERCHANT, 0, 500), 700, 4700),
        # the agent decided: the policy applies as for any reason of that side
        ([item(reason=Reason.OTHER, decided=Responsibility.CUSTOMER)], 0, (Payer.CUSTOMER, 500, 0), 0, 1500),
        ([item(reason=Reason.OTHER, decided=Responsibility.MERCHANT)], 0, (Payer.MERCHANT, 0, 500), 700, 2700),
    ],
    ids=["other", "other+customer", "other+merchant", "decided-customer", "decided-merchant"],
)
def test_reason_other_charges_nobody_the_label_until_an_agent_decides(
    items: list[ItemFacts], photos: int, shares: tuple, original: int, refund: int
) -> None:
    v = run(facts(*items, photos=photos))
    assert v.money.return_shipping == ShippingShares(*shares)
    assert (v.money.original_shipping_refund, v.money.refund_total) == (original, refund)
    if shares[0] == Payer.UNDECIDED:
        assert (
            outcome(v, "return_shipping").detail == "who pays the 5.00 EUR label waits for an agent to decide who is responsible"
        )


def test_an_undecided_exchange_charges_nobody_its_shipping() -> None:
    """Its ``undecided_share`` is what the customer may be charged: their part of the split."""
    v = run(facts(item(reason=Reason.OTHER, replacement_price=2000), case_type=EXCHANGE))
    assert v.money.return_shipping == ShippingShares(Payer.UNDECIDED, 0, 0, 500)
    odd = run(
        facts(item(reason=Reason.OTHER, replacement_price=2000), case_type=EXCHANGE),
        {"exchange_shipping": {"cost": {"EUR": 1001}, "customer_percent": 30}},
    )
    assert odd.money.return_shipping == ShippingShares(Payer.UNDECIDED, 0, 0, 300)
    assert (v.money.difference_due, v.money.refund_total) == (0, 0)
    decided = run(facts(item(reason=Reason.OTHER, replacement_price=2000, decided=Responsibility.CUSTOMER), case_type=EXCHANGE))
    assert decided.money.return_shipping == ShippingShares(Payer.SPLIT, 500, 500)
    assert decided.money.difference_due == 500


def test_a_decided_opened_other_item_pays_the_restocking_fee_only_when_the_customer_is_responsible() -> None:
    received = {"unit_price": 2000, "reason": Reason.OTHER, "condition": Condition.OPENED, "received": 1}
    rules = {"restocking_fee": {"percent": 10}}
    assert run(facts(item(**received)), rules).money.restocking_fee == 0
    assert run(facts(item(**received, decided=Responsibility.MERCHANT)), rules).money.restocking_fee == 0
    customer = run(facts(item(**received, decided=Responsibility.CUSTOMER)), rules).money
    assert (customer.restocking_fee, customer.refund_total) == (200, 2000 - 200 - 500)


def test_recomputing_the_money_refreshes_only_the_money_rules_outcomes() -> None:
    p = policy()
    undecided = p.evaluate(facts(item(reason=Reason.OTHER)))
    window = outcome(undecided, "return_window")
    # an agent's override of an eligibility rule stands; the decision's window is not re-judged
    overridden = msgspec.structs.replace(window, overridden_by="key_1", override_reason="loyal customer")
    decision = msgspec.structs.replace(
        undecided.decision, outcomes=[overridden if o.rule == "return_window" else o for o in undecided.decision.outcomes]
    )
    later = facts(item(reason=Reason.OTHER, decided=Responsibility.CUSTOMER), delivered_ago=timedelta(days=90))
    v = p.recompute_money(decision, later)
    assert [o.rule for o in v.decision.outcomes] == [o.rule for o in undecided.decision.outcomes]
    assert outcome(v, "return_window") == overridden
    assert outcome(v, "return_shipping").detail == "the customer pays the 5.00 EUR label, deducted from the refund"
    assert v.money.return_shipping == ShippingShares(Payer.CUSTOMER, 500, 0)
    assert v.money.refund_total == 1500


def test_a_label_dearer_than_the_item_never_makes_the_refund_negative() -> None:
    v = run(facts(item(unit_price=300)))
    assert v.money.return_shipping == ShippingShares(Payer.CUSTOMER, 500, 0)
    assert v.money.refund_total == 0


def test_repairs_never_refund_the_original_shipping() -> None:
    v = run(facts(item(reason=Reason.DEFECTIVE), case_type=REPAIR, photos=1))
    assert v.money.return_shipping == ShippingShares(Payer.MERCHANT, 0, 500)
    assert v.money.original_shipping_refund == 0
    assert v.money.refund_total == 0


def test_return_shipping_leaves_exchanges_to_exchange_shipping() -> None:
    o = outcome(run(facts(case_type=EXCHANGE)), "return_shipping")
    assert (o.result, o.detail) == (INFO, "exchanges follow exchange_shipping")


# --------------------------------------------------------------------------- exchange_shipping


@pytest.mark.parametrize(
    ("items", "photos", "rules", "shares", "difference_due", "refund"),
    [
        # customer-responsible: split, the odd minor unit to the merchant; the customer's share is due
        ([item(reason=Reason.WRONG_SIZE, replacement_price=2000)], 0, None, (Payer.SPLIT, 500, 500), 500, 0),
        ([item(reason=Reason.WRONG_SIZE, replacement_price=2000)], 0, {"cost": 1001}, (Payer.SPLIT, 500, 501), 500, 0),
        ([item(reason=Reason.WRONG_SIZE, replacement_price=2000)], 0, {"cost": 1}, (Payer.SPLIT, 0, 1), 0, 0),
        # another split: 30 % of 1001 = 300.3 → 300 to the customer, 701 to the merchant
        (
            [item(reason=Reason.WRONG_SIZE, replacement_price=2000)],
            0,
            {"cost": 1001, "customer_percent": 30},
            (Payer.SPLIT, 300, 701),
            300,
            0,
        ),
        ([item(reason=Reason.WRONG_SIZE, replacement_price=2000)], 0, {"customer_percent": 100}, (Payer.SPLIT, 1000, 0), 1000, 0),
        # merchant-responsible: the merchant pays it all
        ([item(reason=Reason.DEFECTIVE, replacement_price=2000)], 1, None, (Payer.MERCHANT, 0, 1000), 0, 0),
        ([item(reason=Reason.DEFECTIVE, replacement_price=2000)], 1, {"cost": 1001}, (Payer.MERCHANT, 0, 1001), 0, 0),
        (
            [item("L1", reason=Reason.WRONG_SIZE), item("L2", reason=Reason.WRONG_ITEM)],
            1,
            None,
            (Payer.MERCHANT, 0, 1000),
            0,
            0,
        ),
        # price differences: dearer 2500 − 2000 + 500 share = 1000 due
        ([item(reason=Reason.WRONG_SIZE, replacement_price=2500)], 0, None, (Payer.SPLIT, 500, 500), 1000, 0),
        # cheaper: 1500 − 2000 + 500 = 0 — the share eats the difference
        ([item(reason=Reason.WRONG_SIZE, replacement_price=1500)], 0, None, (Payer.SPLIT, 500, 500), 0, 0),
        # cheaper: 1000 − 2000 + 500 = −500 → 500 back
        ([item(reason=Reason.WRONG_SIZE, replacement_price=1000)], 0, None, (Payer.SPLIT, 500, 500), 0, 500),
        # merchant-responsible and cheaper: the whole difference back
        ([item(reason=Reason.DEFECTIVE, replacement_price=1500)], 1, None, (Payer.MERCHANT, 0, 1000), 0, 500),
        ([item(reason=Reason.DEFECTIVE, replacement_price=2600)], 1, None, (Payer.MERCHANT, 0, 1000), 600, 0),
        # quantity 2: (2 × 2300) − (2 × 2000) + 500 = 1100
        (
            [item(reason=Reason.WRONG_SIZE, quantity=2, replacement_price=2300)],
            0,
            None,
            (Payer.SPLIT, 500, 500),
            1100,
            0,
        ),
        # no replacement price: the same item at the same price
        ([item(reason=Reason.WRONG_SIZE)], 0, None, (Payer.SPLIT, 500, 500), 500, 0),
    ],
)
def test_exchange_shipping_and_price_difference(
    items: list[ItemFacts], photos: int, rules: dict | None, shares: tuple, difference_due: int, refund: int
) -> None:
    v = run(facts(*items, case_type=EXCHANGE, photos=photos), {"exchange_shipping": rules} if rules else None)
    assert v.money.return_shipping == ShippingShares(*shares)
    assert v.money.difference_due == difference_due
    assert v.money.refund_total == refund
    assert v.money.original_shipping_refund == 0
    assert v.money.restocking_fee == 0
    assert outcome(v, "exchange_shipping").result == INFO


def test_exchange_shipping_details() -> None:
    split = outcome(run(facts(case_type=EXCHANGE), {"exchange_shipping": {"cost": 1001}}), "exchange_shipping")
    assert split.detail == "shipping 10.01 EUR split: customer 5.00 EUR, merchant 5.01 EUR"
    merchant = outcome(run(facts(item(reason=Reason.DEFECTIVE), case_type=EXCHANGE, photos=1)), "exchange_shipping")
    assert merchant.detail == "the merchant is responsible and pays all 10.00 EUR shipping"
    not_exchange = outcome(run(facts()), "exchange_shipping")
    assert (not_exchange.result, not_exchange.detail) == (INFO, "applies to exchanges only")


# --------------------------------------------------------------------------- restocking_fee


@pytest.mark.parametrize(
    ("items", "case_type", "photos", "percent", "fee"),
    [
        # 15 % of 2000 = 300
        ([item(unit_price=2000, condition=Condition.OPENED, received=1)], RETURN, 0, 15, 300),
        # 15 % of 1990 = 298.5 → 299 (half-up)
        ([item(unit_price=1990, condition=Condition.OPENED, received=1)], RETURN, 0, 15, 299),
        # 15 % of 1989 = 298.35 → 298
        ([item(unit_price=1989, condition=Condition.OPENED, received=1)], RETURN, 0, 15, 298),
        # 12.5 % of 1990 = 248.75 → 249
        ([item(unit_price=1990, condition=Condition.OPENED, received=1)], RETURN, 0, 12.5, 249),
        # on what arrived: 1 of 2 claimed → 15 % of 1990
        ([item(unit_price=1990, quantity=2, condition=Condition.OPENED, received=1)], RETURN, 0, 15, 299),
        # 2 arrived: 15 % of 3980 = 597
        ([item(unit_price=1990, quantity=2, condition=Condition.OPENED, received=2)], RETURN, 0, 15, 597),
        # only on the customer-responsible opened line: 15 % of 1000
        (
            [
                item("L1", unit_price=1000, reason=Reason.CHANGED_MIND, condition=Condition.OPENED, received=1),
                item("L2", unit_price=2000, reason=Reason.DEFECTIVE, condition=Condition.OPENED, received=1),
            ],
            RETURN,
            1,
            15,
            150,
        ),
        ([item(unit_price=2000, condition=Condition.AS_NEW, received=1)], RETURN, 0, 15, 0),
        ([item(unit_price=2000, condition=Condition.USED, received=1)], RETURN, 0, 15, 0),
        ([item(unit_price=2000)], RETURN, 0, 15, 0),  # not received yet
        ([item(unit_price=2000, reason=Reason.DEFECTIVE, condition=Condition.OPENED, received=1)], RETURN, 1, 15, 0),
        ([item(unit_price=2000, reason=Reason.OTHER, condition=Condition.OPENED, received=1)], RETURN, 0, 15, 0),
        ([item(unit_price=2000, condition=Condition.OPENED, received=1)], EXCHANGE, 0, 15, 0),
        ([item(unit_price=2000, condition=Condition.OPENED, received=1)], RETURN, 0, 0, 0),  # the default
    ],
    ids=[
        "15%-2000",
        "15%-1990-half-up",
        "15%-1989-down",
        "12.5%",
        "received-1-of-2",
        "received-2",
        "mixed-lines",
        "as_new",
        "used",
        "not-received",
        "merchant-responsible",
        "other-reason",
        "exchange",
        "0%",
    ],
)
def test_restocking_fee(items: list[ItemFacts], case_type: CaseType, photos: int, percent: float, fee: int) -> None:
    v = run(facts(*items, case_type=case_type, photos=photos), {"restocking_fee": {"percent": percent}})
    assert v.money.restocking_fee == fee
    assert outcome(v, "restocking_fee").result == INFO


def test_restocking_fee_comes_off_the_refund_with_the_label() -> None:
    v = run(facts(item(unit_price=1990, condition=Condition.OPENED, received=1)), {"restocking_fee": {"percent": 15}})
    assert v.money.refund_total == 1990 - 299 - 500
    assert outcome(v, "restocking_fee").detail == "15% on opened items: 2.99 EUR"


def test_restocking_fee_details_when_not_charged() -> None:
    rules = {"restocking_fee": {"percent": 15}}
    assert outcome(run(facts(), rules), "restocking_fee").detail == "15% fee if a customer-responsible item arrives opened"
    assert outcome(run(facts(case_type=EXCHANGE), rules), "restocking_fee").detail == "no restocking fee"
    assert outcome(run(facts()), "restocking_fee").detail == "no restocking fee"


def test_restocking_fee_is_charged_on_the_graded_value() -> None:
    # opened graded at 80 %: 2000 → 1600; 15 % of 1600 = 240
    rules = {"restocking_fee": {"percent": 15}, "condition_grading": {"grades": {"opened": 80}}}
    v = run(facts(item(unit_price=2000, condition=Condition.OPENED, received=1)), rules)
    assert (v.money.items_total, v.money.restocking_fee, v.money.refund_total) == (1600, 240, 1600 - 240 - 500)


# --------------------------------------------------------------------------- keep_item


@pytest.mark.parametrize(
    ("items", "photos", "rules", "keep", "shares", "refund"),
    [
        # merchant-responsible, 300 < 500 label: refund 300 + original shipping 700, no label at all
        ([item(unit_price=300, reason=Reason.DEFECTIVE)], 1, None, True, (Payer.MERCHANT, 0, 0), 300 + 700),
        ([item(unit_price=499, reason=Reason.DEFECTIVE)], 1, None, True, (Payer.MERCHANT, 0, 0), 499 + 700),
        ([item(unit_price=500, reason=Reason.DEFECTIVE)], 1, None, False, (Payer.MERCHANT, 0, 500), 500 + 700),
        # the whole box counts: 2 × 300 = 600 ≥ 500
        (
            [item("L1", unit_price=300, reason=Reason.DEFECTIVE), item("L2", unit_price=300, reason=Reason.DEFECTIVE)],
            1,
            None,
            False,
            (Payer.MERCHANT, 0, 500),
            600 + 700,
        ),
        # customer-responsible: the item comes back (and the label eats the refund)
        ([item(unit_price=300, reason=Reason.CHANGED_MIND)], 0, None, False, (Payer.CUSTOMER, 500, 0), 0),
        # ... unless the merchant says keep_item applies to every case
        (
            [item(unit_price=300, reason=Reason.CHANGED_MIND)],
            0,
            {"keep_item": {"merchant_responsible_only": False}},
            True,
            (Payer.CUSTOMER, 0, 0),
            300,
        ),
        # a dearer label makes a dearer item not worth the trip
        (
            [item(unit_price=800, reason=Reason.DEFECTIVE)],
            1,
            {"return_shipping": {"label_cost": 1000}},
            True,
            (Payer.MERCHANT, 0, 0),
            800 + 700,
        ),
        (
            [item(unit_price=300, reason=Reason.DEFECTIVE)],
            1,
            {"keep_item": {"enabled": False}},
            False,
            (Payer.MERCHANT, 0, 500),
            1000,
        ),
    ],
    ids=["300", "499", "500", "two-lines-600", "customer", "customer-allowed", "label-1000", "disabled"],
)
def test_keep_item(items: list[ItemFacts], photos: int, rules: dict | None, keep: bool, shares: tuple, refund: int) -> None:
    v = run(facts(*items, photos=photos), rules)
    assert v.decision.keep_item is keep
    assert v.money.return_shipping == ShippingShares(*shares)
    assert v.money.refund_total == refund


def test_a_kept_undecided_item_leaves_no_shipping_waiting_for_a_decision() -> None:
    """No label is bought, so the payer is not ``undecided`` (which would promise an
    ``undecided_share``): the merchant forgoes the item and nobody pays anything."""
    v = run(facts(item(unit_price=300, reason=Reason.OTHER)), {"keep_item": {"merchant_responsible_only": False}})
    assert v.decision.keep_item
    assert v.money.return_shipping == ShippingShares(Payer.MERCHANT, 0, 0)


def test_keep_item_details() -> None:
    keep = outcome(run(facts(item(unit_price=300, reason=Reason.DEFECTIVE), photos=1)), "keep_item")
    assert (keep.result, keep.detail) == (PASS, "worth 3.00 EUR, less than the 5.00 EUR label: keep it")
    back = outcome(run(facts(item(unit_price=500, reason=Reason.DEFECTIVE), photos=1)), "keep_item")
    assert (back.result, back.detail) == (INFO, "worth 5.00 EUR, not less than the label: the item comes back")
    customer = outcome(run(facts(item(unit_price=300))), "keep_item")
    assert (customer.result, customer.detail) == (INFO, "the customer is responsible: the item comes back")


@pytest.mark.parametrize("case_type", [EXCHANGE, REPAIR])
def test_keep_item_applies_to_returns_only(case_type: CaseType) -> None:
    v = run(facts(item(unit_price=300, reason=Reason.DEFECTIVE), case_type=case_type, photos=1))
    assert not v.decision.keep_item
    assert outcome(v, "keep_item").detail == "applies to returns only"


# --------------------------------------------------------------------------- store_credit_bonus


@pytest.mark.parametrize(
    ("unit_price", "resolution", "percent", "refund", "store_credit", "bonus"),
    [
        # base 2000 − 500 label = 1500; + 10 % = 1650
        (2000, Resolution.STORE_CREDIT, 10, 0, 1650, 150),
        # base 1505; 10 % = 150.5 → 151 (half-up)
        (2005, Resolution.STORE_CREDIT, 10, 0, 1656, 151),
        (2000, Resolution.STORE_CREDIT, 0, 0, 1500, 0),
        (2000, Resolution.STORE_CREDIT, 12.5, 0, 1500 + 188, 188),  # 187.5 → 188
        (2000, Resolution.REFUND, 10, 1500, 0, 0),
    ],
)
def test_store_credit_bonus(
    unit_price: int, resolution: Resolution, percent: float, refund: int, store_credit: int, bonus: int
) -> None:
    v = run(facts(item(unit_price=unit_price), resolution=resolution), {"store_credit_bonus": {"percent": percent}})
    assert (v.money.refund_total, v.money.store_credit_total, v.money.store_credit_bonus) == (refund, store_credit, bonus)
    assert v.money.promised == refund  # store credit never goes through the gateway


def test_store_credit_bonus_details() -> None:
    rules = {"store_credit_bonus": {"percent": 10}}
    taken = outcome(run(facts(resolution=Resolution.STORE_CREDIT), rules), "store_credit_bonus")
    assert (taken.result, taken.detail) == (INFO, "store credit with a 10% bonus")
    offered = outcome(run(facts(), rules), "store_credit_bonus")
    assert (offered.result, offered.detail) == (INFO, "10% bonus when choosing store credit")


# --------------------------------------------------------------------------- auto_approve


@pytest.mark.parametrize(
    ("items", "photos", "customer", "rules", "auto_result", "auto_approve"),
    [
        ([item(unit_price=2000)], 0, CustomerHistory(), None, PASS, True),
        ([item(unit_price=10_000)], 0, CustomerHistory(), None, PASS, True),
        ([item(unit_price=10_001)], 0, CustomerHistory(), None, INFO, False),
        ([item("L1", unit_price=6000), item("L2", unit_price=4000)], 0, CustomerHistory(), None, PASS, True),
        ([item("L1", unit_price=6000), item("L2", unit_price=4001)], 0, CustomerHistory(), None, INFO, False),
        ([item(unit_price=5000, quantity=2)], 0, CustomerHistory(), None, PASS, True),
        ([item(unit_price=5000)], 0, CustomerHistory(), {"auto_approve": {"max_amount": 5000}}, PASS, True),
        ([item(unit_price=5001)], 0, CustomerHistory(), {"auto_approve": {"max_amount": 5000}}, INFO, False),
        # flagged customer, even with the review rule not looking at flags
        ([item()], 0, CustomerHistory(flagged=True), {"review": {"flagged_customers": False}}, INFO, False),
        # merchant-responsible or unknown: an agent approves
        ([item(reason=Reason.DEFECTIVE)], 1, CustomerHistory(), None, INFO, False),
        ([item("L1"), item("L2", reason=Reason.DEFECTIVE)], 1, CustomerHistory(), None, INFO, False),
        ([item(reason=Reason.OTHER)], 0, CustomerHistory(), {"review": {"enabled": False}}, INFO, False),
        # the rule passes, but a review elsewhere (high return rate) stops the auto-approval
        ([item()], 0, CustomerHistory(items_purchased_90d=3, items_returned_90d=2), None, PASS, False),
    ],
    ids=[
        "2000",
        "10000",
        "10001",
        "two-lines-10000",
        "two-lines-10001",
        "qty2-10000",
        "max5000-5000",
        "max5000-5001",
        "flagged",
        "merchant",
        "mixed",
        "other",
        "review-elsewhere",
    ],
)
def test_auto_approve(
    items: list[ItemFacts],
    photos: int,
    customer: CustomerHistory,
    rules: dict | None,
    auto_result: RuleResult,
    auto_approve: bool,
) -> None:
    v = run(facts(*items, photos=photos, customer=customer), rules)
    assert outcome(v, "auto_approve").result == auto_result
    assert v.decision.auto_approve is auto_approve


def test_auto_approve_needs_an_eligible_case() -> None:
    v = run(facts(delivered_ago=timedelta(days=31)))
    assert outcome(v, "auto_approve").result == PASS
    assert not v.decision.eligible
    assert not v.decision.auto_approve


def test_auto_approve_needs_the_photos() -> None:
    v = run(facts(item(reason=Reason.CHANGED_MIND), photos=0), {"photo_evidence": {"reasons": ["changed_mind"]}})
    assert outcome(v, "auto_approve").result == PASS
    assert v.decision.requires_photos and not v.decision.auto_approve


def test_auto_approve_details_and_repairs() -> None:
    assert outcome(run(facts()), "auto_approve").detail == "customer-responsible and within 100.00 EUR"
    over = outcome(run(facts(item(unit_price=10_001))), "auto_approve")
    assert over.detail == "100.01 EUR is over the 100.00 EUR auto-approval limit"
    repair = outcome(run(facts(case_type=REPAIR)), "auto_approve")
    assert (repair.result, repair.detail) == (INFO, "repairs are approved by an agent")


# --------------------------------------------------------------------------- review


@pytest.mark.parametrize(
    ("reason", "customer", "rules", "result", "detail"),
    [
        (Reason.OTHER, CustomerHistory(), None, REVIEW, "reason other needs an agent"),
        (Reason.CHANGED_MIND, CustomerHistory(3, 2), None, REVIEW, "customer returned 2 of 3 items in 90 days"),
        (Reason.CHANGED_MIND, CustomerHistory(3, 1), None, PASS, "nothing needs an agent's eye"),
        (Reason.CHANGED_MIND, CustomerHistory(4, 2), None, PASS, "nothing needs an agent's eye"),  # exactly 0.5
        (Reason.CHANGED_MIND, CustomerHistory(4, 3), None, REVIEW, "customer returned 3 of 4 items in 90 days"),
        (Reason.CHANGED_MIND, CustomerHistory(2, 2), None, PASS, "nothing needs an agent's eye"),  # below 3 purchases
        (Reason.CHANGED_MIND, CustomerHistory(0, 0), None, PASS, "nothing needs an agent's eye"),
        (
            Reason.CHANGED_MIND,
            CustomerHistory(2, 2),
            {"min_items_for_rate": 2},
            REVIEW,
            "customer returned 2 of 2 items in 90 days",
        ),
        (
            Reason.CHANGED_MIND,
            CustomerHistory(3, 1),
            {"max_return_rate": 0.25},
            REVIEW,
            "customer returned 1 of 3 items in 90 days",
        ),
        (Reason.CHANGED_MIND, CustomerHistory(flagged=True), None, REVIEW, "customer is flagged"),
        (Reason.CHANGED_MIND, CustomerHistory(flagged=True), {"flagged_customers": False}, PASS, "nothing needs an agent's eye"),
        (Reason.WRONG_SIZE, CustomerHistory(), {"reasons": ["wrong_size"]}, REVIEW, "reason wrong_size needs an agent"),
        (Reason.OTHER, CustomerHistory(), {"reasons": []}, PASS, "nothing needs an agent's eye"),
        (
            Reason.OTHER,
            CustomerHistory(3, 3, flagged=True),
            None,
            REVIEW,
            "reason other needs an agent; customer returned 3 of 3 items in 90 days; customer is flagged",
        ),
    ],
)
def test_review(reason: Reason, customer: CustomerHistory, rules: dict | None, result: RuleResult, detail: str) -> None:
    v = run(facts(item(reason=reason), customer=customer), {"review": rules} if rules else None)
    o = outcome(v, "review")
    assert (o.result, o.agent_detail or o.detail) == (result, detail)
    assert "customer" not in o.detail, "the customer's history is told to agents only"
    assert v.decision.requires_review is (result == REVIEW)
    if result == REVIEW:
        assert not v.decision.auto_approve


def test_any_rule_saying_review_makes_the_case_need_review() -> None:
    v = run(facts(item(condition=Condition.DAMAGED, received=1)))
    assert outcome(v, "review").result == PASS
    assert outcome(v, "condition_grading").result == REVIEW
    assert v.decision.requires_review and not v.decision.auto_approve


# --------------------------------------------------------------------------- condition_grading


GRADES = DEFAULT_POLICY["rules"]["condition_grading"]["grades"]


@pytest.mark.parametrize(
    ("unit_price", "condition", "received", "graded", "grades", "result", "value"),
    [
        (2000, None, None, None, None, INFO, 2000),
        (2000, Condition.AS_NEW, 1, None, None, INFO, 2000),
        (2000, Condition.OPENED, 1, None, None, INFO, 2000),
        (2000, Condition.USED, 1, None, None, INFO, 2000),
        (2000, Condition.DEFECTIVE, 1, None, None, INFO, 2000),
        (2000, Condition.MISSING, 0, None, None, INFO, 0),
        (2000, Condition.MISSING, 1, None, None, INFO, 0),  # graded at 0 % whatever the count
        (2000, Condition.DAMAGED, 1, None, None, REVIEW, 0),  # null grade: an agent decides
        (2000, Condition.DAMAGED, 1, 40, None, INFO, 800),  # the agent's 40 %
        (2000, Condition.DAMAGED, 1, 0, None, INFO, 0),
        (2000, Condition.USED, 1, None, {**GRADES, "used": 70}, INFO, 1400),
        (2000, Condition.USED, 1, 10, {**GRADES, "used": 70}, INFO, 1400),  # the policy's grade wins
        (2000, Condition.OPENED, 1, 55, {**GRADES, "opened": None}, INFO, 1100),
        (2000, Condition.OPENED, 1, None, {**GRADES, "opened": None}, REVIEW, 0),
        (1999, Condition.USED, 1, None, {**GRADES, "used": 33}, INFO, 660),  # 659.67 → 660
        (1999, Condition.USED, 2, None, {**GRADES, "used": 50}, INFO, 1999),  # 3998 / 2
        (2001, Condition.USED, 1, None, {**GRADES, "used": 50}, INFO, 1001),  # 1000.5 → 1001
    ],
)
def test_condition_grading(
    unit_price: int,
    condition: Condition | None,
    received: int | None,
    graded: int | None,
    grades: dict | None,
    result: RuleResult,
    value: int,
) -> None:
    f = facts(
        item(unit_price=unit_price, quantity=2 if received == 2 else 1, condition=condition, received=received, graded=graded)
    )
    v = run(f, {"condition_grading": {"grades": grades}} if grades else None)
    assert outcome(v, "condition_grading").result == result
    assert v.money.items_total == value


def test_condition_grading_details() -> None:
    assert outcome(run(facts()), "condition_grading").detail == "graded when the items arrive"
    f = facts(item("L1", condition=Condition.MISSING, received=0), item("L2", condition=Condition.USED, received=1))
    assert outcome(run(f), "condition_grading").detail == "L1 missing: 0%; L2 used: 100%"
    damaged = outcome(run(facts(item("L7", condition=Condition.DAMAGED, received=1))), "condition_grading")
    assert damaged.detail == "an agent decides the value of L7; L7 damaged: 0%"


def test_a_merchant_responsible_parcel_that_came_back_empty_refunds_nothing() -> None:
    """Not even the original shipping: an empty box would otherwise collect it."""
    v = run(facts(item(reason=Reason.DEFECTIVE, condition=Condition.MISSING, received=0), photos=1))
    assert (v.money.items_total, v.money.original_shipping_refund, v.money.refund_total) == (0, 0, 0)
    assert outcome(v, "return_shipping").detail.endswith("nothing came back")


def test_one_merchant_responsible_item_back_of_two_refunds_the_shipping_too() -> None:
    v = run(
        facts(
            item("L1", reason=Reason.DEFECTIVE, condition=Condition.MISSING, received=0),
            item("L2", reason=Reason.DEFECTIVE, condition=Condition.DEFECTIVE, received=1),
            photos=1,
        )
    )
    assert (v.money.items_total, v.money.refund_total) == (2000, 2000 + SHIPPING_TOTAL)


# --------------------------------------------------------------------------- currencies


def test_jpy_has_no_minor_unit() -> None:
    # ¥1500 item, the default ¥800 label paid by the customer → ¥700 back
    v = run(facts(item(unit_price=1500), currency="JPY"))
    assert (v.money.currency, v.money.items_total, v.money.refund_total) == ("JPY", 1500, 700)
    assert outcome(v, "return_shipping").detail == "the customer pays the 800 JPY label, deducted from the refund"
    assert outcome(v, "auto_approve").detail == "customer-responsible and within 16000 JPY"


def test_jpy_odd_yen_of_an_exchange_split_goes_to_the_merchant() -> None:
    v = run(
        facts(item(unit_price=1500, reason=Reason.WRONG_SIZE), case_type=EXCHANGE, currency="JPY"),
        {"exchange_shipping": {"cost": 1001}},
    )
    assert v.money.return_shipping == ShippingShares(Payer.SPLIT, 500, 501)
    assert outcome(v, "exchange_shipping").detail == "shipping 1001 JPY split: customer 500 JPY, merchant 501 JPY"
    assert v.money.difference_due == 500


def test_jpy_restocking_fee_and_keep_item_details() -> None:
    # 15 % of ¥1500 = ¥225
    v = run(
        facts(item(unit_price=1500, condition=Condition.OPENED, received=1), currency="JPY"), {"restocking_fee": {"percent": 15}}
    )
    assert v.money.restocking_fee == 225
    assert outcome(v, "restocking_fee").detail == "15% on opened items: 225 JPY"
    assert v.money.refund_total == 1500 - 225 - 800
    keep = run(facts(item(unit_price=300, reason=Reason.DEFECTIVE), currency="JPY", photos=1))
    assert outcome(keep, "keep_item").detail == "worth 300 JPY, less than the 800 JPY label: keep it"


def test_jpy_cap_detail() -> None:
    v = run(facts(item(unit_price=1500), currency="JPY", remaining=699))
    assert v.money.refund_total == 699
    assert outcome(v, CAPTURED_LIMIT).detail.startswith("capped from 700 JPY to 699 JPY")


def test_kwd_has_three_decimals() -> None:
    kwd = {  # the defaults do not price KWD
        "return_shipping": {"label_cost": {"KWD": 500}},
        "exchange_shipping": {"cost": {"KWD": 1001}},
        "auto_approve": {"max_amount": {"KWD": 10_000}},
    }
    v = run(facts(item(unit_price=12_345), currency="KWD"), kwd)
    assert outcome(v, "return_shipping").detail == "the customer pays the 0.500 KWD label, deducted from the refund"
    assert outcome(v, "auto_approve").detail == "12.345 KWD is over the 10.000 KWD auto-approval limit"
    assert v.money.refund_total == 12_345 - 500
    split = run(facts(item(unit_price=12_345), case_type=EXCHANGE, currency="KWD"), kwd)
    assert outcome(split, "exchange_shipping").detail == "shipping 1.001 KWD split: customer 0.500 KWD, merchant 0.501 KWD"


def submitted(document: dict[str, Any]) -> Policy:
    return load_policy(document, 1, RuleRegistry(), submitted=True)


EUR_AND_JPY = {
    "rules": {
        "return_shipping": {"label_cost": {"EUR": 500, "JPY": 800}},
        "exchange_shipping": {"cost": {"EUR": 1000, "JPY": 1600}},
        "auto_approve": {"max_amount": {"EUR": 10_000, "JPY": 16_000}},
    }
}


def test_policy_amounts_are_read_in_the_order_s_currency() -> None:
    p = submitted(EUR_AND_JPY)
    eur = p.evaluate(facts(item(unit_price=2000), currency="EUR")).money
    jpy = p.evaluate(facts(item(unit_price=2000), currency="JPY")).money
    assert (eur.return_shipping, eur.refund_total) == (ShippingShares(Payer.CUSTOMER, 500, 0), 1500)
    assert (jpy.return_shipping, jpy.refund_total) == (ShippingShares(Payer.CUSTOMER, 800, 0), 1200)
    exchange = p.evaluate(facts(item(reason=Reason.WRONG_SIZE, replacement_price=2000), case_type=EXCHANGE, currency="JPY"))
    assert exchange.money.return_shipping == ShippingShares(Payer.SPLIT, 800, 800)
    limit = outcome(p.evaluate(facts(item(unit_price=16_001), currency="JPY")), "auto_approve")
    assert (limit.result, limit.detail) == (INFO, "16001 JPY is over the 16000 JPY auto-approval limit")


def test_an_order_in_a_currency_the_policy_does_not_price_is_refused_naming_every_amount() -> None:
    eur_only = {
        "rules": {
            name: {key: {"EUR": amounts["EUR"]} for key, amounts in params.items()}
            for name, params in EUR_AND_JPY["rules"].items()
        }
    }
    p = submitted(eur_only)
    assert p.evaluate(facts(currency="EUR")).money.return_shipping == ShippingShares(Payer.CUSTOMER, 500, 0)
    with pytest.raises(PolicyCurrencyUnpriced) as unpriced:
        p.evaluate(facts(currency="JPY"))
    assert unpriced.value.code == "policy_currency_unpriced" and unpriced.value.extra["currency"] == "JPY"
    assert unpriced.value.errors == [
        {"field": "rules.return_shipping.label_cost", "message": "no amount for JPY"},
        {"field": "rules.exchange_shipping.cost", "message": "no amount for JPY"},
        {"field": "rules.auto_approve.max_amount", "message": "no amount for JPY"},
    ]
    # a rule that is switched off needs no price
    off = submitted({"rules": {**eur_only["rules"], "auto_approve": {"enabled": False}, "exchange_shipping": {"enabled": False}}})
    with pytest.raises(PolicyCurrencyUnpriced) as only_the_label:
        off.evaluate(facts(currency="JPY"))
    assert [e["field"] for e in only_the_label.value.errors] == ["rules.return_shipping.label_cost"]


def test_a_currency_the_defaults_do_not_price_is_refused_not_charged_in_another_s_minor_units() -> None:
    with pytest.raises(PolicyCurrencyUnpriced) as unpriced:
        run(facts(currency="KWD"))
    assert "rules.return_shipping.label_cost" in [e["field"] for e in unpriced.value.errors]


def test_a_given_amount_table_replaces_the_default_table_whole() -> None:
    p = submitted({"rules": {"return_shipping": {"label_cost": {"JPY": 900}}}})
    assert p.document["rules"]["return_shipping"]["label_cost"] == {"JPY": 900}
    assert p.document["rules"]["auto_approve"]["max_amount"]["EUR"] == 10_000  # the other defaults stand
    assert p.evaluate(facts(currency="JPY")).money.return_shipping.customer_share == 900
    with pytest.raises(PolicyCurrencyUnpriced):
        p.evaluate(facts(currency="EUR"))


def test_a_bare_amount_needs_the_document_s_currency() -> None:
    with pytest.raises(PolicyInvalid) as bare:
        submitted({"rules": {"return_shipping": {"label_cost": 700}}})
    assert [e["field"] for e in bare.value.errors] == ["rules.return_shipping.label_cost"]
    assert "per currency" in bare.value.errors[0]["message"]
    p = submitted({"currency": "GBP", "rules": {"return_shipping": {"label_cost": 700}, "auto_approve": {"max_amount": 5000}}})
    assert p.document == {"rules": p.document["rules"]}  # the bare amounts are tables now
    assert p.document["rules"]["return_shipping"]["label_cost"] == {"GBP": 700}
    assert p.document["rules"]["auto_approve"]["max_amount"] == {"GBP": 5000}
    assert p.evaluate(facts(currency="GBP")).money.return_shipping.customer_share == 700
    with pytest.raises(PolicyCurrencyUnpriced):
        p.evaluate(facts(currency="EUR"))


def test_a_stored_bare_amount_keeps_applying_to_any_currency() -> None:
    """A policy stored before amounts were per currency: read as it was installed."""
    legacy = load_policy({"rules": {"return_shipping": {"label_cost": 700}}}, 3, RuleRegistry())
    assert legacy.document["rules"]["return_shipping"]["label_cost"] == {"*": 700}
    for currency in ("EUR", "JPY"):
        assert legacy.evaluate(facts(currency=currency)).money.return_shipping.customer_share == 700
    # its shown document is not accepted back as it is: an admin must price each currency
    with pytest.raises(PolicyInvalid) as shown:
        submitted(legacy.document)
    assert shown.value.errors == [
        {"field": "rules.return_shipping.label_cost", "message": "'*' is not an ISO 4217 currency code"}
    ]


def test_a_case_keeps_the_amounts_it_was_decided_under() -> None:
    """The decision records its amounts; worked out again under it, a later table does not count."""
    opened = submitted(EUR_AND_JPY).evaluate(facts(currency="JPY"))
    assert opened.decision.prices == {
        "rules.return_shipping.label_cost": 800,
        "rules.exchange_shipping.cost": 1600,
        "rules.auto_approve.max_amount": 16_000,
    }
    eur_only = submitted({"rules": {"return_shipping": {"label_cost": {"EUR": 400}}}})
    again = eur_only.evaluate(facts(currency="JPY"), under=opened.decision)
    assert (again.money.return_shipping.customer_share, again.decision.prices) == (800, opened.decision.prices)
    assert eur_only.recompute_money(opened.decision, facts(currency="JPY")).money.refund_total == 2000 - 800


def test_a_decision_recorded_before_amounts_were_per_currency_keeps_that_time_s_amounts() -> None:
    """No recorded prices: the document's own (bare) amounts in any currency, and the old single
    defaults (500 / 1000 / 10000) for what it left out; never refused for an unpriced currency."""
    before = msgspec.structs.replace(run(facts()).decision, prices={})
    legacy = load_policy({"rules": {"return_shipping": {"label_cost": 700}}}, 3, RuleRegistry())
    built_in = load_policy({"rules": {}}, 0, RuleRegistry())
    assert legacy.decided_prices(before, "ZAR") == {
        "rules.return_shipping.label_cost": 700,
        "rules.exchange_shipping.cost": 1000,
        "rules.auto_approve.max_amount": 10_000,
    }
    assert built_in.evaluate(facts(currency="JPY"), under=before).money.return_shipping.customer_share == 500
    assert built_in.evaluate(facts(currency="KWD"), under=before).money.refund_total == 2000 - 500


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ({"EURO": 500}, "'EURO' is not an ISO 4217 currency code"),
        ({"eur": 500}, "'eur' is not an ISO 4217 currency code"),
        ({"EUR": -1}, "EUR: from 0 to 10^13 minor units"),
        ({"EUR": 10**13 + 1}, "EUR: from 0 to 10^13 minor units"),
        ({"EUR": 5.5}, "EUR: a whole number of the currency's minor units"),
        ({"EUR": "500"}, "EUR: a whole number of the currency's minor units"),
        ({"EUR": True}, "EUR: a whole number of the currency's minor units"),
        ({}, "price at least one currency"),
        ("500", "amounts per currency, such as {EUR = 500, JPY = 800}"),
        ([500], "amounts per currency, such as {EUR = 500, JPY = 800}"),
        (True, "amounts per currency, such as {EUR = 500, JPY = 800}"),
        (-5, "from 0 to 10^13 minor units"),
    ],
)
def test_a_malformed_amount_table_is_refused_naming_the_parameter(amount: Any, message: str) -> None:
    for document in (
        {"rules": {"auto_approve": {"max_amount": amount}}},
        {"currency": "EUR", "rules": {"auto_approve": {"max_amount": amount}}},
    ):
        with pytest.raises(PolicyInvalid) as invalid:
            submitted(document)
        assert invalid.value.errors == [{"field": "rules.auto_approve.max_amount", "message": message}]


@pytest.mark.parametrize("currency", ["EURO", "eur", 978, "", ["EUR"], {"EUR": 1}])
def test_the_document_s_currency_is_an_iso_code(currency: Any) -> None:
    with pytest.raises(PolicyInvalid) as invalid:
        submitted({"currency": currency, "rules": {}})
    assert [e["field"] for e in invalid.value.errors] == ["currency"]


class MinimumParams(RuleParams, frozen=True):
    minimum: Prices = msgspec.field(default_factory=lambda: {"EUR": 1000})


class Minimum(Rule):
    """A custom rule with an amount: it is priced per currency like the built-ins' amounts."""

    name = "minimum"
    Params = MinimumParams

    def evaluate(self, facts: Facts, money: MoneyDraft) -> RuleOutcome:
        floor = self.price("minimum", money.currency)
        return self.outcome(PASS if money.items_total >= floor else FAIL, f"at least {money.show(floor)}")


def test_a_custom_rule_s_amounts_are_per_currency_too() -> None:
    registry = RuleRegistry({"minimum": Minimum})
    with pytest.raises(PolicyInvalid) as bare:
        load_policy({"rules": {"minimum": {"minimum": 300}}}, 1, registry, submitted=True)
    assert [e["field"] for e in bare.value.errors] == ["rules.minimum.minimum"]
    p = load_policy({"rules": {"minimum": {"minimum": {"JPY": 3000}}}}, 1, registry, submitted=True)
    assert outcome(p.evaluate(facts(item(unit_price=2999), currency="JPY")), "minimum").result == FAIL
    with pytest.raises(PolicyCurrencyUnpriced) as unpriced:
        p.evaluate(facts(currency="EUR"))
    assert [e["field"] for e in unpriced.value.errors] == ["rules.minimum.minimum"]
    # called on its own, outside the engine's check, a rule still refuses an unpriced currency
    with pytest.raises(PolicyCurrencyUnpriced):
        Minimum(MinimumParams()).evaluate(facts(currency="JPY"), MoneyDraft(currency="JPY", item_values={}))


def test_an_effective_document_is_accepted_back_unchanged() -> None:
    for document in (EUR_AND_JPY, {"currency": "EUR", "rules": {"return_shipping": {"label_cost": 650}}}, DEFAULT_POLICY):
        shown = submitted(document).document
        assert submitted(shown).document == shown


# --------------------------------------------------------------------------- the captured cap


@pytest.mark.parametrize(
    ("items", "case_type", "resolution", "remaining", "refund", "store_credit", "capped_from"),
    [
        ([item(unit_price=2000)], RETURN, None, 1000, 1000, 0, 1500),
        ([item(unit_price=2000)], RETURN, None, 1, 1, 0, 1500),
        ([item(unit_price=2000)], RETURN, None, 0, 0, 0, 1500),
        ([item(unit_price=2000)], RETURN, None, 1500, 1500, 0, None),  # exactly what is owed
        ([item(unit_price=2000)], RETURN, None, 1499, 1499, 0, 1500),
        ([item(unit_price=300)], RETURN, None, 0, 0, 0, None),  # nothing owed: nothing capped
        ([item(unit_price=2000)], RETURN, Resolution.STORE_CREDIT, 1000, 0, 1000, 1500),
        # cheaper replacement: 1000 − 2000 + 500 = 500 owed, 200 left
        ([item(reason=Reason.WRONG_SIZE, replacement_price=1000)], EXCHANGE, None, 200, 200, 0, 500),
    ],
)
def test_never_more_than_the_order_has_left(
    items: list[ItemFacts],
    case_type: CaseType,
    resolution: Resolution | None,
    remaining: int,
    refund: int,
    store_credit: int,
    capped_from: int | None,
) -> None:
    v = run(facts(*items, case_type=case_type, resolution=resolution, remaining=remaining))
    assert v.money.refund_total == refund
    assert v.money.store_credit_total == store_credit
    capped = [o for o in v.decision.outcomes if o.rule == CAPTURED_LIMIT]
    if capped_from is None:
        assert capped == []
    else:
        assert len(capped) == 1
        assert capped[0].result == INFO
        assert capped[0].detail.startswith(f"capped from {eur(capped_from)} to {eur(remaining)}")
        assert v.decision.outcomes[-1] is capped[0]
    # the cap is information, not a refusal
    assert v.decision.eligible


def test_the_store_credit_bonus_is_on_the_capped_amount() -> None:
    v = run(facts(resolution=Resolution.STORE_CREDIT, remaining=1000), {"store_credit_bonus": {"percent": 10}})
    assert (v.money.refund_total, v.money.store_credit_bonus, v.money.store_credit_total) == (0, 100, 1100)


# --------------------------------------------------------------------------- policy documents


def test_the_default_document() -> None:
    assert list(DEFAULT_POLICY["rules"]) == BUILT_IN_ORDER
    rules = DEFAULT_POLICY["rules"]
    assert rules["return_window"] == {"enabled": True, "days": 30}
    assert rules["repair_warranty"] == {"enabled": True, "days": 365}
    assert rules["photo_evidence"]["min_photos"] == 1
    assert sorted(rules["photo_evidence"]["reasons"]) == ["damaged_in_transit", "defective", "not_as_described", "wrong_item"]
    assert rules["restocking_fee"]["percent"] == 0
    assert rules["store_credit_bonus"]["percent"] == 0
    label_cost = rules["return_shipping"]["label_cost"]
    assert {"EUR", "USD", "GBP", "JPY", "CNY"} <= set(label_cost)
    assert (label_cost["EUR"], label_cost["USD"], label_cost["GBP"], label_cost["JPY"], label_cost["CNY"]) == (
        500,
        500,
        500,
        800,
        4000,
    )
    assert rules["exchange_shipping"]["cost"] == {currency: 2 * cost for currency, cost in label_cost.items()}
    assert rules["exchange_shipping"]["customer_percent"] == 50
    assert rules["auto_approve"]["max_amount"] == {currency: 20 * cost for currency, cost in label_cost.items()}
    assert rules["review"]["reasons"] == ["other"]
    assert load_policy(DEFAULT_POLICY, 0, RuleRegistry()).document == DEFAULT_POLICY


def test_a_partial_document_merges_over_the_defaults() -> None:
    before = copy.deepcopy(DEFAULT_POLICY)
    p = policy({"return_window": {"days": 14}})
    expected = copy.deepcopy(DEFAULT_POLICY)
    expected["rules"]["return_window"]["days"] = 14
    assert p.document == expected
    assert [r.name for r in p.rules] == BUILT_IN_ORDER
    assert before == DEFAULT_POLICY  # the defaults are not touched
    v = p.evaluate(facts(delivered_ago=timedelta(days=15)))
    assert outcome(v, "return_window").result == FAIL
    assert len(v.decision.outcomes) == len(BUILT_IN_ORDER)


def test_an_empty_document_is_the_default_policy() -> None:
    assert policy().document == DEFAULT_POLICY


def test_the_effective_document_loads_back_to_itself() -> None:
    p = policy({"restocking_fee": {"percent": 12.5}, "keep_item": {"enabled": False}})
    assert load_policy(p.document, 2, RuleRegistry()).document == p.document


@pytest.mark.parametrize("rule", BUILT_IN_ORDER)
def test_a_disabled_rule_has_no_outcome(rule: str) -> None:
    p = policy({rule: {"enabled": False}})
    assert p.document["rules"][rule]["enabled"] is False
    v = p.evaluate(facts())
    names = [o.rule for o in v.decision.outcomes]
    assert rule not in names
    assert names == [n for n in BUILT_IN_ORDER if n != rule]


def test_disabled_rules_change_nothing() -> None:
    # no photo rule: no photo requirement; no auto_approve rule: never auto-approved;
    # no return_shipping: the merchant's label costs nothing and the original shipping stays
    off = {"photo_evidence": {"enabled": False}, "return_shipping": {"enabled": False}}
    v = run(facts(item(reason=Reason.DEFECTIVE), photos=0), off)
    assert not v.decision.requires_photos and not v.decision.requires_review
    assert v.money.return_shipping == ShippingShares(Payer.CUSTOMER, 0, 0)
    assert v.money.refund_total == 2000
    assert not run(facts(), {"auto_approve": {"enabled": False}}).decision.auto_approve
    # no return window: a year-old delivery is fine
    assert run(facts(delivered_ago=timedelta(days=365)), {"return_window": {"enabled": False}}).decision.eligible


@pytest.mark.parametrize(
    ("document", "fields"),
    [
        ({"rules": {"nope": {}}}, ["rules.nope"]),
        ({"rules": {"return_window": {"days": "thirty"}}}, ["rules.return_window"]),
        ({"rules": {"return_window": {"days": 14.5}}}, ["rules.return_window"]),
        ({"rules": {"return_window": {"days": True}}}, ["rules.return_window"]),
        ({"rules": {"return_window": {"weeks": 2}}}, ["rules.return_window"]),
        ({"rules": {"return_window": {"enabled": "no"}}}, ["rules.return_window"]),
        ({"rules": {"return_window": 14}}, ["rules.return_window"]),
        ({"rules": {"return_window": None}}, ["rules.return_window"]),
        ({"rules": {"photo_evidence": {"reasons": ["sunspots"]}}}, ["rules.photo_evidence"]),
        ({"rules": {"condition_grading": {"grades": {"soggy": 50}}}}, ["rules.condition_grading"]),
        ({"rules": {"restocking_fee": {"percent": "15%"}}}, ["rules.restocking_fee"]),
        ({"rules": {"nope": {}, "return_window": {"days": "x"}}}, ["rules.return_window", "rules.nope"]),
        ([], ["rules"]),
        ("rules", ["rules"]),
        (None, ["rules"]),
        ({}, ["rules"]),
        ({"rules": []}, ["rules"]),
        ({"rules": {}, "version": 2}, ["rules"]),
        ({"return_window": {"days": 14}}, ["rules"]),
    ],
)
def test_invalid_documents_name_the_field(document: Any, fields: list[str]) -> None:
    with pytest.raises(PolicyInvalid) as raised:
        load_policy(document, 1, RuleRegistry())
    errors = raised.value.errors
    assert [e["field"] for e in errors] == fields
    assert all(e["message"] for e in errors)
    for field in fields:
        assert field in str(raised.value)


def test_unknown_rule_message_and_bad_parameter_message() -> None:
    with pytest.raises(PolicyInvalid) as raised:
        load_policy({"rules": {"nope": {}}}, 1, RuleRegistry())
    assert raised.value.errors == [{"field": "rules.nope", "message": "unknown rule 'nope'"}]
    with pytest.raises(PolicyInvalid) as raised:
        load_policy({"rules": {"return_window": {"weeks": 2}}}, 1, RuleRegistry())
    assert "weeks" in raised.value.errors[0]["message"]
    with pytest.raises(PolicyInvalid) as raised:
        load_policy({"rules": {"return_window": {"days": "thirty"}}}, 1, RuleRegistry())
    assert "days" in raised.value.errors[0]["message"]


# --------------------------------------------------------------------------- every decision


CASES = {
    "plain": facts(),
    "late": facts(delivered_ago=timedelta(days=31)),
    "defective-no-photo": facts(item(reason=Reason.DEFECTIVE)),
    "mixed": facts(item("L1"), item("L2", reason=Reason.DEFECTIVE, final_sale=True), photos=2),
    "other": facts(item(reason=Reason.OTHER)),
    "final-sale": facts(item(final_sale=True)),
    "received-opened": facts(item(condition=Condition.OPENED, received=1)),
    "received-damaged": facts(item(condition=Condition.DAMAGED, received=1)),
    "keep": facts(item(unit_price=300, reason=Reason.DEFECTIVE), photos=1),
    "store-credit": facts(resolution=Resolution.STORE_CREDIT),
    "exchange": facts(item(replacement_price=2500), case_type=EXCHANGE),
    "repair": facts(item(reason=Reason.DEFECTIVE), case_type=REPAIR, photos=1, delivered_ago=timedelta(days=400)),
    "never-delivered": facts(delivered_ago=None),
    "flagged": facts(customer=CustomerHistory(10, 9, flagged=True)),
    "jpy": facts(item(unit_price=1500), currency="JPY"),
    "capped": facts(remaining=100),
    "too-many": facts(item(quantity=2, purchased=1)),
}
DOCUMENTS = {
    "default": {},
    "tuned": {"return_window": {"days": 14}, "restocking_fee": {"percent": 15}, "store_credit_bonus": {"percent": 10}},
    "some-off": {"keep_item": {"enabled": False}, "review": {"enabled": False}, "quantity": {"enabled": False}},
}


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("case", CASES)
def test_every_decision_has_one_outcome_per_enabled_rule(case: str, document: str) -> None:
    p = policy(DOCUMENTS[document], version=7)
    v = p.evaluate(CASES[case])
    enabled = [name for name, params in p.document["rules"].items() if params["enabled"]]
    names = [o.rule for o in v.decision.outcomes]
    capped = names[len(enabled) :]
    assert names[: len(enabled)] == enabled
    assert capped in ([], [CAPTURED_LIMIT])
    assert (capped == [CAPTURED_LIMIT]) is (case == "capped")
    assert all(o.detail.strip() for o in v.decision.outcomes)
    assert all(o.overridden_by is None for o in v.decision.outcomes)
    assert v.decision.policy_version == 7
    assert v.money.currency == CASES[case].order.currency
    assert v.money.refund_total >= 0 and v.money.refund_total <= CASES[case].order_remaining_refundable
    # the flags follow from the outcomes
    results = [o.result for o in v.decision.outcomes]
    assert v.decision.eligible is (FAIL not in results)
    assert v.decision.requires_review is (REVIEW in results)


def test_the_policy_version_is_recorded() -> None:
    assert load_policy(DEFAULT_POLICY, 0, RuleRegistry()).evaluate(facts()).decision.policy_version == 0
    assert policy(version=42).evaluate(facts()).decision.policy_version == 42


# --------------------------------------------------------------------------- found by these tests, fixed


def test_a_partial_grades_table_keeps_the_other_default_grades() -> None:
    rules = {"condition_grading": {"grades": {"used": 70}}}
    missing = run(facts(item(reason=Reason.DEFECTIVE, condition=Condition.MISSING, received=0), photos=1), rules)
    assert missing.money.items_total == 0
    damaged = run(facts(item(condition=Condition.DAMAGED, received=1)), rules)
    assert outcome(damaged, "condition_grading").result == REVIEW


@pytest.mark.parametrize(
    "rules",
    [
        {"exchange_shipping": {"customer_percent": 150}},
        {"return_shipping": {"label_cost": -1000}},
        {"condition_grading": {"grades": {"used": 250}}},
        {"restocking_fee": {"percent": 150}},
        {"return_window": {"days": -5}},
        {"review": {"max_return_rate": 2}},
    ],
)
def test_parameters_out_of_range_are_refused(rules: dict) -> None:
    with pytest.raises(PolicyInvalid) as invalid:
        load_policy({"rules": rules}, 1, RuleRegistry())
    assert invalid.value.errors[0]["field"].startswith(f"rules.{next(iter(rules))}")
