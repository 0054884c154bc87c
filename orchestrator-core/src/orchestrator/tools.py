"""Tools the model may call, and the shape an answer must have (structured output).

``Tool`` describes a function by name, description and JSON-Schema parameters; build it from
a plain Python function (:meth:`Tool.from_function`) or a pydantic model
(:meth:`Tool.from_model`). ``ResponseFormat`` asks for a JSON answer, optionally matching a
JSON Schema or a pydantic model; the router validates the answer and returns it parsed.

For provider authors: :func:`parse_arguments` decodes a vendor's tool-call arguments,
:class:`ToolCallAssembler` rebuilds whole calls from OpenAI-style streamed deltas, and
:func:`new_call_id` makes up an id for vendors that have none.
"""

from __future__ import annotations

import inspect
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.errors import InvalidToolCallError, StructuredOutputError
from orchestrator.types import ToolCall

__all__ = [
    "ResponseFormat",
    "Tool",
    "ToolCallAssembler",
    "ToolChoice",
    "as_response_format",
    "as_tool",
    "new_call_id",
    "parse_arguments",
]

#: ``auto`` (the model decides), ``none`` (no calls), ``required`` (at least one call), or
#: the name of one of the request's tools (a call of exactly that tool).
ToolChoice = Literal["auto", "none", "required"] | str
TOOL_CHOICE_MODES = frozenset(("auto", "none", "required"))
# OpenAI's rule (letters, digits, _ and -, at most 64), starting with a letter or _ as
# GigaChat requires ("Latin letters, must not start with a digit").
_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def _object_schema(schema: Any, what: str) -> dict[str, Any]:
    if not isinstance(schema, Mapping):
        raise TypeError(
            f"{what} must be a JSON Schema object (a dict), got {type(schema).__name__}"
        )
    result: dict[str, Any] = dict(schema)
    if result.get("type", "object") != "object":
        raise ValueError(
            f"{what} must describe a JSON object (type 'object'), not {result['type']!r}"
        )
    result.setdefault("type", "object")
    _check_schema(result, what)
    return result


def _check_schema(schema: Mapping[str, Any], what: str) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"{what} is not a valid JSON Schema: {exc.message}") from None


def _schema_errors(schema: Mapping[str, Any], value: Any) -> list[str]:
    from jsonschema import Draft202012Validator

    errors = []
    for error in Draft202012Validator(schema).iter_errors(value):
        where = "/".join(str(p) for p in error.absolute_path)
        errors.append(f"{where or '(root)'}: {error.message}")
    return errors


def _model_schema(model: type[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = dict(model.model_json_schema())
    schema.pop("title", None)
    return schema


def _is_pydantic_model(value: Any) -> bool:
    return isinstance(value, type) and hasattr(value, "model_json_schema")


def _first_paragraph(doc: str | None) -> str:
    return inspect.cleandoc(doc).split("\n\n", 1)[0].replace("\n", " ") if doc else ""


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may ask to call.

    ``parameters`` is the JSON Schema of its arguments (an object). Names are letters,
    digits, ``_`` and ``-``, start with a letter or ``_`` and have at most 64 characters
    (what every supported vendor accepts); ``auto``, ``none`` and ``required`` are
    ``tool_choice`` modes, not names.
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _TOOL_NAME.fullmatch(self.name):
            raise ValueError(
                f"tool name {self.name!r} is not allowed: use 1-64 Latin letters, digits, "
                "'_' or '-', starting with a letter or '_'"
            )
        if self.name in TOOL_CHOICE_MODES:
            raise ValueError(f"a tool cannot be named {self.name!r}: that is a tool_choice mode")
        if not isinstance(self.description, str):
            raise TypeError("tool description must be a string")
        object.__setattr__(
            self, "parameters", _object_schema(self.parameters, f"parameters of tool {self.name!r}")
        )

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Tool:
        """A tool for ``function``: its name, its docstring's first paragraph, and a schema
        built by pydantic from its signature (annotations and defaults)."""
        from pydantic import create_model

        fields: dict[str, Any] = {}
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise ValueError(
                    f"{function.__name__}() takes *{parameter.name}: a tool needs named parameters"
                )
            annotation = Any if parameter.annotation is parameter.empty else parameter.annotation
            default = ... if parameter.default is parameter.empty else parameter.default
            fields[parameter.name] = (annotation, default)
        model = create_model(function.__name__, **fields)
        return cls(
            name or function.__name__,
            _first_paragraph(function.__doc__) if description is None else description,
            _model_schema(model),
        )

    @classmethod
    def from_model(
        cls, model: type[Any], *, name: str | None = None, description: str | None = None
    ) -> Tool:
        """A tool whose arguments are ``model`` (a pydantic model class)."""
        if not _is_pydantic_model(model):
            raise TypeError(f"from_model() needs a pydantic model class, got {model!r}")
        return cls(
            name or model.__name__,
            _first_paragraph(model.__doc__) if description is None else description,
            _model_schema(model),
        )

    def validate_call(self, call: ToolCall) -> None:
        """Raise :class:`InvalidToolCallError` unless ``call``'s arguments match the schema."""
        errors = _schema_errors(self.parameters, dict(call.arguments))
        if errors:
            raise InvalidToolCallError(
                f"the model called {self.name!r} with arguments that do not match its "
                f"parameters: {'; '.join(errors[:3])}",
                raw_text=call.arguments_json(),
                errors=errors,
            )


def as_tool(value: Any) -> Tool:
    """A :class:`Tool` from a Tool, a function, a pydantic model class, or a dict: flat
    ``{"name", "description", "parameters"}`` or OpenAI's
    ``{"type": "function", "function": {...}}``."""
    if isinstance(value, Tool):
        return value
    if _is_pydantic_model(value):
        return Tool.from_model(value)
    if isinstance(value, Mapping):
        spec = value.get("function", value) if value.get("type", "function") == "function" else None
        if not isinstance(spec, Mapping):
            raise ValueError(f"unsupported tool type {value.get('type')!r}; only functions")
        unknown = set(spec) - {"name", "description", "parameters", "strict"}
        if unknown:
            raise ValueError(f"tool {spec.get('name')!r} has unsupported keys {sorted(unknown)}")
        if "name" not in spec:
            raise ValueError("a tool needs a 'name'")
        return Tool(
            spec["name"],
            spec.get("description") or "",
            spec.get("parameters") or {"type": "object", "properties": {}},
        )
    if callable(value):
        return Tool.from_function(value)
    raise TypeError(
        f"a tool must be a Tool, a function, a pydantic model or a dict, got {type(value).__name__}"
    )


_FENCE = re.compile(r"\A\s*```(?:json)?\s*\n(.*?)\n?```\s*\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """Ask for a JSON answer: any JSON object (``schema=None``), or one matching ``schema``.

    With ``model`` (a pydantic model class) the answer is parsed into that model.
    Build it from a model or a schema with :func:`as_response_format`.
    """

    schema: Mapping[str, Any] | None = None
    name: str = "response"
    model: type[Any] | None = None

    def __post_init__(self) -> None:
        if self.schema is not None:
            object.__setattr__(
                self, "schema", _object_schema(self.schema, "response_format schema")
            )
        if not _TOOL_NAME.fullmatch(self.name):
            raise ValueError(f"response_format name {self.name!r}: use letters, digits, _ or -")

    def parse(self, text: str) -> Any:
        """The answer decoded and validated, or :class:`StructuredOutputError` with the text."""
        match = _FENCE.match(text)
        body = match.group(1) if match else text
        try:
            value = json.loads(body)
        except json.JSONDecodeError as exc:
            raise StructuredOutputError(
                f"the answer is not JSON ({exc.msg} at position {exc.pos})",
                raw_text=text,
                errors=[str(exc)],
            ) from None
        if not isinstance(value, dict):
            raise StructuredOutputError(
                f"the answer is JSON {type(value).__name__}, not an object", raw_text=text
            )
        if self.model is not None:
            from pydantic import ValidationError

            try:
                return self.model.model_validate(value)
            except ValidationError as exc:
                errors = [
                    f"{'/'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                    for e in exc.errors(include_input=False, include_url=False)
                ]
                raise StructuredOutputError(
                    f"the answer does not match {self.model.__name__}: {'; '.join(errors[:3])}",
                    raw_text=text,
                    errors=errors,
                ) from None
        if self.schema is not None:
            errors = _schema_errors(self.schema, value)
            if errors:
                raise StructuredOutputError(
                    f"the answer does not match the schema: {'; '.join(errors[:3])}",
                    raw_text=text,
                    errors=errors,
                )
        return value


def as_response_format(value: Any) -> ResponseFormat:
    """A :class:`ResponseFormat` from a ResponseFormat, a pydantic model class, a JSON
    Schema dict, ``"json_object"``, or OpenAI's shapes ``{"type": "json_object"}`` and
    ``{"type": "json_schema", "json_schema": {"name", "schema"}}`` (GigaChat's flat
    ``{"type": "json_schema", "schema": ...}`` too)."""
    if isinstance(value, ResponseFormat):
        return value
    if _is_pydantic_model(value):
        return ResponseFormat(_model_schema(value), value.__name__, value)
    if value == "json_object":
        return ResponseFormat()
    if isinstance(value, Mapping):
        kind = value.get("type")
        if kind == "json_object":
            return ResponseFormat()
        if kind == "json_schema":
            spec = value.get("json_schema", value)
            if not isinstance(spec, Mapping):
                raise ValueError("response_format json_schema must be an object")
            schema = spec.get("schema")
            if schema is None:  # the bare schema under "json_schema" (Yandex's docs)
                schema = {k: v for k, v in spec.items() if k not in ("name", "strict")}
            return ResponseFormat(schema, spec.get("name") or "response")
        if kind == "text":
            raise ValueError("response_format 'text' is the default: leave response_format unset")
        return ResponseFormat(value)  # a JSON Schema itself
    raise TypeError(
        "response_format must be a pydantic model class, a JSON Schema dict, 'json_object' "
        f"or an OpenAI response_format dict, got {type(value).__name__}"
    )


def new_call_id() -> str:
    """A tool-call id for vendors whose calls have none."""
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_arguments(raw: Any, tool: str) -> dict[str, Any]:
    """A tool call's arguments as a dict: vendors send an object (GigaChat, YandexGPT) or a
    JSON string (OpenAI). Anything else is :class:`InvalidToolCallError` with the raw text."""
    if isinstance(raw, Mapping):
        return dict(raw)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        raise InvalidToolCallError(
            f"the model called {tool!r} with arguments that are not a JSON object",
            raw_text=raw,
        )
    raise InvalidToolCallError(
        f"the model called {tool!r} with arguments of type {type(raw).__name__}, not an object",
        raw_text=repr(raw),
    )


@dataclass(slots=True)
class _Partial:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAssembler:
    """Rebuilds whole tool calls from OpenAI-style streamed deltas
    (``{"index", "id"?, "function": {"name"?, "arguments"?: "<fragment>"}}``).

    Feed every delta's ``tool_calls`` list to :meth:`add`; :meth:`calls` returns the whole
    calls in index order once the stream finished (raising :class:`InvalidToolCallError`
    for arguments that do not decode).
    """

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: dict[int, _Partial] = {}

    def __bool__(self) -> bool:
        return bool(self._parts)

    def add(self, deltas: Sequence[Mapping[str, Any]]) -> None:
        for position, delta in enumerate(deltas):
            index = delta.get("index", position)
            part = self._parts.get(index)
            if part is None:
                part = self._parts[index] = _Partial()
            if delta.get("id"):
                part.id = delta["id"]
            function = delta.get("function") or {}
            if function.get("name") and not part.name:
                part.name = function["name"]
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                part.arguments.append(arguments)
            elif isinstance(arguments, Mapping):  # some servers send the object itself
                part.arguments.append(json.dumps(arguments))

    def calls(self) -> tuple[ToolCall, ...]:
        calls = []
        for index in sorted(self._parts):
            part = self._parts[index]
            if not part.name:
                raise InvalidToolCallError(
                    "a streamed tool call ended without a function name",
                    raw_text="".join(part.arguments),
                )
            arguments = parse_arguments("".join(part.arguments), part.name)
            calls.append(ToolCall(part.id or new_call_id(), part.name, arguments))
        return tuple(calls)
