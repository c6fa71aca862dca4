"""A state machine is one table of data, ``(state, action) → state``, and one lookup.

Modelled on h11: the table is the truth, the diagrams in the docs are drawn from it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import TypeVar

from domain.errors import InvalidTransition

S = TypeVar("S", bound=StrEnum)
A = TypeVar("A", bound=StrEnum)

Table = Mapping[tuple[S, A], S]


def next_state(entity: str, table: Table[S, A], state: S, action: A) -> S:
    """The state ``action`` leads to from ``state``, or ``InvalidTransition``."""
    try:
        return table[(state, action)]
    except KeyError:
        raise InvalidTransition(entity, str(state), str(action)) from None


def allowed_actions(table: Table[S, A], state: S) -> list[A]:
    return [action for (from_state, action) in table if from_state == state]


def mermaid(table: Table[S, A], start: StrEnum | None = None, final: Iterable[StrEnum] = ()) -> str:
    """The table as a Mermaid state diagram, with ``[*]`` before ``start`` and after each of
    ``final`` when given."""
    lines = ["stateDiagram-v2"]
    lines += [f"    [*] --> {start}"] if start is not None else []
    lines += [f"    {src} --> {dst}: {action}" for (src, action), dst in table.items()]
    lines += [f"    {state} --> [*]" for state in final]
    return "\n".join(lines)
