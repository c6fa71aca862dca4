"""Small HTTP helpers shared by the routers."""

from __future__ import annotations

from typing import Any

from litestar import Request

from domain.errors import InvalidRequest
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
