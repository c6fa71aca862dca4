"""Opaque page cursors: the last row's sort key, as URL-safe base64 JSON."""

from __future__ import annotations

import base64
from typing import Any, TypeVar

import msgspec

from domain.errors import InvalidRequest

T = TypeVar("T")


def encode_cursor(values: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")


def decode_cursor(cursor: str, kind: type[T]) -> T:
    """The sort key a cursor carries; a cursor this service never gave out is a 422."""
    try:
        return msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), type=kind)
    except (ValueError, msgspec.DecodeError) as exc:
        raise InvalidRequest(
            "cursor is not one this service gave out", [{"field": "cursor", "message": "unknown cursor"}]
        ) from exc
