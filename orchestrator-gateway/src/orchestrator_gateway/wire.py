"""OpenAI's wire shapes in and out: a chat-completions or embeddings request body becomes the
router's messages and parameters (validated here, before any provider is called); a
:class:`~orchestrator.Completion`, :class:`~orchestrator.Chunk` or
:class:`~orchestrator.Embeddings` becomes the JSON the official client expects."""

from __future__ import annotations

import base64
import itertools
import secrets
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from orchestrator import GenerationParams
from orchestrator.types import (
    Chunk,
    Completion,
    Embeddings,
    Message,
    ToolCall,
    Usage,
    coerce_messages,
)
from orchestrator_gateway.errors import GatewayError, bad_request, from_validation

__all__ = ["ChatRequest", "EmbeddingRequest", "parse_chat", "parse_embeddings"]

#: Accepted and ignored: they change nothing the router could honour or need not honour.
_IGNORED = frozenset(
    ("user", "metadata", "store", "service_tier", "seed", "prompt_cache_key", "safety_identifier")
)
_CHAT_KEYS = frozenset(
    (
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "n",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
    )
)
#: Message keys the official client may echo back with null values (a ChatCompletionMessage
#: dumped as is); dropped when empty.
_ECHOED = frozenset(("refusal", "audio", "function_call", "annotations"))


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    params: GenerationParams | None
    stream: bool
    include_usage: bool


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    model: str
    texts: list[str]
    base64: bool


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise bad_request("the request body must be a JSON object")
    return body


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model: a model name is required (GET /v1/models lists them)", "model")
    if len(model) > 256 or not model.isprintable():
        raise bad_request("model: at most 256 printable characters", "model")
    return model


def _reject_unknown(body: Mapping[str, Any], known: frozenset[str]) -> None:
    for key in body:
        if key not in known and key not in _IGNORED:
            raise bad_request(
                f"{key}: not supported by this gateway; leave it out of the request",
                key,
                "unsupported_parameter",
            )


def _text(content: Any, index: int) -> Any:
    """Content parts (``[{"type": "text", "text": ...}]``) joined into one string."""
    if not isinstance(content, list):
        return content
    texts = []
    for part in content:
        if not (isinstance(part, Mapping) and part.get("type") == "text"):
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise bad_request(
                f"messages[{index}].content: only text parts are supported, got {kind!r}",
                f"messages[{index}].content",
            )
        texts.append(str(part.get("text", "")))
    return "".join(texts)


def _message(item: Any, index: int) -> Any:
    if not isinstance(item, Mapping):
        return item  # coerce_messages says what is wrong
    message = {k: v for k, v in item.items() if not (k in _ECHOED and not v)}
    if message.get("role") == "developer":
        message["role"] = "system"
    if message.get("role") != "tool":
        message.pop("name", None)  # OpenAI's participant name: nothing to route on
    if "content" in message:
        message["content"] = _text(message["content"], index)
    return message


def _tool_choice(value: Any) -> Any:
    if isinstance(value, Mapping):
        function = value.get("function")
        if value.get("type") == "function" and isinstance(function, Mapping):
            return function.get("name")
        raise bad_request(
            "tool_choice: use 'auto', 'none', 'required' or "
            '{"type": "function", "function": {"name": ...}}',
            "tool_choice",
        )
    return value


def parse_chat(body: Any) -> ChatRequest:
    """Validate a chat-completions request (400 naming the parameter on any problem)."""
    body = _object(body)
    _reject_unknown(body, _CHAT_KEYS)
    model = _model(body)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages: a non-empty list of messages is required", "messages")
    try:
        messages = coerce_messages([_message(item, i) for i, item in enumerate(raw)])
    except (TypeError, ValueError) as exc:
        raise bad_request(f"messages: {exc}", "messages") from None
    n = body.get("n")
    if n not in (None, 1):
        raise bad_request("n: only one choice per request (n=1) is supported", "n")
    stream = body.get("stream")
    if stream not in (None, True, False):
        raise bad_request("stream: must be true or false", "stream")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, Mapping) or not stream):
        raise bad_request("stream_options: an object, and only with stream=true", "stream_options")
    include_usage = bool(options and options.get("include_usage"))
    values: dict[str, Any] = {}
    for key in ("temperature", "top_p", "tools", "parallel_tool_calls"):
        if body.get(key) is not None:
            values[key] = body[key]
    for key in ("max_completion_tokens", "max_tokens"):
        if body.get(key) is not None:
            values["max_tokens"] = body[key]
    stop = body.get("stop")
    if stop is not None:
        values["stop"] = [stop] if isinstance(stop, str) else stop
    if body.get("tool_choice") is not None:
        values["tool_choice"] = _tool_choice(body["tool_choice"])
    response_format = body.get("response_format")
    if response_format is not None and not (
        isinstance(response_format, Mapping) and response_format.get("type") == "text"
    ):
        values["response_format"] = response_format
    try:
        params = GenerationParams(**values) if values else None
    except ValidationError as exc:
        raise from_validation(exc) from None
    except (TypeError, ValueError) as exc:
        raise bad_request(str(exc)) from None
    return ChatRequest(model, messages, params, bool(stream), include_usage)


def parse_embeddings(body: Any, max_inputs: int) -> EmbeddingRequest:
    """Validate an embeddings request: texts only (token-id inputs are refused)."""
    body = _object(body)
    _reject_unknown(body, frozenset(("model", "input", "encoding_format")))
    model = _model(body)
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        raise bad_request("input: a string or a non-empty list of strings is required", "input")
    if len(texts) > max_inputs:
        raise bad_request(f"input: at most {max_inputs} texts per request", "input")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise bad_request(
                f"input[{index}]: only text inputs are supported (not token ids)", "input"
            )
        if not text.strip():
            raise bad_request(f"input[{index}]: cannot be an empty string", "input")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise bad_request("encoding_format: 'float' or 'base64'", "encoding_format")
    return EmbeddingRequest(model, texts, encoding == "base64")


# -- answers -----------------------------------------------------------------------------


#: Ids are unique per process start (random) and per response (counter): cheaper than uuid4.
_ID_PREFIX = secrets.token_hex(6)
_ids = itertools.count(1)


def new_id(prefix: str = "chatcmpl") -> str:
    return f"{prefix}-{_ID_PREFIX}{next(_ids):08x}"


def usage_json(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_prompt_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_prompt_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def tool_call_json(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json()},
    }


def completion_json(completion: Completion, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.text}
    if completion.tool_calls:
        message["content"] = completion.text or None
        message["tool_calls"] = [tool_call_json(call) for call in completion.tool_calls]
    return {
        "id": new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model or model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish(completion.finish_reason),
                "logprobs": None,
            }
        ],
        "usage": usage_json(completion.usage),
    }


def _finish(reason: str | None) -> str | None:
    # "error" is the router's own; OpenAI's clients know stop/length/tool_calls/content_filter.
    return "stop" if reason == "error" else reason


class ChunkWriter:
    """Turns the router's chunks into OpenAI's ``chat.completion.chunk`` events: the role
    on the first, tool calls as whole ``delta.tool_calls`` entries with running indexes, and
    with ``include_usage`` a final ``choices: []`` event carrying the usage."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = new_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.tool_index = 0
        self.started = False
        self.usage: Usage | None = None

    def _event(self, choices: list[dict[str, Any]], model: str | None) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": model or self.model,
            "choices": choices,
        }
        if self.include_usage:
            event["usage"] = None
        return event

    def chunk(self, chunk: Chunk) -> list[dict[str, Any]]:
        """The events for one chunk (none for an empty one in the middle of a stream)."""
        delta: dict[str, Any] = {}
        if not self.started:
            delta["role"] = "assistant"
            self.started = True
        if chunk.delta or (delta and not chunk.tool_calls):
            delta["content"] = chunk.delta
        if chunk.tool_calls:
            delta["tool_calls"] = [self._tool_delta(call) for call in chunk.tool_calls]
        if chunk.usage is not None:
            self.usage = chunk.usage
        finish = _finish(chunk.finish_reason)
        if not delta and finish is None:
            return []
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return [self._event([choice], chunk.model)]

    def _tool_delta(self, call: ToolCall) -> dict[str, Any]:
        entry = {"index": self.tool_index, **tool_call_json(call)}
        self.tool_index += 1
        return entry

    def usage_event(self) -> dict[str, Any] | None:
        if not self.include_usage:
            return None
        event = self._event([], None)
        event["usage"] = usage_json(self.usage) or usage_json(Usage())
        return event


def embeddings_json(result: Embeddings, model: str, as_base64: bool) -> dict[str, Any]:
    data = []
    for index, vector in enumerate(result.vectors):
        embedding: Sequence[float] | str = list(vector)
        if as_base64:  # packed little-endian float32, as the official client decodes it
            packed = struct.pack(f"<{len(vector)}f", *vector)
            embedding = base64.b64encode(packed).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = result.usage
    tokens = 0 if usage is None else usage.prompt_tokens or usage.total_tokens
    return {
        "object": "list",
        "data": data,
        "model": result.model or model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def error_event(error: GatewayError) -> dict[str, Any]:
    return error.body()
