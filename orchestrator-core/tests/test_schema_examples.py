"""orchestrator.testing.schemas: the emulators' "model" answers with values that validate
against the schema it was given (and, when scripted to, with ones that do not)."""

from __future__ import annotations

from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel

from orchestrator.testing.schemas import example_instance, violating_instance


class Address(BaseModel):
    street: str
    zip_code: str | None = None


class Person(BaseModel):
    name: str
    kind: Literal["a", "b"]
    tags: list[str]
    address: Address
    backup: Address | None = None
    score: float = 0.5


SCHEMAS: list[dict[str, Any]] = [
    Person.model_json_schema(),
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 9}}},
    {"type": "object", "properties": {"n": {"type": "integer", "exclusiveMinimum": 5}}},
    {"type": "object", "properties": {"n": {"type": "number", "maximum": 0}}},
    {"type": "object", "properties": {"n": {"type": "number", "exclusiveMaximum": 0}}},
    {"type": "object", "properties": {"s": {"type": "string", "minLength": 12, "maxLength": 20}}},
    {"type": "object", "properties": {"s": {"type": "string", "maxLength": 3}}},
    {"type": "object", "properties": {"d": {"type": "string", "format": "date"}}},
    {"type": "object", "properties": {"c": {"const": 3}, "b": {"type": "boolean"}}},
    {"type": "object", "properties": {"x": {"type": ["null", "integer"]}}},
    {"type": "object", "properties": {"x": {"type": "null"}}},
    {"type": "object", "properties": {"x": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}},
    {"type": "object", "properties": {"a": {"type": "array", "items": {}, "minItems": 2}}},
    {"properties": {"untyped": {}}},
    {"type": "object", "properties": {"x": {"allOf": [{"type": "integer"}]}}},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_examples_validate(schema: dict[str, Any]) -> None:
    jsonschema.validate(example_instance(schema), schema)


@pytest.mark.parametrize("schema", [s for s in SCHEMAS if s.get("type") == "object"])
def test_violations_do_not(schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    if schema.get("required") or any("type" in p for p in schema["properties"].values()):
        assert list(validator.iter_errors(violating_instance(schema)))


def test_a_broken_reference_and_deep_nesting_end() -> None:
    assert example_instance({"$ref": "#/$defs/missing"}) == "example"  # a best effort
    deep: dict[str, Any] = {"type": "object", "properties": {}}
    deep["properties"]["self"] = {"$ref": "#"}
    value = example_instance(deep)
    depth = 0
    while isinstance(value, dict) and value.get("self") is not None:
        value, depth = value["self"], depth + 1
    assert depth < 20
