"""The merchant's policy in force: the stored document of the highest version, or the built-in
defaults (version 0) for a merchant who never installed one. Installing validates first, so an
invalid document never replaces the one in force.

Stored documents are read as they were installed, so a policy stored before amounts were per
currency needs no migration: its bare amounts keep applying to any currency (shown as
``{"*": 500}``), while a document installed now must price each currency (see ``load_policy``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from policies.engine import Policy, load_policy
from policies.registry import RuleRegistry
from service.dto import PolicyView
from service.ports import Repositories

# version 0, the built-in defaults: a document that gives nothing, so every parameter is its default
# (and a case decided under it before amounts were per currency keeps that time's defaults)
BUILT_IN: dict[str, Any] = {"rules": {}}


class PolicyBook:
    def __init__(self, registry: RuleRegistry) -> None:
        self.registry = registry
        self._loaded: dict[tuple[str, int], Policy] = {}  # versions never change once stored

    def _load(self, merchant_id: str, version: int, document: dict[str, Any]) -> Policy:
        key = (merchant_id, version)
        if key not in self._loaded:
            self._loaded[key] = load_policy(document, version, self.registry)
        return self._loaded[key]

    async def in_force(self, repos: Repositories, merchant_id: str) -> Policy:
        current = await repos.current_policy(merchant_id)
        if current is None:
            return self._load("", 0, BUILT_IN)
        version, document = current
        return self._load(merchant_id, version, document)

    async def at_version(self, repos: Repositories, merchant_id: str, version: int) -> Policy:
        """The policy a case was decided under: later steps of the case keep to it."""
        if version == 0:
            return self._load("", 0, BUILT_IN)
        document = await repos.get_policy(merchant_id, version)
        if document is None:
            raise LookupError(f"policy version {version} of {merchant_id} is gone")
        return self._load(merchant_id, version, document)

    async def view(self, repos: Repositories, merchant_id: str, version: int | None = None) -> PolicyView | None:
        """The effective document (every rule with every parameter) of the version in force, or
        of ``version`` when given."""
        if version is None:
            policy = await self.in_force(repos, merchant_id)
        elif version == 0:
            policy = self._load("", 0, BUILT_IN)
        else:
            document = await repos.get_policy(merchant_id, version)
            if document is None:
                return None
            policy = self._load(merchant_id, version, document)
        return _view(policy)

    async def install(self, repos: Repositories, merchant_id: str, document: dict[str, Any], at: datetime, by: str) -> PolicyView:
        # raises PolicyInvalid before anything is stored; a bare amount needs the document's currency
        load_policy(document, 0, self.registry, submitted=True)
        version = await repos.add_policy(merchant_id, document, at, by)
        return _view(self._load(merchant_id, version, document))


def _view(policy: Policy) -> PolicyView:
    return PolicyView(version=policy.version, document=policy.document, is_default=policy.version == 0)
