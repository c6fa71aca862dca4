"""The document's schemas say exactly which fields a body may leave out and an answer carries.

Litestar documents a msgspec struct once, as a request body reads it: a field with a default is
optional and carries that ``default``. That is half true twice over. An answer is encoded with
every field (msgspec leaves defaults out only of a struct with ``omit_defaults``), so a client
that reads "optional" checks for nothing that can be missing. And generators read ``default``
as "always there" (openapi-typescript's default ``defaultNonNullable``), so a request body's
defaulted field becomes one the client must send. So, once the document is made:

- a struct that is only sent keeps Litestar's ``required`` and says its defaults in the field's
  ``description`` (``Default: `false`.``) instead of ``default``;
- a struct that is only answered requires every field, except where it omits defaults: those
  fields stay optional and say what their absence means; no ``default`` either;
- a struct that is both sent and answered (an order's ``customer``, the shipping settings) is
  documented twice: as it is sent under its own name (``…In``), and as it is answered under
  ``…View``, which every answer refers to.

And two shapes that read otherwise than meant are said plainly: an object that names none of
its members (a ``dict``: an event's ``data``, the policy document) takes any
(``additionalProperties: true``; a bare ``{"type": "object"}`` reads as one with no members to
generators), and a nullable value's constraints are in its value's branch of the ``oneOf``."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec
from litestar._openapi.schema_generation import SchemaCreator
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import OpenAPI, OpenAPIType, Reference, Schema
from litestar.openapi.spec.base import BaseSchemaObject
from litestar.typing import FieldDefinition

from service.api.problems import METHODS

COMPONENTS = "#/components/schemas/"


class StructSchemas(StructSchemaPlugin):
    """Litestar's schemas for msgspec structs, unchanged, remembering the struct behind each
    component (by its title, the struct's name) for ``document_presence``. Two structs of one
    name would make the document ambiguous to read: refused at start-up."""

    def __init__(self) -> None:
        self.structs: dict[str, type[msgspec.Struct]] = {}

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        struct = field_definition.type_
        known = self.structs.setdefault(str(schema.title), struct)
        if known is not struct:
            raise TypeError(f"two structs named {schema.title}: {known.__module__} and {struct.__module__}")
        return schema


def document_presence(document: OpenAPI, plugin: StructSchemas) -> None:
    """Rewrite the struct components as the module says (run after every other step that adds
    schemas)."""
    assert document.components is not None
    schemas = document.components.schemas = dict(document.components.schemas or {})
    sent, answered = _reached(schemas, _roots(document, "sent")), _reached(schemas, _roots(document, "answered"))
    structs = {
        name: plugin.structs[str(schema.title)]
        for name, schema in schemas.items()
        if isinstance(schema, Schema) and schema.title in plugin.structs
    }
    both = {name: _view_name(name) for name in sent & answered if name in structs}
    taken = set(both.values()) & set(schemas)
    if taken:
        raise TypeError(f"answer schemas named like existing ones: {sorted(taken)}")
    for name, view in both.items():
        schemas[view] = dataclasses.replace(schemas[name], title=view, additional_properties=None)
        structs[view] = structs[name]
    for name in {*both.values(), *(answered - set(both))}:  # copies: no schema is shared with a request's
        schemas[name] = _retarget(copy.deepcopy(schemas[name]), both)
    for media in _media(document, "answered"):
        media.schema = _retarget(copy.deepcopy(media.schema), both)
    for name, struct in structs.items():
        answer = name in both.values() or name not in sent
        schemas[name] = (_as_answered if answer else _as_sent)(schemas[name], struct)
    for schema in _objects(document):
        _any_members(schema)
        _constraints_on_the_value(schema)


def _any_members(schema: Schema) -> None:
    if schema.type == OpenAPIType.OBJECT and not (
        schema.properties or schema.additional_properties is not None or schema.pattern_properties
    ):
        schema.additional_properties = True


# the keywords that constrain values of one type only
_TYPED = (
    "max_length",
    "min_length",
    "pattern",
    "format",
    "maximum",
    "minimum",
    "exclusive_maximum",
    "exclusive_minimum",
    "multiple_of",
    "max_items",
    "min_items",
    "unique_items",
)


def _constraints_on_the_value(schema: Schema) -> None:
    """``Text | None``: Litestar puts ``maxLength`` beside ``oneOf: [string, null]``, at a level
    that names no type (which strict validators refuse: ajv's ``strictTypes``); it moves into the
    string's branch, meaning the same."""
    branches = list(schema.one_of or [])
    values = [branch for branch in branches if not (isinstance(branch, Schema) and branch.type == OpenAPIType.NULL)]
    moved = {name: getattr(schema, name) for name in _TYPED if getattr(schema, name) is not None}
    if moved and len(values) == 1 and isinstance(values[0], Schema) and values[0].type is not None:
        schema.one_of = [dataclasses.replace(branch, **moved) if branch is values[0] else branch for branch in branches]
        for name in moved:
            setattr(schema, name, None)


def _view_name(name: str) -> str:
    return name.removesuffix("In") + "View"


def _fields(struct: type[msgspec.Struct]) -> Iterator[tuple[msgspec.inspect.Field, Any]]:
    """Each field with its default (what ``default_factory`` makes, for one that has a factory)."""
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        if field.required:
            yield field, msgspec.NODEFAULT
        elif field.default is not msgspec.NODEFAULT:
            yield field, field.default
        else:
            yield field, field.default_factory()


def _as_sent(schema: Schema, struct: type[msgspec.Struct]) -> Schema:
    """A default that is not null, in words: a client may leave the field out."""
    properties = dict(schema.properties or {})
    for field, default in _fields(struct):
        if default is not msgspec.NODEFAULT:
            words = None if default is None else f"Default: `{_json(default)}`."
            properties[field.encode_name] = _described(properties[field.encode_name], words)
    return dataclasses.replace(schema, properties=properties)


def _as_answered(schema: Schema, struct: type[msgspec.Struct]) -> Schema:
    """Every field is in the answer, but one a struct that omits defaults leaves out at its default."""
    omits = struct.__struct_config__.omit_defaults
    properties = dict(schema.properties or {})
    required = []
    for field, default in _fields(struct):
        if omits and default is not msgspec.NODEFAULT:
            properties[field.encode_name] = _described(properties[field.encode_name], f"Left out when `{_json(default)}`.")
        else:
            properties[field.encode_name] = _described(properties[field.encode_name], None)
            required.append(field.encode_name)
    return dataclasses.replace(schema, properties=properties, required=sorted(required))


def _described(prop: Schema | Reference, words: str | None) -> Schema | Reference:
    """``prop`` without its ``default``, and ``words`` added to its description."""
    description = " ".join(part for part in (prop.description, words) if part) or None
    if isinstance(prop, Reference):
        return dataclasses.replace(prop, description=description)
    return dataclasses.replace(prop, default=None, description=description, one_of=_without_defaults(prop.one_of))


def _without_defaults(branches: Sequence[Schema | Reference] | None) -> list[Schema | Reference] | None:
    """A nullable field's branches (``oneOf``) with no ``default`` left in the value's."""
    if branches is None:
        return None
    return [b if isinstance(b, Reference) else dataclasses.replace(b, default=None) for b in branches]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _roots(document: OpenAPI, side: str) -> set[str]:
    """The components a request (``sent``: its body and parameters) or an answer refers to."""
    found = {ref for media in _media(document, side) for ref in _refs(media.schema)}
    if side == "sent":
        for operation in _operations(document):
            for parameter in operation.parameters or []:
                found |= set(_refs(parameter))
    return found


def _reached(schemas: Mapping[str, Any], names: set[str]) -> set[str]:
    """``names`` and every component they refer to, however deep."""
    reached: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(_refs(schemas[name]))
    return reached


def _operations(document: OpenAPI) -> Iterator[Any]:
    for item in (document.paths or {}).values():
        yield from (operation for method in METHODS if (operation := getattr(item, method, None)) is not None)


def _media(document: OpenAPI, side: str) -> Iterator[Any]:
    """The media types of every request body (``sent``) or answer (``answered``)."""
    for operation in _operations(document):
        if side == "sent":
            bodies = [operation.request_body] if operation.request_body is not None else []
        else:
            bodies = list((operation.responses or {}).values())
        for body in bodies:
            yield from (getattr(body, "content", None) or {}).values()


def _walk(value: Any) -> Iterator[Any]:
    """Every spec object within ``value``, itself included."""
    if isinstance(value, BaseSchemaObject):
        yield value
        for field in dataclasses.fields(value):
            yield from _walk(getattr(value, field.name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)


def _refs(value: Any) -> Iterator[str]:
    """The names of the components ``value`` refers to."""
    for found in _walk(value):
        if isinstance(found, Reference) and found.ref.startswith(COMPONENTS):
            yield found.ref.removeprefix(COMPONENTS)


def _retarget(value: Any, views: Mapping[str, str]) -> Any:
    """``value``, its references to the components in ``views`` now to their answer schemas."""
    for found in _walk(value):
        if isinstance(found, Reference) and found.ref.removeprefix(COMPONENTS) in views:
            found.ref = COMPONENTS + views[found.ref.removeprefix(COMPONENTS)]
    return value


def _objects(document: OpenAPI) -> Iterator[Schema]:
    return (found for found in _walk(document) if isinstance(found, Schema))
