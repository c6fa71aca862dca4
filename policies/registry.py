"""Which rule classes a policy document may name: the built-ins plus every class registered
under the ``returns.policies`` entry-point group by an installed package."""

from __future__ import annotations

from importlib.metadata import entry_points

from policies.rules import BUILT_IN_RULES, Rule, RuleParams

ENTRY_POINT_GROUP = "returns.policies"


class RuleRegistry:
    def __init__(self, rules: dict[str, type[Rule[RuleParams]]] | None = None) -> None:
        self.rules: dict[str, type[Rule[RuleParams]]] = {rule.name: rule for rule in BUILT_IN_RULES}
        self.rules.update(rules or {})

    @classmethod
    def discover(cls) -> RuleRegistry:
        """The built-ins and the installed plugins; a plugin may not replace a built-in."""
        plugins: dict[str, type[Rule[RuleParams]]] = {}
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            rule = entry.load()
            if not (isinstance(rule, type) and issubclass(rule, Rule)):
                raise TypeError(f"entry point {entry.name} ({entry.value}) is not a policies.rules.Rule")
            if entry.name in {r.name for r in BUILT_IN_RULES}:
                raise TypeError(f"entry point {entry.name} would replace a built-in rule")
            if getattr(rule, "name", None) != entry.name:
                raise TypeError(f"entry point {entry.name} names a rule called {getattr(rule, 'name', None)!r}; they must agree")
            plugins[entry.name] = rule
        return cls(plugins)

    def get(self, name: str) -> type[Rule[RuleParams]] | None:
        return self.rules.get(name)

    @property
    def built_in(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in BUILT_IN_RULES)
