"""The one place where errors become RFC 9457 problem+json answers with a stable ``code``."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    Schema,
)
from litestar.params import ParameterKwarg

from domain.errors import (
    DomainError,
    InvalidRequest,
    InvalidTransition,
    OrderLocked,
    PolicyViolation,
)
from policies.engine import PolicyInvalid
from service.cases import IdempotencyConflict
from service.ports import (
    BlobNotFound,
    DatabaseUnavailable,
    GatewayUnreadable,
    ImageRejected,
    NotFound,
    VersionConflict,
)

PROBLEM_JSON = "application/problem+json"

_CODES_BY_STATUS = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "version_conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}

log = structlog.get_logger()


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> Response[dict[str, Any]]:
    title = code.replace("_", " ").capitalize()
    body = {"type": f"https://returns.dev/problems/{code}", "title": title, "status": status, "detail": detail, "code": code}
    body.update({key: value for key, value in extra.items() if value is not None})
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


# names a handler takes that are no request parameter (the framework's, and the body)
_NOT_PARAMETERS = frozenset({"request", "data", "state", "scope", "headers", "cookies", "query", "body", "socket"})


def _parameters(request: Request[Any, Any, Any]) -> dict[str, tuple[str, str]]:
    """The matched route's parameters: the handler's Python name → (the name the client sends,
    where: query, header, cookie or path). Python names may differ (``case_state`` is ``state``,
    ``period_from`` is ``from``): errors must say the client's."""
    handler = request.scope.get("route_handler")
    signature = getattr(handler, "parsed_fn_signature", None)
    names: dict[str, tuple[str, str]] = {}
    for name, definition in signature.parameters.items() if signature else ():
        kwarg = definition.kwarg_definition
        if name in _NOT_PARAMETERS or (kwarg is not None and not isinstance(kwarg, ParameterKwarg)):
            continue  # the body, a dependency
        if name in request.scope.get("path_params", {}):
            names[name] = (name, "path")
        elif kwarg is not None and (kwarg.header or kwarg.cookie):
            names[name] = (kwarg.header or kwarg.cookie, "header" if kwarg.header else "cookie")  # type: ignore[assignment]
        else:
            names[name] = ((kwarg.query or kwarg.name if kwarg else None) or name, "query")
    return names


def _located(request: Request[Any, Any, Any], errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each error names the field as the client sent it and says where (``in``): a query,
    header, cookie or path parameter by its name, a body field by its JSON path
    (``items[0].quantity``), and the body as a whole as ``""`` (not JSON, too deep, no policy).
    A field the route does not declare is placed by what the request holds (``If-Match`` is
    a header); anything else is in the body."""
    declared = {client: place for client, place in _parameters(request).values()}
    located = []
    for error in errors:
        field = str(error.get("field", ""))
        field = "" if field == "body" else field  # the whole body, as the older errors say it
        place = error.get("in") or declared.get(field)
        if place is None:
            in_query, in_headers = field in request.query_params, bool(field) and field in request.headers
            place = "query" if in_query else "header" if in_headers else "body"
        located.append({**error, "field": field, "in": place})
    return located


def _validation_errors(request: Request[Any, Any, Any], exc: ValidationException) -> list[dict[str, Any]]:
    """The framework's errors name the handler's Python parameter: say the client's name."""
    parameters = _parameters(request)
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            key, source = str(item.get("key") or ""), str(getattr(item.get("source"), "value", item.get("source") or "body"))
            field, place = parameters.get(key, (key, source))
            errors.append({"field": field, "in": place, "message": str(item.get("message", "invalid"))})
    return errors or [{"field": "", "in": "body", "message": str(exc.detail)}]


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, (InvalidRequest, OrderLocked)):
        return problem(exc.status, exc.code, exc.detail, errors=_located(request, exc.errors))
    if isinstance(exc, InvalidTransition):
        return problem(409, exc.code, exc.detail, state=exc.state, action=exc.action)
    if isinstance(exc, PolicyViolation):
        outcomes = msgspec.to_builtins(exc.outcomes)
        return problem(422, exc.code, exc.detail, outcomes=outcomes)
    if isinstance(exc, DomainError):
        return problem(exc.status, exc.code, exc.detail, **exc.extra)
    if isinstance(exc, PolicyInvalid):
        return problem(422, "validation_error", "the policy document is not valid", errors=_located(request, exc.errors))
    if isinstance(exc, (NotFound, BlobNotFound)):
        return problem(404, "not_found", str(exc))
    if isinstance(exc, VersionConflict):
        return problem(412, "version_conflict", str(exc) + "; reload and try again")
    if isinstance(exc, DatabaseUnavailable):
        log.warning("database_unavailable", detail=str(exc))
        return problem(503, "unavailable", str(exc), headers={"Retry-After": "1"})
    if isinstance(exc, ImageRejected):
        return problem(415 if exc.code == "unsupported_media_type" else 422, exc.code, str(exc))
    if isinstance(exc, GatewayUnreadable):
        log.warning("gateway_unreadable", status=exc.status, detail=exc.detail)
        retry = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return problem(exc.status, exc.code, exc.detail, headers=retry)
    if isinstance(exc, IdempotencyConflict):
        return problem(409, "idempotency_conflict", str(exc))
    if isinstance(exc, ValidationException):
        return problem(422, "validation_error", "the request is not valid", errors=_validation_errors(request, exc))
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status >= 500:
            log.error("http_error", status=status, detail=exc.detail)
        if status == 400:  # an undecodable body: the client's input, named like any bad field
            return problem(
                422,
                "validation_error",
                "the request is not valid",
                errors=[{"field": "", "in": "body", "message": str(exc.detail)}],
            )
        # keep what the exception says in headers (Allow on a 405, WWW-Authenticate on a 401)
        return problem(status, _CODES_BY_STATUS.get(status, "error"), str(exc.detail), headers=exc.headers)
    log.exception("unhandled_error", error_type=type(exc).__name__)
    return problem(500, "internal_error", "something went wrong on our side; it has been logged")


def document_public_operations(document: OpenAPI, public_paths: list[str]) -> None:
    """Operations that need no key (``public_paths``, the key check's own exclusions) say so:
    ``security: []`` overrides the document's bearer requirement for them."""
    public = [re.compile(pattern) for pattern in public_paths]
    for path, path_item in (document.paths or {}).items():
        if any(pattern.search(path) for pattern in public):
            for method in METHODS:
                operation = getattr(path_item, method, None)
                if operation is not None:
                    operation.security = []


# What each error status means, as the document says it (every one is a problem+json answer)
ERROR_STATUSES = {
    400: "`invalid_signature` or `invalid_event`: a Stripe or EasyPost event that does not verify or cannot be read",
    401: "`unauthorized`: no API key, or one that is unknown or revoked (or a portal link's token that expired or was altered)",
    403: "`forbidden`: the key's role may not do this (or the setting is the operator's)",
    404: "`not_found`: no such thing for this merchant; `label_not_ready`: the case has no return label (yet)",
    409: "a conflict with what is stored: `invalid_transition` (the case's state does not allow the action), "
    "`idempotency_conflict`, `order_locked`, `refund_already_retried`, `gateway_account_taken`, `label_not_held` "
    "(the case's label waits for no agent's decision), `payment_taken` (the order's payment is another merchant's)",
    412: "`version_conflict`: the case is no longer at the version `If-Match` names; nothing changed",
    413: "`payload_too_large`",
    415: "`unsupported_media_type`",
    422: "`validation_error` (each bad field in `errors`), `policy_violation` or a refund limit",
    429: "`rate_limited`: too many portal lookups from this address or for this e-mail; see `Retry-After`",
    502: "`gateway_error`: the payment gateway refused or answered something unreadable; nothing stored",
    503: "`unavailable`: the database is unreachable or busy; `gateway_unavailable`: the payment gateway is (see `Retry-After`)",
}
# Statuses only some operations answer, where no rule of ``_error_statuses`` finds them
EXTRA_STATUSES = {
    "openCase": {409},  # idempotency_conflict
    "putOrder": {409},  # order_locked, payment_taken
    "retryRefund": {409},  # refund_already_retried, or the refund is not failed
    "putGatewayAccount": {409},  # gateway_account_taken
    "getPolicy": {404},  # ?version= that never existed
    "rotateWebhookSecret": {404},  # no endpoint yet
    "uploadPhoto": {415},  # not a photo, or not multipart
    "stripeWebhook": {400, 413, 502, 503},  # bad signature or event; a charge's refunds not listed; off
    "easypostWebhook": {400, 404, 413},  # bad signature or event; EasyPost not configured
    "reconcile": {502},  # gateway_error (its 503 is every keyed operation's)
    "createPortalLink": {404},  # no such order of that customer
    "requestPortalLink": {429},  # rate_limited
}
METHODS = ("get", "put", "post", "delete", "patch")


def _error_statuses(path: str, method: str, operation: Operation) -> set[int]:
    """The errors ``operation`` really answers: 401/403/503 behind a key (the key check reads the
    database), 404 for an id in the path, 422 for any input, 413 for a body, 412 where
    ``If-Match`` is read, 409 for an action on a case (its state may not allow it), and the
    operation's own in ``EXTRA_STATUSES``."""
    statuses = set(EXTRA_STATUSES.get(operation.operation_id or "", set()))
    headers = {parameter.name for parameter in operation.parameters or [] if isinstance(parameter, Parameter)}
    if operation.security != []:
        statuses |= {401, 403, 503}
    if "{" in path:
        statuses.add(404)
    if operation.parameters or operation.request_body:
        statuses.add(422)
    if operation.request_body:
        statuses.add(413)
    if "If-Match" in headers:
        statuses.add(412)
    if method == "post" and path.count("{") == 1 and "{case_id}" in path:
        statuses.add(409)
    return statuses


def document_problems(document: OpenAPI) -> None:
    """Every error an operation answers is documented as problem+json: each status it really
    answers (``_error_statuses``) and, for anything else, its ``default`` response. The
    framework's own 400 (``detail, extra, status_code``) goes: this service never answers it (a
    body it cannot read is a 422 ``validation_error``), and generated clients choke on it. A
    status the handler documents itself (readiness' 503 is its JSON status) stays as it is. And
    request bodies (the ``…In`` schemas) refuse fields they do not know. Run after
    ``document_public_operations``: public operations answer no 401 or 403."""
    assert document.components is not None
    schemas = document.components.schemas = dict(document.components.schemas or {})
    for name, schema in schemas.items():
        if name.endswith("In") and isinstance(schema, Schema):
            schema.additional_properties = False
    schemas["Problem"] = PROBLEM_SCHEMA
    for path, path_item in (document.paths or {}).items():
        for method in METHODS:
            operation = getattr(path_item, method, None)
            if operation is None:
                continue
            responses = {status: answer for status, answer in (operation.responses or {}).items() if status != "400"}
            for status in sorted(_error_statuses(path, method, operation)):
                responses.setdefault(str(status), _problem_response(ERROR_STATUSES[status], retry=status in (429, 503)))
            responses["default"] = _problem_response("An error, as RFC 9457 problem+json with a stable code")
            operation.responses = responses


PROBLEM_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["type", "title", "status", "detail", "code"],
    properties={
        "type": Schema(type=OpenAPIType.STRING),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING),
        "code": Schema(type=OpenAPIType.STRING, description="stable: validation_error, not_found, …"),
        "errors": Schema(
            type=OpenAPIType.ARRAY,
            items=Schema(
                type=OpenAPIType.OBJECT,
                required=["field", "in", "message"],
                properties={
                    "field": Schema(type=OpenAPIType.STRING, description='as the client sent it; "" is the body as a whole'),
                    "in": Schema(type=OpenAPIType.STRING, enum=["query", "header", "cookie", "path", "body"]),
                    "message": Schema(type=OpenAPIType.STRING),
                },
            ),
        ),
    },
)


def _problem_response(description: str, retry: bool = False) -> OpenAPIResponse:
    """A problem+json answer; with ``retry``, the ``Retry-After`` a busy database answers with."""
    after = OpenAPIHeader(schema=Schema(type=OpenAPIType.INTEGER), description="seconds to wait before trying again")
    return OpenAPIResponse(
        description=description,
        content={PROBLEM_JSON: OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Problem"))},
        headers={"Retry-After": after} if retry else None,
    )
