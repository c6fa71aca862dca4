"""OpenAPI links: how the ids one operation answers feed the next. A generated client (and
schemathesis' stateful phase) follows them from a new order to its case, from the case to
every action on it, to its refunds and photos, and from a reconciliation to its report,
instead of guessing ids that do not exist."""

from __future__ import annotations

from typing import Any

from litestar.openapi.spec import Link, OpenAPI, Operation

CASE_ID = "$response.body#/id"
CASE_SOURCES = {  # operations that answer a case, and the status they answer it with
    "openCase": "201",
    "getCase": "200",
    "agentGetCase": "200",
    "approveCase": "200",
    "receiveItems": "200",
    "diagnoseRepair": "200",
    "reportReturnShipment": "200",
    "requestInfo": "200",
}
# from a case to what it holds
CASE_CHILDREN = {
    "retryRefund": {"refund_id": "$response.body#/refunds/0/id"},
    "getPhoto": {"case_id": CASE_ID, "photo_id": "$response.body#/photos/0/id"},
    "getOrder": {"order_id": "$response.body#/order_id"},
    "agentGetOrder": {"order_id": "$response.body#/order_id"},
    "getStoreCredit": {"customer_id": "$response.body#/customer_id"},
}
# a case opened on the order just stored: a return of one of its first line
CASE_ON_ORDER = {
    "order_id": "$request.path.order_id",
    "type": "return",
    "resolution": "refund",
    "items": [{"line_id": "$request.body#/lines/0/line_id", "quantity": 1, "reason": "changed_mind"}],
}
ORDER_LINKS: dict[str, dict[str, Any]] = {  # target → parameters, or (for a body made from the request) the link's request body
    "getOrder": {"order_id": "$request.path.order_id"},
    "agentGetOrder": {"order_id": "$request.path.order_id"},
    "openCase": {"requestBody": CASE_ON_ORDER},
    "previewCase": {"requestBody": CASE_ON_ORDER},
}
OTHER_LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {  # (source, status) → target → parameters
    ("putOrder", "200"): ORDER_LINKS,
    ("putOrder", "201"): ORDER_LINKS,
    ("uploadPhoto", "201"): {"getPhoto": {"case_id": "$response.body#/case_id", "photo_id": "$response.body#/id"}},
    ("reconcile", "201"): {"getReconciliation": {"reconciliation_id": "$response.body#/id"}},
}


# operations on what only some cases have (a bought return label): a link never leads to a 404
NOT_ON_EVERY_CASE = frozenset({"getLabel", "agentGetLabel"})
# lists whose first item is a case or a refund
LIST_SOURCES = {"listCases": "case", "agentQueue": "case", "listRefunds": "refund"}


def _operations(document: OpenAPI) -> dict[str, tuple[str, Operation]]:
    """Operation id → (path, operation)."""
    found = {}
    for path, item in (document.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method, None)
            if operation is not None and operation.operation_id:
                found[operation.operation_id] = (path, operation)
    return found


def document_links(document: OpenAPI) -> None:
    """Add the links above to the document's responses (only where both operations exist)."""
    operations = _operations(document)
    case_actions = {
        op_id: {"case_id": CASE_ID}
        for op_id, (path, _) in operations.items()
        if path.count("{") == 1 and "{case_id}" in path and op_id not in NOT_ON_EVERY_CASE
    }
    links: dict[tuple[str, str], dict[str, dict[str, Any]]] = dict(OTHER_LINKS)
    for source, status in CASE_SOURCES.items():
        links[(source, status)] = {**case_actions, **CASE_CHILDREN}
    for source, kind in LIST_SOURCES.items():
        first = "$response.body#/items/0/id"
        links[(source, "200")] = (
            {target: {"case_id": first} for target in case_actions} if kind == "case" else {"retryRefund": {"refund_id": first}}
        )
    for (source, status), targets in links.items():
        if source not in operations:
            continue
        response = (operations[source][1].responses or {}).get(status)
        if response is None or not hasattr(response, "links"):
            continue
        response.links = {target: _link(target, spec) for target, spec in sorted(targets.items()) if target in operations}


def _link(target: str, spec: dict) -> Link:
    if "requestBody" in spec:
        return Link(operation_id=target, request_body=spec["requestBody"])
    return Link(operation_id=target, parameters=dict(spec))
