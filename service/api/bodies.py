"""Request bodies read defensively: bounded in size (``request_max_body_size``) and in nesting
depth before any decoder sees them, and JSON decoded strictly into the handler's ``data`` type.

Litestar decodes a JSON body into plain Python values and then converts them to the handler's
type with msgspec's lax rules (``strict=False``), meant for query strings and forms: a JSON
``"100"`` would become the integer 100 and ``"false"`` the boolean False. ``StrictRequest``
decodes JSON bodies straight into the ``data`` type with msgspec's strict rules instead (the
signature model then passes the decoded struct through untouched); query strings, path
parameters and multipart forms keep Litestar's lax handling, where every value is text.

Decoders recurse once per nesting level, so a body nested thousands of levels deep would end in
a ``RecursionError`` (a 500). The depth is measured first, on the raw bytes and without
recursion: strings and comments are dropped, then the most brackets open at once is counted
(linear, in C iterators: some 50 ms for a megabyte of brackets)."""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.types import Empty

from domain.errors import InvalidRequest

MAX_DEPTH = 64

# Strings (and TOML's comments) as the decoders read them. Possessive, and a string left open
# takes the rest of the body (the decoder stops there with an error): no match ever backtracks,
# so the scan is linear whatever the bytes.
_JSON_STRINGS = re.compile(rb'"(?:[^"\\]++|\\[\s\S])*+(?:"|[\s\S]*+)')
_TOML_STRINGS = re.compile(
    rb'"""(?:[^"\\]++|\\[\s\S]|"(?!""))*+(?:"{3,5}|[\s\S]*+)'  # multi-line basic (up to 2 more quotes end it)
    rb"|'''(?:[^']++|'(?!''))*+(?:'{3,5}|[\s\S]*+)"  # multi-line literal
    rb'|"(?:[^"\\\n]++|\\[\s\S])*+(?:"|[\s\S]*+)'  # basic
    rb"|'[^'\n]*+(?:'|[\s\S]*+)"  # literal
    rb"|#[^\n]*+"  # comment
)
# ``\u0000`` escaped in JSON text (not ``\\u0000``: an escaped backslash, then text)
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256)]


def _nests_too_deep(raw: bytes, strings: re.Pattern[bytes]) -> bool:
    """Whether the brackets outside strings (and comments) ever stand more than ``MAX_DEPTH``
    open at once: the deepest a decoder could recurse, whether they pair up or not."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False  # too few brackets to nest that deep: the common case
    brackets = strings.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def too_deep() -> InvalidRequest:
    return InvalidRequest(
        "the body is nested too deeply",
        [{"field": "body", "message": f"nests deeper than {MAX_DEPTH} levels"}],
    )


def check_json_depth(raw: bytes) -> None:
    if _nests_too_deep(raw, _JSON_STRINGS):
        raise too_deep()


def check_toml_depth(raw: bytes) -> None:
    if _nests_too_deep(raw, _TOML_STRINGS):
        raise too_deep()


def check_value_depth(value: Any) -> None:
    """The same bound on a decoded value (TOML's dotted keys nest tables without brackets),
    measured without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_DEPTH:
                    raise too_deep()
                stack.append((child, depth + 1))


def check_no_nul(raw: bytes) -> None:
    """PostgreSQL text cannot hold a NUL character: refuse it up front, naming where it is
    (rather than find out when storing, after the case's state was checked). Keys need no look:
    bodies are structs, which refuse keys they do not know."""
    if not _JSON_NUL.search(raw):
        return
    errors, stack = [], [("", msgspec.json.decode(raw))]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            errors.append({"field": path or "body", "message": "a NUL character cannot be stored"})
        elif isinstance(item, dict):
            stack.extend((f"{path}.{key}" if path else key, child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))
    if errors:
        raise InvalidRequest("the request is not valid", sorted(errors, key=lambda e: e["field"]))


def _field_errors(error: msgspec.ValidationError) -> list[dict[str, str]]:
    message, _, path = str(error).partition(" - at `")
    path = path.removeprefix("key` in `")  # a bad key of an object: "at `key` in `$.a.b`" names the object
    field = path.rstrip("`").removeprefix("$").removeprefix(".")  # "" is the body as a whole
    return [{"key": field, "message": message, "source": "body"}]


class StrictRequest(Request[Any, Any, Any]):
    """The app's request class: ``json()`` is bounded and strict, as the module says."""

    async def json(self) -> Any:
        if (cached := self._connection_state.json) is not Empty:
            return cached
        body = await self.body()
        check_json_depth(body)
        data_field = self.route_handler.parsed_data_field
        target: Any = data_field.annotation if data_field is not None else Any
        try:
            value = msgspec.json.decode(body or b"null", type=target, strict=True)
        except msgspec.ValidationError as exc:
            raise ValidationException("the request is not valid", extra=_field_errors(exc)) from exc
        except msgspec.DecodeError as exc:
            raise InvalidRequest("the body is not JSON", [{"field": "body", "message": str(exc)}]) from exc
        check_no_nul(body)  # well-formed JSON by now
        self._connection_state.json = value
        return value
