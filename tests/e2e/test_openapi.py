"""The committed OpenAPI document is the one the service serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import msgspec

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
    assert not [
        schema for schema in _objects(document) if {"detail", "extra", "status_code"} <= set(schema.get("properties", {}))
    ]
    problems = 0
    for path, method, operation in _operations(document):
        for status, answer in operation["responses"].items():
            if status == "default" or status >= "400":
                if (operation["operationId"], status) == ("ready", "503"):
                    continue  # readiness answers its JSON status when not ready: the probe reads it
                assert answer["content"] == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}, (
                    path,
                    method,
                    status,
                )
                problems += 1
        assert "default" in operation["responses"], (path, method)
    assert problems > 300


def test_if_match_is_declared_exactly_where_it_is_read_and_case_answers_carry_an_etag() -> None:
    document = json.loads(COMMITTED.read_text())
    reading = {
        path.removeprefix("/admin/v1/cases/{case_id}/")
        for path, _, operation in _operations(document)
        if any(parameter["name"] == "If-Match" for parameter in operation.get("parameters", []))
    }
    assert reading == {
        "approve",
        "reject",
        "request-info",
        "receive",
        "ship-replacement",
        "ship-back",
        "repair/diagnose",
        "repair/complete",
        "assign",
        "notes",
        "close",
        "label/buy",
        "label/decline",
        # as docs/contract.md says, and the storefront's:
        *(
            f"/v1/cases/{{case_id}}/{action}"
            for action in ("cancel", "return-shipment", "info", "quote/accept", "quote/decline", "survey")
        ),
    }
    for path, method, operation in _operations(document):
        headers = {parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "header"}
        assert ("412" in operation["responses"]) == ("If-Match" in headers), (path, method)
        for status, answer in operation["responses"].items():
            is_case = answer.get("content", {}).get("application/json", {}).get("schema") == {
                "$ref": "#/components/schemas/CaseView"
            }
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


def _components_reached(document: dict, side: str) -> set[str]:
    """The components that request bodies and parameters (``sent``) or answers (``answered``) refer
    to, however deep."""
    prefix = "#/components/schemas/"
    schemas = document["components"]["schemas"]

    def refs(value: object) -> set[str]:
        return {found["$ref"].removeprefix(prefix) for found in _objects(value) if "$ref" in found}

    todo = set()
    for _, _, operation in _operations(document):
        if side == "sent":
            todo |= refs(operation.get("requestBody")) | refs(operation.get("parameters"))
        else:
            todo |= refs([answer.get("content") for answer in operation["responses"].values()])
    reached: set[str] = set()
    while todo:
        name = todo.pop()
        reached.add(name)
        todo |= refs(schemas[name]) - reached
    return reached


def test_answers_require_every_field_they_always_carry() -> None:
    """msgspec encodes every field of an answer, defaults too, except where a struct omits them
    (``omit_defaults``): ``return_shipping.undecided_share`` alone. And a problem's ``errors`` is
    there only when there are some. Answers refer to the ``…View`` schemas, never the ``…In``
    ones: a struct that is both sent and answered (an order's ``customer``) is documented twice."""
    document = json.loads(COMMITTED.read_text())
    schemas = document["components"]["schemas"]
    answered = _components_reached(document, "answered")
    optional = {
        name: set(schemas[name]["properties"]) - set(schemas[name].get("required", []))
        for name in answered
        if "properties" in schemas[name]
    }
    assert {name: fields for name, fields in optional.items() if fields} == {
        "ShippingShares": {"undecided_share"},
        "Problem": {"errors"},
    }
    assert not {name for name in answered if name.endswith("In")}
    assert schemas["OrderView"]["properties"]["customer"] == {"$ref": "#/components/schemas/CustomerView"}
    for name in ("RefundView", "LedgerRefundView"):
        assert schemas[name]["properties"]["status"] == {"$ref": "#/components/schemas/RefundStatus"}


def test_request_bodies_may_leave_out_every_field_with_a_default() -> None:
    """A ``default`` reads as "always there" to generators (openapi-typescript): request bodies say
    their defaults in words instead, and require exactly the fields that have none."""
    from service.dto import Body
    from service.portal import PortalLinkIn, PortalSessionIn

    document = json.loads(COMMITTED.read_text())
    schemas = document["components"]["schemas"]
    structs = {struct.__name__: struct for struct in (*Body.__subclasses__(), PortalLinkIn, PortalSessionIn)}
    sent = _components_reached(document, "sent") & set(structs)
    assert sent >= {"ApproveIn", "OrderIn", "OrderLineIn", "PortalLinkIn", "ShippingSettingsIn", "CaseIn"}
    for name in sent:
        fields = msgspec.inspect.type_info(structs[name]).fields
        assert set(schemas[name]["required"]) == {field.encode_name for field in fields if field.required}, name
    assert not [schema for schema in _objects(document["components"]) if "default" in schema]
    assert schemas["ApproveIn"]["properties"]["keep_item"] == {"type": "boolean", "description": "Default: `false`."}
    assert "shipping_total" not in schemas["OrderIn"]["required"]


# what may follow a backslash in an ECMA-262 pattern with the ``u`` flag: syntax characters, ``-``
# (in a class) and the escapes it defines; any other (``\"``) is a syntax error there
_ECMA_ESCAPES = set("^$\\.*+?()[]{}|/-") | set("dDwWsSbBfnrtv0123456789xucpPk")


def test_every_schema_reads_as_meant_by_strict_clients() -> None:
    """Every ``pattern`` escapes only what ECMA-262 lets it (tests/contract_ts compiles each with
    the ``u`` flag); no object is bare ``{"type": "object"}`` (read as having no members: a
    ``dict`` says ``additionalProperties``); a nullable value's ``maxLength`` and the like sit in
    its value's branch of the ``oneOf``, where a strict validator (ajv) finds a type for them."""
    document = json.loads(COMMITTED.read_text())
    schemas = _objects(document)
    patterns = [schema["pattern"] for schema in schemas if isinstance(schema.get("pattern"), str)]
    assert len(patterns) > 20
    assert not [pattern for pattern in patterns if set(re.findall(r"\\(.)", pattern)) - _ECMA_ESCAPES]
    assert not [
        schema
        for schema in schemas
        if schema.get("type") == "object" and not {"properties", "additionalProperties"} & set(schema)
    ]
    typed = {"maxLength", "minLength", "pattern", "format", "maximum", "minimum", "maxItems", "minItems"}
    assert not [schema for schema in schemas if "oneOf" in schema and typed & set(schema)]
    for name, field in (("EventView", "data"), ("PolicyView", "document")):
        assert document["components"]["schemas"][name]["properties"][field]["additionalProperties"] is True
