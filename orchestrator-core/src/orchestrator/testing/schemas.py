"""Values made up from a JSON Schema, for an emulator's "model" (every vendor emulator here
uses them; a plugin's emulator may too): an instance that matches the schema (tool
arguments, structured answers) and one that does not (scripted invalid answers).
Deterministic: the same schema always gives the same value.

Covers what tool and response schemas use in practice (pydantic's output included):
``type`` (also a list), ``properties`` / ``required``, ``items`` / ``minItems``, ``enum``,
``const``, ``default``, ``$ref`` into ``$defs`` / ``definitions``, ``anyOf`` / ``oneOf`` /
``allOf``, ``minimum`` / ``maximum`` (also exclusive), ``minLength`` / ``maxLength``,
``format`` (dates, times, e-mail, UUID, URI). A schema it cannot satisfy
gives a best effort (the router's validation then reports it, as with a real model).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["example_instance", "violating_instance"]

_MAX_DEPTH = 8
#: Strings of a ``format``, valid for it.
_FORMATS = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T12:00:00Z",
    "time": "12:00:00",
    "email": "user@example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "uri": "https://example.com",
}


def _resolve(schema: Any, root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` with a local ``$ref`` followed (once per level)."""
    for _ in range(_MAX_DEPTH):
        if not isinstance(schema, Mapping):
            return {}
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        schema = target
    return {}


def _type_of(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return str(kinds[0]) if kinds else "null"
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def example_instance(
    schema: Any, root: Mapping[str, Any] | None = None, depth: int = 0, *, text: str = "example"
) -> Any:
    """A value that matches ``schema`` (``root`` holds the ``$defs`` of ``$ref``\\ s); its
    strings are ``text`` (unless a ``format`` asks for something else)."""
    base: Mapping[str, Any] = schema if isinstance(schema, Mapping) else {}
    root = base if root is None else root
    resolved = _resolve(base, root)
    if depth > _MAX_DEPTH:
        return None
    if "const" in resolved:
        return copy.deepcopy(resolved["const"])
    enum = resolved.get("enum")
    if isinstance(enum, list) and enum:
        return copy.deepcopy(enum[0])
    if "default" in resolved:
        return copy.deepcopy(resolved["default"])
    for key in ("anyOf", "oneOf"):
        options = resolved.get(key)
        if isinstance(options, list) and options:
            usable = [o for o in options if _type_of(_resolve(o, root)) != "null"]
            return example_instance((usable or options)[0], root, depth + 1, text=text)
    parts = resolved.get("allOf")
    if isinstance(parts, list) and parts:
        merged: dict[str, Any] = {}
        for part in parts:
            merged.update(_resolve(part, root))
        return example_instance(merged, root, depth + 1, text=text)
    kind = _type_of(resolved)
    if kind == "object":
        properties = resolved.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = resolved.get("required")
        # Every property (a complete example), and any required one the properties lack.
        names = [*properties, *(r for r in required or () if r not in properties)]
        return {
            str(name): example_instance(properties.get(name, {}), root, depth + 1, text=text)
            for name in names
        }
    if kind == "array":
        count = resolved.get("minItems", 1)
        count = count if isinstance(count, int) and count >= 1 else 1
        return [example_instance(resolved.get("items", {}), root, depth + 1, text=text)] * count
    if kind == "integer":
        return _number(resolved, 1, integer=True)
    if kind == "number":
        return _number(resolved, 1.5, integer=False)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "string" or kind is None:
        value = _FORMATS.get(str(resolved.get("format")), text) or "x"
        length = resolved.get("minLength", 0)
        if isinstance(length, int) and length > len(value):
            value = value * (length // len(value) + 1)
        longest = resolved.get("maxLength")
        return value[:longest] if isinstance(longest, int) else value
    return None


def _number(schema: Mapping[str, Any], fallback: float, *, integer: bool) -> float | int:
    low = schema.get("minimum")
    exclusive = schema.get("exclusiveMinimum")
    if isinstance(exclusive, int | float) and not isinstance(exclusive, bool):
        low = exclusive + 1
    value = low if isinstance(low, int | float) and not isinstance(low, bool) else fallback
    high = schema.get("maximum")
    exclusive_high = schema.get("exclusiveMaximum")
    if isinstance(exclusive_high, int | float) and not isinstance(exclusive_high, bool):
        high = exclusive_high - 1
    if isinstance(high, int | float) and not isinstance(high, bool) and value > high:
        value = high
    return int(value) if integer else float(value)


def _wrong_value(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int = 0) -> Any:
    """A value ``schema`` refuses: one of another type, or (when the schema names no type,
    so any type passes its keywords) an array or object whose first item breaks them."""
    kind = _type_of(schema)
    if kind == "string" or "enum" in schema or "const" in schema:
        return 12345
    if "type" not in schema and depth < _MAX_DEPTH:
        if kind == "array":
            return [_wrong_value(_resolve(schema.get("items", {}), root), root, depth + 1)]
        properties = schema.get("properties")
        if kind == "object" and isinstance(properties, Mapping) and properties:
            name = str(next(iter(properties)))
            return {name: _wrong_value(_resolve(properties[name], root), root, depth + 1)}
    return "not-a-" + (kind or "value")


def violating_instance(schema: Any) -> Any:
    """A value close to a valid one that does NOT match ``schema``: the first required
    property left out, else the first property of the wrong type, else a JSON array
    where an object is expected."""
    base: Mapping[str, Any] = schema if isinstance(schema, Mapping) else {}
    value = example_instance(base)
    resolved = _resolve(base, base)
    if isinstance(value, dict):
        required = resolved.get("required")
        if isinstance(required, list) and required:
            value.pop(str(required[0]), None)
            return value
        properties = resolved.get("properties")
        if isinstance(properties, Mapping) and properties:
            name = str(next(iter(properties)))
            value[name] = _wrong_value(_resolve(properties[name], base), base)
            return value
    return [value]
