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


def _objects(value: object) -> list[dict]:
    """Every JSON object within ``value``, itself included."""
    if isinstance(value, list):
        return [found for item in value for found in _objects(item)]
    if isinstance(value, dict):
        return [value, *(found for item in value.values() for found in _objects(item))]
    return []


def _operations(document: dict) -> list[tuple[str, str, dict]]:
    return [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]


def test_every_error_is_a_problem_and_the_frameworks_own_400_is_gone() -> None:
    """Litestar documents a 400 of its own (``detail, extra, status_code``) on every operation
    with input; this service never answers it, and generated clients warn on it."""
    document = json.loads(COMMITTED.read_text())
    assert not [schema for schema in _objects(document) if {"detail", "extra", "status_code"} <= set(schema.get("properties", {}))]
    problems = 0
    for path, method, operation in _operations(document):
        for status, answer in operation["responses"].items():
            if status == "default" or status >= "400":
                if (operation["operationId"], status) == ("ready", "503"):
                    continue  # readiness answers its JSON status when not ready: the probe reads it
                assert answer["content"] == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}, (
                    path, method, status)
                problems += 1
        assert "default" in operation["responses"], (path, method)
    assert problems > 300


def test_if_match_is_declared_exactly_where_it_is_read_and_case_answers_carry_an_etag() -> None:
    document = json.loads(COMMITTED.read_text())
    reading = {path.removeprefix("/admin/v1/cases/{case_id}/") for path, _, operation in _operations(document)
               if any(parameter["name"] == "If-Match" for parameter in operation.get("parameters", []))}
    assert reading == {"approve", "reject", "request-info", "receive", "ship-replacement", "ship-back", "repair/diagnose",
                       "repair/complete", "assign", "notes", "close", "label/buy", "label/decline",
                       # as docs/contract.md says, and the storefront's:
                       *(f"/v1/cases/{{case_id}}/{action}" for action in (
                           "cancel", "return-shipment", "info", "quote/accept", "quote/decline", "survey"))}
    for path, method, operation in _operations(document):
        headers = {parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "header"}
        assert ("412" in operation["responses"]) == ("If-Match" in headers), (path, method)
        for status, answer in operation["responses"].items():
            is_case = answer.get("content", {}).get("application/json", {}).get("schema") == {
                "$ref": "#/components/schemas/CaseView"}
            assert ("ETag" in answer.get("headers", {})) == is_case, (path, method, status)
    assert "Idempotency-Key" in {parameter["name"] for parameter in document["paths"]["/v1/cases"]["post"]["parameters"]}


def test_bodies_and_answers_the_framework_cannot_see_are_declared() -> None:
    paths = json.loads(COMMITTED.read_text())["paths"]
    assert set(paths["/v1/orders/{order_id}"]["put"]["responses"]) >= {"200", "201"}
    binary = {"type": "string", "format": "binary"}
    form = paths["/v1/cases/{case_id}/photos"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and {**form["properties"]["file"], "description": None} == {**binary, "description": None}
    image = paths["/v1/cases/{case_id}/photos/{photo_id}"]["get"]["responses"]["200"]["content"]
    assert image == {media: {"schema": binary} for media in ("image/jpeg", "image/png", "image/webp")}
    policy = paths["/admin/v1/policy"]["put"]["requestBody"]["content"]
    assert set(policy) == {"application/json", "application/toml"}
