"""Schemathesis against the committed OpenAPI document and the running service: every
operation, with a valid admin key (admin may call everything), a bounded number of examples.
No 5xx, and every answer conforms to the document. `bench/fuzz.py` runs longer.

The checks are exactly those: no server error, and status code, content type, headers and body
as the document says. Left out are schemathesis' opinions beyond the document: that every
schema-valid body is accepted (a well-formed request can still make no sense against stored
data: 422, as DESIGN.md says), that every schema-invalid one is refused (the framework reads a
number as a timestamp), and what OPTIONS lists in Allow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.flows import cases_of_every_kind
from tests.support.tenants import Tenant, order_body

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
EXAMPLES = 8


@pytest.fixture(scope="module")
def fuzz_tenant(base_url: str, database_url: str) -> Tenant:
    tenant = Tenant(base_url, database_url)
    cases_of_every_kind(tenant)
    return tenant


schema = schemathesis.openapi.from_path(COMMITTED)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case, base_url: str, fuzz_tenant: Tenant) -> None:
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {fuzz_tenant.keys['admin']}"},
        checks=CHECKS,
    )


_PATHS = {
    operation["operationId"]: path
    for path, item in json.loads(COMMITTED.read_text())["paths"].items()
    for operation in item.values()
    if isinstance(operation, dict) and "operationId" in operation
}


def _operation_id(case: schemathesis.Case) -> str:
    return case.operation.definition.raw.get("operationId", "?")


STATEFUL_EXAMPLES = 30
STATEFUL_STEPS = 8


@pytest.mark.parametrize("role", ["storefront", "agent", "finance", "admin"])
def test_sequences_follow_the_links_and_answer_as_documented(role: str, base_url: str, fuzz_tenant: Tenant) -> None:
    """Schemathesis' stateful phase: sequences of calls that follow the document's links (an
    order to its case, the case to every action on it, to its refunds and photos), with each
    role's key, every answer checked as above. Orders are stored with a valid body (invalid
    ones are the stateless test's business), so that sequences reach real cases."""
    headers = {"Authorization": f"Bearer {fuzz_tenant.keys[role]}"}
    machine = schema.as_state_machine()
    seen: list[tuple[str, int]] = []

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict:
            return {"base_url": base_url, "headers": headers}

        def before_call(self, case: schemathesis.Case) -> None:
            case.headers = {**(case.headers or {}), **headers}
            if _operation_id(case) == "putOrder":
                case.body = order_body()

        def after_call(self, response, case) -> None:
            seen.append((_operation_id(case), response.status_code))

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            case.validate_response(response, checks=CHECKS, headers=headers)

    # The server's state moves between examples (the worker pays refunds, sequences change cases),
    # and Hypothesis' engine takes a choice sequence it saw before to draw alike again: across many
    # examples against a live server that check fails without any fault of the API. So each run
    # is one example of its own engine, generated only.
    for _ in range(STATEFUL_EXAMPLES):
        Workflow.run(
            settings=settings(
                max_examples=1,
                stateful_step_count=STATEFUL_STEPS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                phases=[Phase.generate],
            )
        )
    assert seen, "the state machine made calls"


def test_the_links_lead_from_the_queue_to_real_cases(base_url: str, fuzz_tenant: Tenant) -> None:
    """Every link from the agent's queue names a case that exists: following it never meets a 404
    (the stateful phase's random walk relies on that; how far it walks is bench/fuzz.py's figure)."""
    document = json.loads(COMMITTED.read_text())
    links = document["paths"]["/admin/v1/cases"]["get"]["responses"]["200"]["links"]
    queue = fuzz_tenant.admin.get("/admin/v1/cases").json()
    followed = 0
    for link in links.values():
        path, method = next(
            (p, m)
            for p, item in document["paths"].items()
            for m, op in item.items()
            if isinstance(op, dict) and op.get("operationId") == link["operationId"]
        )
        values = {
            name: queue["items"][0]["id"]
            for name, expression in link["parameters"].items()
            if expression == "$response.body#/items/0/id"
        }
        if set(values) != {name.strip("{}") for name in path.split("/") if name.startswith("{")}:
            continue
        answer = fuzz_tenant.admin.request(method.upper(), path.format(**values), json={} if method == "post" else None)
        assert answer.status_code != 404, (link["operationId"], answer.text)
        followed += 1
    assert followed >= 15, f"only {followed} links followed"
