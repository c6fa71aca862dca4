"""Small HTTP helpers shared by the routers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Request, Response
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import HeaderParameter, Parameter

from domain.errors import InvalidRequest
from service.dto import ID_MAX_LENGTH, ID_PATTERN, CaseView
from service.ports import Principal


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    return request.user


IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        description='The case\'s version as its ETag, `"3"` (`W/"3"` and `3` too), or several (`"3", "4"`): the '
        "change is made only if the case is still at one of them (412 `version_conflict` otherwise). `*`, like no "
        "header, applies the change to the case as it is now.",
    ),
]
# a version is a count of changes: 18 digits is more than any case will see, and keeps int() cheap
_VERSION = re.compile(r"[0-9]{1,18}")


def expected_version(if_match: IfMatch = None) -> frozenset[int] | None:
    """The versions ``If-Match`` accepts (RFC 9110 §13.1.1: any listed tag; weak tags and bare
    numbers accepted), as the dependency ``expected_version`` of the case actions, so the
    document declares the header on exactly the operations that read it. ``*`` asks only that
    the case exist, which every action checks anyway: None, as without the header."""
    if if_match is None or if_match.strip() == "*":
        return None
    tags = [tag.strip().removeprefix("W/").strip('"') for tag in if_match.split(",")]
    if not all(_VERSION.fullmatch(tag) for tag in tags):
        raise InvalidRequest(
            "If-Match must be the case's version in quotes, or several separated by commas",
            [{"field": "If-Match", "message": f"not a version: {if_match[:40]!r}"}],
        )
    return frozenset(int(tag) for tag in tags)


def case_etag(response: Response[Any]) -> Response[Any]:
    """Every answer that is one case carries its version as a strong ETag, ``"<version>"``: the
    value to send back in ``If-Match`` (an after-request hook, so no handler can forget it)."""
    if isinstance(response.content, CaseView):
        response.headers["ETag"] = f'"{response.content.version}"'
    return response


def document_case_etags(document: OpenAPI) -> None:
    """Declare the ETag ``case_etag`` adds, on every response whose body is a ``CaseView``."""
    etag = OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING, pattern='^"[0-9]+"$'),
        required=True,
        description='The case\'s version, `"<version>"`: send it back as `If-Match`',
    )
    for path_item in (document.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(path_item, method, None)
            for answer in (operation.responses or {}).values() if operation else ():
                media = (getattr(answer, "content", None) or {}).get("application/json")
                if media is not None and getattr(media.schema, "ref", None) == "#/components/schemas/CaseView":
                    answer.headers = {**(answer.headers or {}), "ETag": etag}


BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)


def documented(request_body: RequestBody | None = None, answers: dict[str, dict[str, Schema]] | None = None) -> type[Operation]:
    """An ``operation_class`` for a handler that reads its body itself (a stream, TOML) or answers
    bytes, where the framework cannot see what goes in or out: its ``request_body``, and each
    status' answer in ``answers`` as media type → schema."""

    @dataclass
    class Documented(Operation):
        def __post_init__(self) -> None:
            if request_body is not None:
                self.request_body = request_body
            for status, schemas in (answers or {}).items():
                self.responses[status].content = contents(schemas)  # type: ignore[index, union-attr]

    return Documented


def contents(schemas: dict[str, Schema]) -> dict[str, OpenAPIMediaType]:
    """A body's (or answer's) content: media type → schema."""
    return {media: OpenAPIMediaType(schema=schema) for media, schema in schemas.items()}


# An id in a path obeys the rule of ids in bodies; one that breaks it answers 422 naming the
# parameter (it names nothing that could exist, so a 404 would only hide the mistake)
PathId = Annotated[
    str, Parameter(pattern=ID_PATTERN, min_length=1, max_length=ID_MAX_LENGTH, description="an id (letters, digits, _ . : -)")
]


# RFC 3339 with a time zone, as in bodies (``service.dto.Timestamp``); and a plain date
_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MOMENT_HINT = "an RFC 3339 time with a time zone (2026-01-31T12:00:00Z) or a date (2026-01-31)"


def query_period(request: Request[Any, Any, Any], start: str, end: str) -> tuple[datetime | None, datetime | None]:
    """The period's bounds named in the query string (None where absent). Checked on the raw
    text: the framework would also read a bare number as seconds since 1970 (found by
    schemathesis: ``created_to=0.5``) and a time without a zone as no moment in particular. A
    plain date is the whole of that day in UTC, the way a person means it: as the start its
    midnight, as the (exclusive) end the next midnight, so ``from=2026-11-01&to=2026-11-30``
    is all of November."""
    bounds: list[datetime | None] = []
    errors = []
    for name, is_end in ((start, False), (end, True)):
        value = request.query_params.get(name)
        moment = _moment(value, is_end) if value is not None else None
        if value is not None and moment is None:
            errors.append({"field": name, "message": MOMENT_HINT})
        bounds.append(moment)
    if errors:
        raise InvalidRequest("the query is not valid", errors)
    return bounds[0], bounds[1]


def _moment(text: str, is_end: bool) -> datetime | None:
    """The moment ``text`` names, or None when it names none (month 13, hour 25, offset +24:00)."""
    try:
        if _DATE.fullmatch(text):
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return day + timedelta(days=1) if is_end else day
        return datetime.fromisoformat(text) if _MOMENT.fullmatch(text) else None
    except (ValueError, OverflowError):  # 9999-12-31 as an end has no next midnight
        return None
