"""Translation between LangChain's types and the orchestrator's: messages in, tools in,
completions and chunks out, router errors out as the errors LangChain users catch."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core import exceptions as lc_errors
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.utils.function_calling import convert_to_openai_tool

from orchestrator import errors as orc_errors
from orchestrator.tools import new_call_id
from orchestrator.types import Chunk, Completion, Message, ToolCall, Usage

__all__ = [
    "StopCutter",
    "as_langchain_error",
    "chunk_message",
    "completion_message",
    "to_messages",
    "to_tool",
    "to_tool_choice",
    "usage_metadata",
]

_ROLES = {"system": "system", "developer": "system", "user": "user", "human": "user"}
_ROLES.update(assistant="assistant", ai="assistant", tool="tool")


def _text(content: str | list[str | dict[str, Any]], what: str) -> str:
    """The text of a message's content: a string, or a list of text blocks. Tool-use blocks
    are skipped (the message's ``tool_calls`` carry them); anything else (images, audio,
    files) is refused, because no provider of the router receives it."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind in ("tool_use", "tool_call", "function_call", "reasoning", "thinking"):
            continue  # the call is in tool_calls; reasoning is the model's own, not input
        else:
            raise ValueError(
                f"{what} has a {kind!r} content block; the orchestrator sends text only: "
                "give the message as text (multimodal input is not supported)"
            )
    return "".join(parts)


def _call(call: Mapping[str, Any]) -> ToolCall:
    return ToolCall(call.get("id") or new_call_id(), call["name"], dict(call.get("args") or {}))


def to_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """LangChain messages as orchestrator :class:`Message`\\ s.

    ``SystemMessage`` -> system, ``HumanMessage`` -> user, ``AIMessage`` -> assistant (with
    its ``tool_calls``), ``ToolMessage`` -> the tool result for its ``tool_call_id``;
    ``ChatMessage`` by its role. A ``name`` on a human message is not sent (vendors have
    no place for it).
    """
    result: list[Message] = []
    for index, message in enumerate(messages):
        what = f"messages[{index}] ({type(message).__name__})"
        if isinstance(message, ToolMessage):
            content = message.content
            text = (
                _text(content, what)
                if isinstance(content, str | list)
                else json.dumps(content, ensure_ascii=False)
            )
            result.append(Message("tool", text, tool_call_id=message.tool_call_id))
        elif isinstance(message, AIMessage):
            calls = tuple(_call(c) for c in message.tool_calls)
            result.append(Message("assistant", _text(message.content, what), calls))
        elif isinstance(message, HumanMessage):
            result.append(Message("user", _text(message.content, what)))
        elif isinstance(message, SystemMessage):
            result.append(Message("system", _text(message.content, what)))
        elif isinstance(message, ChatMessage) and message.role in _ROLES:
            role = _ROLES[message.role]
            if role == "tool":
                raise ValueError(f"{what}: send tool results as ToolMessage(tool_call_id=...)")
            result.append(Message(role, _text(message.content, what)))  # type: ignore[arg-type]
        else:
            raise TypeError(
                f"{what} is not supported; use SystemMessage, HumanMessage, AIMessage or "
                "ToolMessage (or ChatMessage with role system, user or assistant)"
            )
    return _merge_system(result)


def _merge_system(messages: list[Message]) -> list[Message]:
    """Consecutive system messages as one (joined by a blank line): several vendors
    (GigaChat) accept a single system message only, and the meaning is the same."""
    merged: list[Message] = []
    for message in messages:
        if merged and message.role == "system" and merged[-1].role == "system":
            merged[-1] = Message("system", f"{merged[-1].content}\n\n{message.content}")
        else:
            merged.append(message)
    return merged


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop sequence, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text, False) if cut < 0 else (text[:cut], True)


class StopCutter:
    """Cuts a stream of text deltas before the first stop sequence: text that may be the
    start of a stop sequence is held back until the next delta decides."""

    __slots__ = ("done", "held", "stops")

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""
        self.done = False

    def feed(self, delta: str) -> str:
        """The part of ``delta`` (with what was held) that can be shown now."""
        if self.done:
            return ""
        text, found = cut_at_stop(self.held + delta, self.stops)
        if found:
            self.done, self.held = True, ""
            return text
        keep = max(
            (
                n
                for s in self.stops
                for n in range(min(len(s) - 1, len(text)), 0, -1)
                if text.endswith(s[:n])
            ),
            default=0,
        )
        self.held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """What was held back, at the end of the stream."""
        held, self.held = self.held, ""
        return held


def to_tool(tool: Any) -> dict[str, Any]:
    """A LangChain tool (a ``BaseTool``, a function, a pydantic model, a TypedDict or a tool
    dict) as the orchestrator's tool dict ``{"name", "description", "parameters"}``."""
    function = convert_to_openai_tool(tool)["function"]
    return {
        "name": function["name"],
        "description": function.get("description") or "",
        "parameters": function.get("parameters") or {"type": "object", "properties": {}},
    }


def to_tool_choice(choice: Any, tools: Sequence[Mapping[str, Any]]) -> str | None:
    """LangChain's ``tool_choice`` as the orchestrator's: ``"any"`` and ``True`` are
    ``"required"``; a dict names a tool as OpenAI's does."""
    if choice is None or choice is False:
        return None
    if choice is True or choice == "any":
        return "required"
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if not isinstance(name, str):
            raise ValueError(f"tool_choice {choice!r} names no tool")
        return name
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required") and choice not in {t["name"] for t in tools}:
            raise ValueError(
                f"tool_choice {choice!r} is neither 'auto', 'none', 'any'/'required' nor the "
                f"name of a bound tool ({', '.join(t['name'] for t in tools)})"
            )
        return choice
    raise TypeError(f"tool_choice must be a string, a bool or a dict, got {type(choice).__name__}")


def usage_metadata(usage: Usage) -> UsageMetadata:
    """The vendor's token counts as LangChain's ``usage_metadata`` (never estimated)."""
    result = UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    )
    if usage.cached_prompt_tokens is not None:
        result["input_token_details"] = InputTokenDetails(cache_read=usage.cached_prompt_tokens)
    if usage.reasoning_tokens is not None:
        result["output_token_details"] = OutputTokenDetails(reasoning=usage.reasoning_tokens)
    return result


def _metadata(answer: Completion | Chunk, model: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "model_name": answer.model or model,
        "provider": answer.provider,
        "finish_reason": answer.finish_reason,
    }
    if answer.request_id:
        metadata["request_id"] = answer.request_id
    if answer.cost is not None:
        metadata["cost_rub"] = str(answer.cost)
    return metadata


def completion_message(completion: Completion, model: str) -> AIMessage:
    """A :class:`Completion` as an ``AIMessage``: text, tool calls, usage, and in
    ``response_metadata`` the ``model_name`` and the ``provider`` that answered.
    ``model`` names the model when the vendor did not."""
    metadata = _metadata(completion, model)
    if completion.latency:
        metadata["latency"] = completion.latency
    return AIMessage(
        content=completion.text,
        tool_calls=[
            {"name": c.name, "args": dict(c.arguments), "id": c.id, "type": "tool_call"}
            for c in completion.tool_calls
        ],
        usage_metadata=None if completion.usage is None else usage_metadata(completion.usage),
        response_metadata=metadata,
    )


def chunk_message(chunk: Chunk, model: str, *, first_index: int = 0) -> AIMessageChunk:
    """A :class:`Chunk` as an ``AIMessageChunk``. Only the last chunk (the one with
    ``finish_reason``) carries usage and ``response_metadata``, so that adding the chunks
    up counts each once. Tool calls arrive whole; ``first_index`` numbers them after the
    stream's earlier calls."""
    calls = [
        tool_call_chunk(name=c.name, args=c.arguments_json(), id=c.id, index=first_index + i)
        for i, c in enumerate(chunk.tool_calls)
    ]
    if chunk.finish_reason is None:
        return AIMessageChunk(content=chunk.delta, tool_call_chunks=calls)
    return AIMessageChunk(
        content=chunk.delta,
        tool_call_chunks=calls,
        usage_metadata=None if chunk.usage is None else usage_metadata(chunk.usage),
        response_metadata=_metadata(chunk, model),
        chunk_position="last",
    )


# -- errors ---------------------------------------------------------------------------------

#: Each router error and the LangChain error it also is (most specific first).
_ERROR_MAP: tuple[tuple[type[Exception], type[Exception]], ...] = (
    (orc_errors.StructuredOutputError, lc_errors.OutputParserException),
    (orc_errors.UnsupportedCapabilityError, lc_errors.ModelInvalidRequestError),
    (orc_errors.ContextLengthError, lc_errors.ContextOverflowError),
    (orc_errors.ModelNotFoundError, lc_errors.ModelNotFoundError),
    (orc_errors.InvalidRequestError, lc_errors.ModelInvalidRequestError),
    (orc_errors.PermissionDeniedError, lc_errors.ModelPermissionDeniedError),
    (orc_errors.AuthenticationError, lc_errors.ModelAuthenticationError),
    (orc_errors.RateLimitError, lc_errors.ModelRateLimitError),
    (orc_errors.ProviderTimeoutError, lc_errors.ModelTimeoutError),
    (orc_errors.TransportError, lc_errors.ModelConnectionError),
    (orc_errors.ServiceUnavailableError, lc_errors.ModelAPIError),
    (orc_errors.StreamError, lc_errors.ModelAPIError),
    (orc_errors.ProviderError, lc_errors.ModelError),
)
_MIXED: dict[tuple[type[Exception], type[Exception]], type[Exception]] = {}


def _langchain_class(error: Exception) -> type[Exception] | None:
    if isinstance(error, orc_errors.AllProvidersFailedError):
        # One kind of failure everywhere (every provider rate-limited...) is that kind;
        # mixed failures are a ModelError.
        kinds = {_langchain_class(a.error) for a in error.attempts}
        return kinds.pop() if len(kinds) == 1 else lc_errors.ModelError
    return next((lc for orc, lc in _ERROR_MAP if isinstance(error, orc)), None)


def as_langchain_error(error: BaseException) -> BaseException:
    """``error`` (the same object) made also an instance of the LangChain error that
    matches it, as LangChain's own integrations do: ``except RateLimitError`` (ours) and
    ``except ModelRateLimitError`` (LangChain's) both catch it, and ``is_retryable`` says
    whether trying again later may help. A structured-output failure is also an
    ``OutputParserException``. Other errors are returned unchanged."""
    if not isinstance(error, orc_errors.ProviderError) or isinstance(
        error, lc_errors.LangChainException
    ):
        return error
    target = _langchain_class(error)
    if target is None:  # pragma: no cover - ProviderError is the last row
        return error
    if isinstance(error, orc_errors.AllProvidersFailedError):
        for attempt in error.attempts:
            as_langchain_error(attempt.error)
    cls = type(error)
    mixed = _MIXED.get((cls, target))
    if mixed is None:
        mixed = type(cls.__name__, (cls, target), {"__module__": cls.__module__})
        mixed.__qualname__ = cls.__qualname__
        _MIXED[cls, target] = mixed
    mutable: Any = error
    mutable.__class__ = mixed
    if isinstance(mutable, lc_errors.ModelError):
        mutable.is_retryable = error.transient
    if isinstance(mutable, lc_errors.OutputParserException):
        mutable.observation = None
        mutable.llm_output = getattr(error, "raw_text", None)
        mutable.send_to_llm = False
    return error
