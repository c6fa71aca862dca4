"""Every ``pattern`` of a request body holds the whole value: Python's ``$`` (msgspec checks a
pattern with ``re.search``) also matches before a final line break, so a pattern that ends in
``$`` ends in ``$(?!\\n)``, as ``ID_PATTERN`` always did. Origin: the outside review of #23 (a
``sender_name`` of ``"Shop\\n"`` stopped every mail of its merchant)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

import service.dto
import service.portal


def _patterns(kind: Any, seen: set[int]) -> list[str]:
    """The patterns of ``kind`` and of everything it holds."""
    if id(kind) in seen:
        return []
    seen.add(id(kind))
    found = [kind.pattern] if getattr(kind, "pattern", None) else []
    if isinstance(kind, msgspec.inspect.StructType):
        return found + [p for field in kind.fields for p in _patterns(field.type, seen)]
    for attr in ("types", "item_type", "key_type", "value_type", "item_types"):
        inner = getattr(kind, attr, None)
        for part in inner if isinstance(inner, tuple) else (inner,) if inner is not None else ():
            found += _patterns(part, seen)
    return found


BODIES = [
    struct
    for module in (service.dto, service.portal)
    for struct in vars(module).values()
    if isinstance(struct, type) and issubclass(struct, msgspec.Struct) and struct.__name__.endswith("In")
]
PATTERNS = sorted({p for struct in BODIES for p in _patterns(msgspec.inspect.type_info(struct), set())})


def test_the_request_bodies_have_patterns() -> None:
    assert len(BODIES) > 20 and len(PATTERNS) >= 10


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_pattern_refuses_a_trailing_line_break(pattern: str) -> None:
    assert pattern.endswith(r"$(?!\n)"), pattern
    # values each pattern would take but for their final line break
    assert all(re.search(pattern, value) is None for value in ("\n", "x\n", "ab\n", "acct_x\n", "a@b.cd\n", "https://x\n"))
