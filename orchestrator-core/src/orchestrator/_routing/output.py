"""Checking an answer against what the request asked for, before it counts as a success:
tool calls must name one of the request's tools with arguments matching its schema, and
with ``response_format`` the text must parse and validate (the parsed value is returned).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.errors import InvalidToolCallError

if TYPE_CHECKING:
    from orchestrator.params import GenerationParams
    from orchestrator.types import ToolCall


def check_tool_calls(params: GenerationParams | None, calls: Sequence[ToolCall]) -> None:
    """Raise :class:`InvalidToolCallError` for a call the request did not allow."""
    for call in calls:
        tool = None if params is None else params.tool(call.name)
        if tool is None:
            offered = ", ".join(t.name for t in (params.tools or ())) if params else ""
            raise InvalidToolCallError(
                f"the model called {call.name!r}, which is not among the request's tools "
                f"({offered or 'none were given'})",
                raw_text=call.arguments_json(),
            )
        if params is not None and params.tool_choice == "none":
            raise InvalidToolCallError(
                f"the model called {call.name!r} although tool_choice was 'none'",
                raw_text=call.arguments_json(),
            )
        tool.validate_call(call)


def check_answer(params: GenerationParams | None, text: str, calls: Sequence[ToolCall]) -> Any:
    """Check tool calls and parse ``text`` by ``response_format``; the parsed value (None
    without a response format, or when the model answered with tool calls instead)."""
    if calls:
        check_tool_calls(params, calls)
        return None
    if params is None or params.response_format is None:
        return None
    return params.response_format.parse(text)
