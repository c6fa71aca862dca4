"""Schemathesis against the committed OpenAPI document and the running service: every
operation, with a valid admin key (admin may call everything), a bounded number of examples.
No 5xx, and every answer conforms to the document. `bench/fuzz.py` runs longer.

The checks are exactly those: no server error, and status code, content type, headers and body
as the document says. Left out are schemathesis' opinions beyond the document: that every
schema-valid body is accepted (a well-formed request can still make no sense against stored
data: 422, as DESIGN.md says), that every schema-invalid one is refused (the framework reads a
number as a timestamp), and what OPTIONS lists in Allow."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.tenants import Tenant

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
EXAMPLES = 8


@pytest.fixture(scope="module")
def fuzz_tenant(base_url: str, database_url: str) -> Tenant:
    tenant = Tenant(base_url, database_url)
    tenant.put_order("o_fuzz")
    return tenant


schema = schemathesis.openapi.from_path(COMMITTED)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case, base_url: str, fuzz_tenant: Tenant) -> None:
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {fuzz_tenant.keys['admin']}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )
