"""Errors name the client's fields: the query, header or path parameter as the client sends it
(``state``, not the handler's ``case_state``), a body field by its JSON path, the body as a
whole as ``""``; and each says where (``in``)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.support.tenants import Tenant

NOT_JSON = {"content": b"{not json", "headers": {"Content-Type": "application/json"}}
CASES: list[tuple[str, str, str, dict[str, Any], str, str]] = [
    # (role, method, path, request options, field, in)
    (
        "agent",
        "GET",
        "/admin/v1/cases",
        {"params": {"state": "lost"}},
        "state",
        "query",
    ),
    ("storefront", "GET", "/v1/cases", {"params": {"state": "lost"}}, "state", "query"),
    (
        "finance",
        "GET",
        "/finance/v1/reports/summary",
        {"params": {"from": "soon"}},
        "from",
        "query",
    ),
    (
        "finance",
        "GET",
        "/finance/v1/reports/reasons",
        {"params": {"to": "1700000000"}},
        "to",
        "query",
    ),
    (
        "finance",
        "GET",
        "/finance/v1/reports/summary",
        {"params": {"from": "2026-02-01", "to": "2026-01-01"}},
        "from",
        "query",
    ),
    (
        "finance",
        "GET",
        "/finance/v1/reports/summary",
        {"params": {"group_by": "colour"}},
        "group_by",
        "query",
    ),
    (
        "finance",
        "GET",
        "/finance/v1/refunds",
        {"params": {"created_to": "0.5"}},
        "created_to",
        "query",
    ),
    (
        "finance",
        "GET",
        "/finance/v1/refunds",
        {"params": {"limit": "0"}},
        "limit",
        "query",
    ),
    (
        "finance",
        "GET",
        "/finance/v1/reconciliations/bad%20id",
        {},
        "reconciliation_id",
        "path",
    ),
    (
        "finance",
        "POST",
        "/finance/v1/reconciliations",
        {"json": {"from": "2026-01-01T00:00:00Z", "to": 5}},
        "to",
        "body",
    ),
    ("finance", "POST", "/finance/v1/reconciliations", NOT_JSON, "", "body"),
    (
        "storefront",
        "POST",
        "/v1/cases",
        {
            "json": {
                "order_id": "o_1",
                "type": "return",
                "resolution": "refund",
                "items": [{"line_id": "l1", "quantity": "two", "reason": "changed_mind"}],
            }
        },
        "items[0].quantity",
        "body",
    ),
    ("storefront", "POST", "/v1/cases", NOT_JSON, "", "body"),
    (
        "storefront",
        "POST",
        "/v1/cases",
        {
            "content": b"[" * 100 + b"]" * 100,
            "headers": {"Content-Type": "application/json"},
        },
        "",
        "body",
    ),
    (
        "admin",
        "PUT",
        "/admin/v1/policy",
        {"content": b"rules = [", "headers": {"Content-Type": "application/toml"}},
        "",
        "body",
    ),
]


@pytest.mark.parametrize(
    ("role", "method", "path", "options", "field", "place"),
    CASES,
    ids=[f"{c[1]} {c[2]} {c[4] or 'body'}" for c in CASES],
)
def test_each_error_names_the_field_the_client_sent(
    tenant: Tenant,
    role: str,
    method: str,
    path: str,
    options: dict[str, Any],
    field: str,
    place: str,
) -> None:
    answer = tenant.clients[role].request(method, path, **options)
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    assert [(e["field"], e["in"]) for e in errors] == [(field, place)], errors


def test_a_bad_if_match_is_named_as_the_header(tenant: Tenant) -> None:
    case = tenant.open_case(tenant.put_order()["order_id"]).json()
    answer = tenant.agent.post(f"/admin/v1/cases/{case['id']}/approve", json={}, headers={"If-Match": "soon"})
    assert answer.status_code == 422, answer.text
    assert [(e["field"], e["in"]) for e in answer.json()["errors"]] == [("If-Match", "header")]


def _bad_value(schema: dict[str, Any], components: dict[str, Any]) -> str | None:
    """A value the parameter's schema refuses, or None where any text is fine."""
    schemas = [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]
    schemas = [components[s["$ref"].rsplit("/", 1)[1]] if "$ref" in s else s for s in schemas]
    kinds = {s.get("type") for s in schemas} - {None, "null"}
    if kinds & {"integer", "number"}:
        return "not-a-number"
    if "boolean" in kinds:
        return "maybe"
    if any("enum" in s or "pattern" in s or s.get("format") == "date-time" for s in schemas):
        return "!no such value!"
    return None


def _operations(base_url: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(path, parameter, a bad value for it, the operation) for every GET's refusable parameter."""
    document = httpx.get(f"{base_url}/schema/openapi.json").json()
    components = document["components"]["schemas"]
    found = []
    for path, item in document["paths"].items():
        get = item.get("get")
        if get:
            parameters = [p for p in get.get("parameters", []) + item.get("parameters", []) if p["in"] in ("query", "path")]
            for parameter in parameters:
                bad = _bad_value(parameter.get("schema", {}), components)
                if bad is not None:
                    found.append((path, parameter["name"], bad, get))
    return found


def test_every_query_and_path_parameter_refused_is_named_as_the_openapi_names_it(tenant: Tenant, base_url: str) -> None:
    """Fuzz-ish: for every GET and each of its parameters with a schema that refuses something,
    a bad value alone is refused naming exactly that parameter where it is, and no error ever
    names a field that is not one of the operation's parameters."""
    operations = _operations(base_url)
    assert len(operations) >= 20, operations
    for path, name, bad, operation in operations:
        declared = {(p["name"], p["in"]) for p in operation.get("parameters", [])}
        place = next(p["in"] for p in operation["parameters"] if p["name"] == name)
        url = re.sub(r"\{[^}]+\}", "x", path.replace("{" + name + "}", bad))
        answer = tenant.admin.get(url, params={name: bad} if place == "query" else None)
        assert answer.status_code == 422, (path, name, answer.status_code, answer.text)
        named = {(e["field"], e["in"]) for e in answer.json()["errors"]}
        assert (name, place) in named and named <= declared, (path, name, named)
