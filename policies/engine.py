"""A policy: the merchant's rules with their parameters, evaluated over facts into a decision
(every rule's outcome, with why) and the case's one money model.

A stored document only needs what differs from the defaults: each rule's parameters are laid
over the built-in defaults, a rule is switched off with ``enabled = false``, and a custom rule
is switched on by naming it. ``Policy.document`` is the effective document, so an agent reading
the policy sees every parameter in force.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from domain.cases import CaseType, Resolution
from domain.decision import CaseMoney, Decision, RuleOutcome, RuleResult
from domain.errors import PolicyCurrencyUnpriced
from domain.money import KNOWN_CURRENCIES, percent_of
from policies.facts import Facts
from policies.registry import RuleRegistry
from policies.rules import (
    ANY_CURRENCY,
    BUILT_IN_RULES,
    MoneyDraft,
    Prices,
    Rule,
    RuleParams,
    price_in,
)

DEFAULT_POLICY: dict[str, Any] = {"rules": {rule.name: msgspec.to_builtins(rule.Params()) for rule in BUILT_IN_RULES}}
# The built-in defaults before amounts were per currency: the same amount in any currency. A case
# decided then keeps them (see ``Policy.decided_prices``).
LEGACY_DEFAULT_PRICES = {
    "rules.return_shipping.label_cost": 500,
    "rules.exchange_shipping.cost": 1000,
    "rules.auto_approve.max_amount": 10_000,
}
CAPTURED_LIMIT = "captured_limit"  # the engine's own outcome when a refund is capped


class PolicyInvalid(Exception):
    """The document names an unknown rule or a bad parameter; ``errors`` say which."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


class Verdict(msgspec.Struct, frozen=True):
    decision: Decision
    money: CaseMoney


class Policy:
    def __init__(
        self, version: int, document: dict[str, Any], rules: list[Rule[RuleParams]], given: frozenset[str] = frozenset()
    ) -> None:
        self.version = version
        self.document = document
        self.rules = rules
        self.given = given  # the amount parameters the stored document itself gave
        # every amount parameter of the rules in force, by its place in the document
        self.prices = {
            f"rules.{rule.name}.{key}": getattr(rule.params, key) for rule in rules for key in price_parameters(type(rule.params))
        }

    def evaluate(self, facts: Facts, under: Decision | None = None) -> Verdict:
        """A new case's decision and money (raises ``PolicyCurrencyUnpriced`` naming every amount
        the order's currency lacks), or, ``under`` an existing case's decision, its money worked
        out again with the amounts it was decided under (``Decision.prices``): a later change of
        the policy's tables (the built-in defaults' included) never re-prices an open case."""
        currency = facts.order.currency
        amounts = self._amounts_in(currency) if under is None else self.decided_prices(under, currency)
        rules = [_priced(rule, amounts) for rule in self.rules]
        draft = _draft(facts)
        outcomes = [rule.evaluate(facts, draft) for rule in rules]
        money, capped_from = _settle(facts, draft)
        if capped_from is not None:
            outcomes.append(
                RuleOutcome(
                    CAPTURED_LIMIT,
                    RuleResult.INFO,
                    f"capped from {draft.show(capped_from)} to {draft.show(facts.order_remaining_refundable)}, "
                    "what the order has left once other refunds and open cases are counted",
                )
            )
        results = [o.result for o in outcomes]
        eligible = RuleResult.FAIL not in results
        review = RuleResult.REVIEW in results
        by_rule = {o.rule: o.result for o in outcomes}
        decision = Decision(
            policy_version=self.version,
            eligible=eligible,
            requires_review=review,
            requires_photos=by_rule.get("photo_evidence") == RuleResult.REVIEW,
            auto_approve=eligible and not review and by_rule.get("auto_approve") == RuleResult.PASS,
            outcomes=outcomes,
            photo_count=facts.photo_count,
            keep_item=draft.keep_item,
            prices=amounts,
        )
        return Verdict(decision=decision, money=money)

    def _amounts_in(self, currency: str) -> dict[str, int]:
        """Every amount of the policy in ``currency``; raises ``PolicyCurrencyUnpriced`` naming
        those the tables leave unpriced (preview and case creation alone come here)."""
        amounts = {field: price_in(prices, currency) for field, prices in self.prices.items()}
        unpriced = [field for field, amount in amounts.items() if amount is None]
        if unpriced:
            raise PolicyCurrencyUnpriced(currency, unpriced)
        return {field: amount for field, amount in amounts.items() if amount is not None}

    def decided_prices(self, decision: Decision, currency: str) -> dict[str, int]:
        """The amounts ``decision`` was made under. One recorded before amounts were per currency
        has none: it was priced by this version's document as stored (a bare amount meant any
        currency) and, for what the document left out, by the defaults of that time
        (``LEGACY_DEFAULT_PRICES``, the same amount in any currency), so never refused."""
        if decision.prices:
            return decision.prices
        amounts = {}
        for field, stored in self.prices.items():
            table = stored
            if field in LEGACY_DEFAULT_PRICES and field not in self.given:
                table = {ANY_CURRENCY: LEGACY_DEFAULT_PRICES[field]}
            if (amount := price_in(table, currency)) is not None:
                amounts[field] = amount
        return amounts

    def recompute_money(self, decision: Decision, facts: Facts) -> Verdict:
        """The money again on changed facts (an agent decided who is responsible), with the
        amounts ``decision`` was made under and the money rules' outcomes refreshed to say why;
        every other outcome of ``decision`` stands."""
        fresh = self.evaluate(facts, under=decision)
        money_rules = {rule.name for rule in self.rules if rule.money} | {CAPTURED_LIMIT}
        before = {o.rule: o for o in decision.outcomes}
        outcomes = [
            _keep_override(o, before.get(o.rule)) if o.rule in money_rules else before.get(o.rule, o)
            for o in fresh.decision.outcomes
        ]
        return Verdict(
            decision=msgspec.structs.replace(
                decision, outcomes=outcomes, keep_item=fresh.decision.keep_item, prices=fresh.decision.prices
            ),
            money=fresh.money,
        )

    def reevaluate(self, rule_name: str, facts: Facts) -> RuleOutcome | None:
        """One rule's outcome on new facts (say, photos that arrived), leaving the rest of a
        decision as it was made. None when the policy does not run that rule."""
        draft = _draft(facts)
        rule = next((rule for rule in self.rules if rule.name == rule_name), None)
        return rule.evaluate(facts, draft) if rule else None


def _priced(rule: Rule[RuleParams], amounts: dict[str, int]) -> Rule[RuleParams]:
    """``rule`` with each of its amounts fixed to the one in ``amounts`` (in the order's currency)."""
    fixed = {
        key: {ANY_CURRENCY: amounts[field]}
        for key in price_parameters(type(rule.params))
        if (field := f"rules.{rule.name}.{key}") in amounts
    }
    return type(rule)(msgspec.structs.replace(rule.params, **fixed)) if fixed else rule


def _keep_override(fresh: RuleOutcome, before: RuleOutcome | None) -> RuleOutcome:
    """A refreshed outcome keeps an agent's override of the one it replaces."""
    if before is None or before.overridden_by is None:
        return fresh
    return msgspec.structs.replace(fresh, overridden_by=before.overridden_by, override_reason=before.override_reason)


def _draft(facts: Facts) -> MoneyDraft:
    """The money before any rule: what comes back, at its price."""
    return MoneyDraft(
        currency=facts.order.currency,
        item_values={i.line_id: i.settled_quantity * i.unit_price for i in facts.items},
    )


def _settle(facts: Facts, draft: MoneyDraft) -> tuple[CaseMoney, int | None]:
    """The final figures, never promising more than the order has left to refund."""
    items_total = draft.items_total
    customer_share = draft.return_shipping.customer_share
    difference_due = 0
    if facts.case_type == CaseType.RETURN:
        owed = items_total - draft.restocking_fee - customer_share + draft.original_shipping_refund
    elif facts.case_type == CaseType.EXCHANGE:
        replacement = sum(
            i.settled_quantity * (i.unit_price if i.replacement_unit_price is None else i.replacement_unit_price)
            for i in facts.items
        )
        balance = replacement - items_total + customer_share
        difference_due, owed = max(balance, 0), max(-balance, 0)
    else:
        owed = 0
    owed = max(owed, 0)
    payable = min(owed, facts.order_remaining_refundable)
    store_credit = bonus = 0
    if facts.resolution == Resolution.STORE_CREDIT:
        bonus = percent_of(payable, draft.store_credit_bonus_bp)
        store_credit, payable = payable + bonus, 0
    money = CaseMoney(
        currency=facts.order.currency,
        items_total=items_total,
        restocking_fee=draft.restocking_fee,
        return_shipping=draft.return_shipping,
        original_shipping_refund=draft.original_shipping_refund,
        refund_total=payable,
        store_credit_total=store_credit,
        difference_due=difference_due,
        store_credit_bonus=bonus,
    )
    return money, (owed if owed > facts.order_remaining_refundable else None)


@cache
def price_parameters(params: type[RuleParams]) -> tuple[str, ...]:
    """A rule's parameters that are amounts per currency (typed ``Prices``)."""
    return tuple(field.name for field in msgspec.structs.fields(params) if field.type == Prices)


def _amount_error(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "a whole number of the currency's minor units"
    if not 0 <= value <= 10**13:
        return "from 0 to 10^13 minor units"
    return None


def _read_prices(
    params: type[RuleParams], rule: str, raw: dict[str, Any], currency: str | None, submitted: bool
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Each amount parameter as a table per currency. A bare amount is read in the document's
    ``currency``. Without one, a submitted document's bare amount is refused (500 is 5.00 EUR but
    500 JPY); a stored one can only predate per-currency amounts and keeps the meaning it had:
    the same amount in any currency (``ANY_CURRENCY``)."""
    read, errors = dict(raw), []
    for key in price_parameters(params):
        if key not in raw:
            continue
        value, field = raw[key], f"rules.{rule}.{key}"
        if isinstance(value, dict):
            problems = [] if value else ["price at least one currency"]
            problems += [f"'{code}' is not an ISO 4217 currency code" for code in value if code not in KNOWN_CURRENCIES]
            problems += [f"{code}: {error}" for code, amount in value.items() if (error := _amount_error(amount))]
            if problems:
                errors.append({"field": field, "message": "; ".join(problems)})
        elif isinstance(value, bool) or not isinstance(value, int):
            errors.append({"field": field, "message": "amounts per currency, such as {EUR = 500, JPY = 800}"})
        elif error := _amount_error(value):
            errors.append({"field": field, "message": error})
        elif currency is not None:
            read[key] = {currency: value}
        elif submitted:
            errors.append(
                {
                    "field": field,
                    "message": f"amounts are per currency: {{EUR = {value}}} (or name the policy's currency "
                    'for its bare amounts: currency = "EUR")',
                }
            )
        else:
            read[key] = {ANY_CURRENCY: value}
    return read, errors


def _lay_over(defaults: dict[str, Any], given: dict[str, Any], whole: tuple[str, ...] = ()) -> dict[str, Any]:
    """The given parameters over the defaults; a table parameter (such as ``grades``) is laid
    over its default table entry by entry, so naming one grade keeps the others. Amounts per
    currency (``whole``) replace the default table: a policy pricing EUR alone prices no JPY."""
    merged = dict(defaults)
    for key, value in given.items():
        default = defaults.get(key)
        if isinstance(default, dict) and isinstance(value, dict) and key not in whole:
            merged[key] = {**default, **value}
        else:
            merged[key] = value
    return merged


def load_policy(document: Any, version: int, registry: RuleRegistry, *, submitted: bool = False) -> Policy:
    """Build a policy from a stored or ``submitted`` document; raise ``PolicyInvalid`` naming every
    unknown rule and bad parameter. The document is ``{"rules": {...}}`` with an optional
    ``currency``: the currency of its bare amounts."""
    if (
        not isinstance(document, dict)
        or not set(document) <= {"rules", "currency"}
        or not isinstance(document.get("rules"), dict)
    ):
        raise PolicyInvalid(
            [{"field": "rules", "message": 'the document is {"rules": {"<rule>": {parameters}}} and an optional "currency"'}]
        )
    currency = document.get("currency")
    if currency is not None and (not isinstance(currency, str) or currency not in KNOWN_CURRENCIES):
        raise PolicyInvalid([{"field": "currency", "message": "the ISO 4217 code of the policy's bare amounts, such as EUR"}])
    given: dict[str, Any] = document["rules"]
    errors: list[dict[str, str]] = []
    defaults = DEFAULT_POLICY["rules"]
    names = [*defaults, *(name for name in given if name not in defaults)]
    effective: dict[str, Any] = {}
    rules: list[Rule[RuleParams]] = []
    for name in names:
        rule_class = registry.get(name)
        if rule_class is None:
            errors.append({"field": f"rules.{name}", "message": f"unknown rule '{name}'"})
            continue
        raw = given.get(name, {})
        if not isinstance(raw, dict):
            errors.append({"field": f"rules.{name}", "message": "parameters must be a table/object"})
            continue
        raw, price_errors = _read_prices(rule_class.Params, name, raw, currency, submitted)
        if price_errors:
            errors += price_errors
            continue
        whole = price_parameters(rule_class.Params)
        try:
            params = msgspec.convert(_lay_over(defaults.get(name, {}), raw, whole), rule_class.Params)
        except msgspec.ValidationError as error:
            errors.append({"field": f"rules.{name}", "message": str(error)})
            continue
        effective[name] = msgspec.to_builtins(params)
        if params.enabled:
            rules.append(rule_class(params))
    if errors:
        raise PolicyInvalid(errors)
    given_prices = frozenset(
        f"rules.{name}.{key}"
        for name, raw in given.items()
        if isinstance(raw, dict) and (rule_class := registry.get(name)) is not None
        for key in price_parameters(rule_class.Params)
        if key in raw
    )
    return Policy(version, {"rules": effective}, rules, given_prices)
