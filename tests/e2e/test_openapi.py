"""The committed OpenAPI document is the one the service serves."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_served_document(base_url: str) -> None:
    served = httpx.get(base_url + "/schema/openapi.json").json()
    committed = json.loads(COMMITTED.read_text())
    assert served == committed, "openapi/openapi.json is stale: run `returns openapi` and commit it"


def test_every_operation_has_an_id_and_problem_errors_are_documented() -> None:
    document = json.loads(COMMITTED.read_text())
    operations = [op for path in document["paths"].values() for op in path.values()]
    ids = [op.get("operationId") for op in operations]
    assert all(ids) and len(ids) == len(set(ids))
    for path in ("/v1/orders/{order_id}", "/v1/cases", "/admin/v1/cases/{case_id}/approve"):
        assert path in document["paths"]
