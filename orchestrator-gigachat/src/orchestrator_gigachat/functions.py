"""GigaChat's function calling, structured output and embeddings on the wire.

Pure mappings between the orchestrator's vendor-neutral types and GigaChat's v1 fields
(``shared/specs/gigachat-functions-embeddings.md``), kept apart from the HTTP code so each
one can be tested on its own:

- tools go out as ``functions[]`` ({name, description, parameters}); ``tool_choice`` as
  ``function_call``: ``auto`` -> ``"auto"``, ``none`` -> ``"none"``, a name ->
  ``{"name": name}``, ``required`` -> ``{"name": <the only tool>}`` (GigaChat has no
  "call some tool" mode, so it works with exactly one tool);
- an assistant message with a tool call goes out with ``function_call`` (arguments as a JSON
  **object**) and, when the call came from GigaChat with one, ``functions_state_id``; a tool
  result goes out as role ``function`` with ``name`` and a JSON string ``content`` (a result
  that is not JSON is JSON-encoded, as langchain-gigachat does);
- GigaChat calls one function per answer and gives it no id: the call's id is made up. When
  the answer carries a ``functions_state_id`` (a UUID), the id is ``call_<its 32 hex
  digits>``, so the id itself brings the state id back on the next request; otherwise it is
  :func:`orchestrator.tools.new_call_id`'s (nothing is sent back then).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.errors import InvalidRequestError
from orchestrator.params import GenerationParams
from orchestrator.tools import ResponseFormat, Tool, new_call_id, parse_arguments
from orchestrator.types import Message, ToolCall

__all__ = [
    "FunctionCallParts",
    "answer_function_for",
    "call_id_for",
    "function_call_for",
    "function_content",
    "functions_for",
    "message_to_wire",
    "response_format_for",
    "state_id_of",
    "tool_call_from_wire",
]

_STATE_CALL_ID = re.compile(r"call_([0-9a-f]{32})")
#: The schema of "any JSON object" (response_format without a schema).
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


def call_id_for(state_id: Any) -> str:
    """A tool-call id for a GigaChat call: carries ``state_id`` when it is a UUID."""
    if isinstance(state_id, str):
        try:
            return f"call_{uuid.UUID(state_id).hex}"
        except ValueError:
            pass
    return new_call_id()


def state_id_of(call_id: str) -> str | None:
    """The ``functions_state_id`` a call id made by :func:`call_id_for` carries, or None."""
    match = _STATE_CALL_ID.fullmatch(call_id)
    return str(uuid.UUID(match.group(1))) if match else None


def function_content(content: str) -> str:
    """A tool result as GigaChat wants it: a JSON string (non-JSON text is JSON-encoded)."""
    try:
        json.loads(content)
    except ValueError:
        return json.dumps(content, ensure_ascii=False)
    return content


def message_to_wire(message: Message, provider: str) -> dict[str, Any]:
    """One message in GigaChat's shape (``tool`` -> role ``function``)."""
    if message.role == "tool":
        return {
            "role": "function",
            "name": message.name,
            "content": function_content(message.content),
        }
    if not message.tool_calls:
        return {"role": message.role, "content": message.content}
    if len(message.tool_calls) > 1:
        raise InvalidRequestError(
            f"GigaChat takes one function call per assistant message; this one has "
            f"{len(message.tool_calls)}: split them into one assistant message (and its "
            "result) per call, or use a provider with parallel tool calls",
            provider=provider,
        )
    call = message.tool_calls[0]
    wire: dict[str, Any] = {
        "role": "assistant",
        "content": message.content,
        "function_call": {"name": call.name, "arguments": dict(call.arguments)},
    }
    state_id = state_id_of(call.id)
    if state_id is not None:
        wire["functions_state_id"] = state_id
    return wire


def functions_for(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """``functions[]`` for ``tools``."""
    return [
        {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
        for t in tools
    ]


def function_call_for(params: GenerationParams, provider: str) -> str | dict[str, str] | None:
    """``function_call`` for ``params.tool_choice`` (None: send none, GigaChat decides)."""
    choice = params.tool_choice
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return choice
    if choice == "required":
        tools = params.tools or ()
        if len(tools) != 1:
            raise InvalidRequestError(
                f"GigaChat cannot require 'some tool' among {len(tools)}: it forces one named "
                "function or none. Set tool_choice to the tool's name, or 'auto'",
                provider=provider,
            )
        return {"name": tools[0].name}
    return {"name": choice}


def response_format_for(response_format: ResponseFormat) -> dict[str, Any]:
    """GigaChat's flat ``response_format`` (``{type: json_schema, schema, strict}``)."""
    if response_format.schema is None:
        return {"type": "json_schema", "schema": dict(_ANY_OBJECT)}
    return {"type": "json_schema", "schema": dict(response_format.schema), "strict": True}


def answer_function_for(response_format: ResponseFormat) -> dict[str, Any]:
    """The function whose forced call carries the answer (``structured_output="function"``)."""
    schema = response_format.schema
    return {
        "name": response_format.name,
        "description": "Give the answer: its arguments are the answer itself.",
        "parameters": dict(schema) if schema is not None else {**_ANY_OBJECT, "properties": {}},
    }


def tool_call_from_wire(function_call: Any, state_id: Any) -> ToolCall:
    """The :class:`ToolCall` of an answer's ``function_call`` (arguments an object or a
    JSON string); :class:`InvalidToolCallError` when it cannot be one."""
    from orchestrator.errors import InvalidToolCallError

    name = function_call.get("name") if isinstance(function_call, Mapping) else None
    if not isinstance(name, str) or not name:
        raise InvalidToolCallError(
            "GigaChat answered with a function call without a function name",
            raw_text=json.dumps(function_call, ensure_ascii=False, default=repr),
        )
    arguments = parse_arguments(function_call.get("arguments"), name)
    return ToolCall(call_id_for(state_id), name, arguments)


def _merge(into: dict[str, Any], part: Mapping[str, Any]) -> None:
    for key, value in part.items():
        current = into.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            _merge(current, value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


class FunctionCallParts:
    """A streamed ``function_call`` put back together: the first name seen; object
    arguments merged (nested objects too), string arguments joined and decoded."""

    __slots__ = ("_objects", "_texts", "name", "state_id")

    def __init__(self) -> None:
        self.name = ""
        self.state_id: Any = None
        self._objects: dict[str, Any] = {}
        self._texts: list[str] = []

    def add(self, function_call: Any, state_id: Any = None) -> None:
        """Add one delta's ``function_call`` (ValueError when it is not an object)."""
        if state_id is not None:
            self.state_id = state_id
        if function_call is None:
            return
        if not isinstance(function_call, Mapping):
            raise ValueError("function_call is not an object")
        name = function_call.get("name")
        if isinstance(name, str) and name and not self.name:
            self.name = name
        arguments = function_call.get("arguments")
        if isinstance(arguments, Mapping):
            _merge(self._objects, arguments)
        elif isinstance(arguments, str):
            self._texts.append(arguments)
        elif arguments is not None:
            raise ValueError("function_call.arguments is neither an object nor a string")

    def __bool__(self) -> bool:
        return bool(self.name or self._objects or self._texts)

    def function_call(self) -> dict[str, Any]:
        """The whole call as GigaChat would have sent it in one piece (string arguments
        decoded and merged over the object parts)."""
        arguments = dict(self._objects)
        if self._texts:
            _merge(arguments, parse_arguments("".join(self._texts), self.name or "?"))
        return {"name": self.name, "arguments": arguments}
