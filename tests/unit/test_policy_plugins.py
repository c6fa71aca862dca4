"""A custom rule installed as a real plugin: a package plus its ``.dist-info`` (METADATA and
``entry_points.txt`` under ``[returns.policies]``) written to a temporary directory put on
``sys.path``, found by ``RuleRegistry.discover()`` through ``importlib.metadata``.

Nothing leaks between tests: ``monkeypatch`` takes the directory off ``sys.path`` again, the
plugin modules are dropped from ``sys.modules`` and the import caches are invalidated.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain.cases import CaseType, Reason, Resolution
from domain.decision import RuleResult
from domain.orders import Customer, Order, OrderLine, Payment
from policies.engine import DEFAULT_POLICY, PolicyInvalid, load_policy
from policies.facts import Facts, ItemFacts
from policies.registry import ENTRY_POINT_GROUP, RuleRegistry
from policies.rules import Rule

NOW = datetime(2024, 6, 12, 10, 0, tzinfo=UTC)  # a Wednesday
MONDAY = datetime(2024, 6, 10, 10, 0, tzinfo=UTC)
BUILT_INS = list(DEFAULT_POLICY["rules"])

DEMO = "returns_plugin_demo"
DEMO_SOURCE = '''
"""Two custom rules: at most N items per case, and no cases opened on a Monday."""

from policies.rules import FAIL, PASS, REVIEW, Rule, RuleParams


class MaxItemsParams(RuleParams, frozen=True):
    max_items: int = 3


class MaxItems(Rule):
    name = "max_items"
    Params = MaxItemsParams

    def evaluate(self, facts, money):
        count = sum(item.quantity for item in facts.items)
        if count > self.params.max_items:
            return self.outcome(FAIL, f"{count} items on one case; at most {self.params.max_items}")
        return self.outcome(PASS, f"{count} item(s), within {self.params.max_items}")


class NoMondaysParams(RuleParams, frozen=True):
    weekday: int = 0


class NoMondays(Rule):
    name = "no_mondays"
    Params = NoMondaysParams

    def evaluate(self, facts, money):
        if facts.now.weekday() == self.params.weekday:
            return self.outcome(REVIEW, "opened on the day an agent looks at everything")
        return self.outcome(PASS, "any other day")


def not_a_rule():
    return None
'''
DEMO_ENTRY_POINTS = {"max_items": f"{DEMO}:MaxItems", "no_mondays": f"{DEMO}:NoMondays"}


# --------------------------------------------------------------------------- installing a plugin


Install = Callable[..., Path]


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """Write a distribution (module + dist-info) into a fresh site directory on ``sys.path``."""
    modules: list[str] = []
    count = 0

    def install(module: str, source: str, entry_points: dict[str, str], *, version: str = "0.1") -> Path:
        nonlocal count
        count += 1
        site = tmp_path / f"site{count}"
        package = site / module
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(textwrap.dedent(source))
        dist_info = site / f"{module}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: {version}\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
        monkeypatch.syspath_prepend(str(site))  # also invalidates the import caches
        modules.append(module)
        return site

    yield install
    for module in modules:
        for name in [n for n in sys.modules if n == module or n.startswith(module + ".")]:
            del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def demo(install_plugin: Install) -> Path:
    return install_plugin(DEMO, DEMO_SOURCE, DEMO_ENTRY_POINTS)


def facts(*quantities: int, now: datetime = NOW, reason: Reason = Reason.CHANGED_MIND) -> Facts:
    """A return of one line per quantity, 1000 a unit, delivered 5 days before ``now``."""
    quantities = quantities or (1,)
    items = [
        ItemFacts(
            line_id=f"L{n}",
            sku=f"SKU{n}",
            category=None,
            quantity=q,
            unit_price=1000,
            reason=reason,
            final_sale=False,
            purchased_quantity=max(q, 1),
            already_claimed_quantity=0,
        )
        for n, q in enumerate(quantities, 1)
    ]
    lines = [OrderLine(i.line_id, i.sku, i.sku, i.purchased_quantity, i.unit_price) for i in items]
    order = Order(
        merchant_id="m1",
        order_id="o1",
        currency="EUR",
        placed_at=now - timedelta(days=7),
        delivered_at=now - timedelta(days=5),
        customer=Customer("c1"),
        lines=lines,
        shipping_total=0,
        payment=Payment("simulated", "p1", sum(line.quantity * line.unit_price for line in lines)),
    )
    return Facts(
        case_type=CaseType.RETURN,
        resolution=Resolution.REFUND,
        order=order,
        items=items,
        now=now,
        order_remaining_refundable=1_000_000,
    )


# --------------------------------------------------------------------------- discovery


def test_discover_finds_the_plugin_rules(demo: Path) -> None:
    registry = RuleRegistry.discover()
    max_items = registry.get("max_items")
    assert max_items is not None and issubclass(max_items, Rule)
    assert max_items.__module__ == DEMO
    assert max_items is sys.modules[DEMO].MaxItems
    assert registry.get("no_mondays") is sys.modules[DEMO].NoMondays
    # the built-ins are all still there, and still the built-ins
    assert registry.built_in == tuple(BUILT_INS)
    assert all(registry.get(name) is RuleRegistry().get(name) for name in BUILT_INS)


def test_without_the_plugin_the_rule_is_unknown() -> None:
    registry = RuleRegistry.discover()
    assert registry.get("max_items") is None
    with pytest.raises(PolicyInvalid) as raised:
        load_policy({"rules": {"max_items": {"max_items": 2}}}, 1, registry)
    assert raised.value.errors == [{"field": "rules.max_items", "message": "unknown rule 'max_items'"}]


def test_a_plain_registry_does_not_look_for_plugins(demo: Path) -> None:
    with pytest.raises(PolicyInvalid) as raised:
        load_policy({"rules": {"max_items": {}}}, 1, RuleRegistry())
    assert [e["field"] for e in raised.value.errors] == ["rules.max_items"]


def test_uninstalling_the_plugin_forgets_it(install_plugin: Install, monkeypatch: pytest.MonkeyPatch) -> None:
    site = install_plugin(DEMO, DEMO_SOURCE, DEMO_ENTRY_POINTS)
    assert RuleRegistry.discover().get("max_items") is not None
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(site)])
    sys.modules.pop(DEMO, None)
    importlib.invalidate_caches()
    assert RuleRegistry.discover().get("max_items") is None


# --------------------------------------------------------------------------- in a policy


@pytest.mark.parametrize(
    ("quantities", "limit", "result", "detail"),
    [
        ((1,), 2, RuleResult.PASS, "1 item(s), within 2"),
        ((1, 1), 2, RuleResult.PASS, "2 item(s), within 2"),
        ((2, 1), 2, RuleResult.FAIL, "3 items on one case; at most 2"),
        ((3,), 2, RuleResult.FAIL, "3 items on one case; at most 2"),
        ((3,), None, RuleResult.PASS, "3 item(s), within 3"),  # the plugin's own default
        ((4,), None, RuleResult.FAIL, "4 items on one case; at most 3"),
    ],
)
def test_a_plugin_rule_named_in_the_document_takes_part_in_decisions(
    demo: Path, quantities: tuple[int, ...], limit: int | None, result: RuleResult, detail: str
) -> None:
    params = {} if limit is None else {"max_items": limit}
    policy = load_policy({"rules": {"max_items": params}}, 3, RuleRegistry.discover())
    assert policy.document["rules"]["max_items"] == {"enabled": True, "max_items": 3 if limit is None else limit}
    assert list(policy.document["rules"]) == [*BUILT_INS, "max_items"]

    decision = policy.evaluate(facts(*quantities)).decision
    assert [o.rule for o in decision.outcomes] == [*BUILT_INS, "max_items"]
    plugin = decision.outcomes[-1]
    assert (plugin.result, plugin.detail) == (result, detail)
    assert decision.policy_version == 3
    # 1000 a unit stays under the auto-approval limit: only the plugin decides here
    assert decision.eligible is (result == RuleResult.PASS)
    assert decision.auto_approve is (result == RuleResult.PASS)


def test_a_plugin_rule_saying_review_makes_the_case_need_review(demo: Path) -> None:
    policy = load_policy({"rules": {"no_mondays": {}}}, 1, RuleRegistry.discover())
    monday = policy.evaluate(facts(now=MONDAY)).decision
    assert monday.outcomes[-1].rule == "no_mondays"
    assert monday.outcomes[-1].result == RuleResult.REVIEW
    assert monday.eligible and monday.requires_review and not monday.auto_approve
    wednesday = policy.evaluate(facts(now=NOW)).decision
    assert wednesday.outcomes[-1].result == RuleResult.PASS
    assert wednesday.auto_approve


def test_two_plugin_rules_run_after_the_built_ins_in_document_order(demo: Path) -> None:
    policy = load_policy({"rules": {"no_mondays": {}, "max_items": {"max_items": 1}}}, 1, RuleRegistry.discover())
    decision = policy.evaluate(facts(2, now=MONDAY)).decision
    assert [o.rule for o in decision.outcomes] == [*BUILT_INS, "no_mondays", "max_items"]
    assert [o.result for o in decision.outcomes[-2:]] == [RuleResult.REVIEW, RuleResult.FAIL]
    assert not decision.eligible


def test_a_plugin_rule_is_off_unless_the_document_names_it(demo: Path) -> None:
    policy = load_policy({"rules": {}}, 1, RuleRegistry.discover())
    assert "max_items" not in policy.document["rules"]
    decision = policy.evaluate(facts(10)).decision
    assert [o.rule for o in decision.outcomes] == BUILT_INS


def test_a_plugin_rule_can_be_named_and_disabled(demo: Path) -> None:
    policy = load_policy({"rules": {"max_items": {"enabled": False, "max_items": 1}}}, 1, RuleRegistry.discover())
    assert policy.document["rules"]["max_items"] == {"enabled": False, "max_items": 1}
    decision = policy.evaluate(facts(10)).decision
    assert "max_items" not in [o.rule for o in decision.outcomes]
    assert decision.eligible


@pytest.mark.parametrize(
    "params",
    [{"max_items": "two"}, {"max_items": 2.5}, {"max_items": None}, {"limit": 2}, {"enabled": "yes"}, 2, [1]],
)
def test_a_bad_plugin_parameter_is_refused_naming_the_rule(demo: Path, params: object) -> None:
    with pytest.raises(PolicyInvalid) as raised:
        load_policy({"rules": {"max_items": params}}, 1, RuleRegistry.discover())
    assert [e["field"] for e in raised.value.errors] == ["rules.max_items"]
    assert "rules.max_items" in str(raised.value)


def test_errors_of_built_ins_and_plugins_are_reported_together(demo: Path) -> None:
    document = {"rules": {"return_window": {"days": "x"}, "max_items": {"max_items": "y"}, "nope": {}}}
    with pytest.raises(PolicyInvalid) as raised:
        load_policy(document, 1, RuleRegistry.discover())
    assert [e["field"] for e in raised.value.errors] == ["rules.return_window", "rules.max_items", "rules.nope"]


# --------------------------------------------------------------------------- refused plugins


def test_a_plugin_may_not_replace_a_built_in(install_plugin: Install) -> None:
    source = """
        from policies.rules import PASS, Rule

        class Lenient(Rule):
            name = "return_window"

            def evaluate(self, facts, money):
                return self.outcome(PASS, "any time")
    """
    install_plugin("returns_plugin_evil", source, {"return_window": "returns_plugin_evil:Lenient"})
    with pytest.raises(TypeError, match="return_window would replace a built-in rule"):
        RuleRegistry.discover()


def test_an_entry_point_that_is_not_a_rule_is_refused(install_plugin: Install) -> None:
    install_plugin(DEMO, DEMO_SOURCE, {"max_items": f"{DEMO}:not_a_rule"})
    with pytest.raises(TypeError, match="max_items"):
        RuleRegistry.discover()


def test_an_entry_point_to_a_non_rule_class_is_refused(install_plugin: Install) -> None:
    install_plugin(
        "returns_plugin_class", "class MaxItems:\n    name = 'max_items'\n", {"max_items": "returns_plugin_class:MaxItems"}
    )
    with pytest.raises(TypeError, match=r"is not a policies\.rules\.Rule"):
        RuleRegistry.discover()


# --------------------------------------------------------------------------- found by these tests, fixed


def test_a_plugin_class_posing_as_a_built_in_cannot_hide_its_failure(install_plugin: Install) -> None:
    source = """
        from policies.rules import PASS, Rule

        class Sneaky(Rule):
            name = "quantity"  # registered as "sneaky" below

            def evaluate(self, facts, money):
                return self.outcome(PASS, "looks fine to me")
    """
    install_plugin("returns_plugin_sneaky", source, {"sneaky": "returns_plugin_sneaky:Sneaky"})
    try:
        registry = RuleRegistry.discover()
    except TypeError:
        return  # refused at discovery: fixed
    decision = load_policy({"rules": {"sneaky": {}}}, 1, registry).evaluate(facts(0)).decision
    quantity = [o for o in decision.outcomes if o.rule == "quantity"]
    assert quantity[0].result == RuleResult.FAIL  # the built-in refuses a claim of 0 items ...
    assert not decision.eligible
