"""Small HTTP helpers shared by the routers."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.params import Parameter

from domain.errors import InvalidRequest
from service.dto import ID_MAX_LENGTH, ID_PATTERN
from service.ports import Principal


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    return request.user


def if_match_version(request: Request[Any, Any, Any]) -> int | None:
    """The version in ``If-Match: "<version>"`` (weak tags and bare numbers accepted)."""
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    tag = raw.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise InvalidRequest(
            "If-Match must be the case's version in quotes", [{"field": "If-Match", "message": f"not a version: {raw!r}"}]
        )
    return int(tag)


# An id in a path obeys the rule of ids in bodies; one that breaks it answers 422 naming the
# parameter (it names nothing that could exist, so a 404 would only hide the mistake)
PathId = Annotated[
    str, Parameter(pattern=ID_PATTERN, min_length=1, max_length=ID_MAX_LENGTH, description="an id (letters, digits, _ . : -)")
]
