"""An OpenAI chat-completions API emulator that the official ``openai`` client accepts.

:class:`OpenAIEmulator` is an ASGI app serving ``POST /v1/chat/completions`` (JSON, or SSE
ending ``data: [DONE]``, with the ``choices: []`` usage chunk when
``stream_options.include_usage`` is set), ``GET /v1/models`` and ``GET /v1/models/{id}``,
with OpenAI's error body ``{"error": {"message", "type", "param", "code"}}``, ``x-request-id``
on every answer, and scriptable faults (``Retry-After``, ``retry-after-ms``,
``x-should-retry``, cut, broken and malformed streams, a mid-stream error event). Serve it
with :class:`orchestrator.testing.LoopbackServer` (HTTP, or HTTPS with a throwaway CA) and
point a provider at it with :func:`config_for`::

    from orchestrator.testing import LoopbackServer
    from orchestrator_openai import OpenAIProvider
    from orchestrator_openai.emulator import OpenAIEmulator, config_for

    app = OpenAIEmulator()
    with LoopbackServer(app) as server:
        provider = OpenAIProvider(config_for(server))

Answers are deterministic: ``"OpenAI emulator: <last user message>"``, the same for plain and
streamed calls; a small ``max_tokens`` cuts it with ``finish_reason="length"``.

Tools, structured output and embeddings (``POST /v1/embeddings``, ``float`` or ``base64``):
with ``tools`` (and ``tool_choice`` not ``none``) the "model" calls the tools named in the last
user message (all of them unless ``parallel_tool_calls`` is false), else the forced or first
tool, with arguments made from the tool's schema; after tool results it answers with them.
With ``response_format`` it answers JSON matching the schema. Script it instead with
:meth:`OpenAIEmulator.call_tools_next` (which tool, which arguments - a string is sent verbatim,
e.g. invalid JSON) and :meth:`OpenAIEmulator.reply_next` (an exact answer, e.g. JSON that
violates the schema). Streamed tool calls arrive as OpenAI sends them: the arguments string in
small deltas, several per chunk, so a client really has to reassemble them.
``tool_call_style="yandex"`` answers as Yandex's ``/v1`` does instead (call id = function name,
a streamed call whole in one chunk).

From the command line: ``orchestrator emulate openai`` or ``python -m
orchestrator_openai.emulator [--tls]``. Needs the ``emulator`` extra.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import random
import re
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from orchestrator.testing.schemas import example_instance
from orchestrator_openai.config import ENV_VARS, OpenAIConfig
from orchestrator_openai.provider import strict_compatible

if TYPE_CHECKING:
    from orchestrator.testing import LoopbackServer

__all__ = [
    "EMBEDDING_MODELS",
    "MODELS",
    "TEST_API_KEY",
    "BreakStream",
    "CallTool",
    "CutStream",
    "EmulatedConnectionReset",
    "ErrorEvent",
    "Fail",
    "MalformedLine",
    "NoDone",
    "OpenAIEmulator",
    "Pass",
    "RecordedRequest",
    "Reply",
    "answer_for",
    "config_for",
    "count_tokens",
    "embedding_for",
    "main",
]

#: The API key the emulator accepts by default.
TEST_API_KEY = "sk-emulator-0123456789abcdef"
#: What ``GET /v1/models`` lists; chat accepts these (and ``extra_models``).
MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)
#: Embedding models and the length of their vectors (``dimensions`` may shorten the
#: ``text-embedding-3`` ones).
EMBEDDING_MODELS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_ROLES = frozenset(("developer", "system", "user", "assistant", "tool", "function"))
_TOKEN = re.compile(r"\w+|[^\w\s]")

#: status -> (type, code, message) of OpenAI's error body.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request"),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden"),
    404: ("invalid_request_error", "model_not_found", "Not found"),
    408: ("timeout", None, "Request timed out"),
    409: ("invalid_request_error", None, "Conflict"),
    413: ("invalid_request_error", None, "Request too large"),
    422: ("invalid_request_error", None, "Unprocessable entity"),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests"),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", None, "Bad gateway"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later"),
}


def count_tokens(text: str) -> int:
    """The emulator's token count of ``text`` (words and punctuation marks)."""
    return len(_TOKEN.findall(text))


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and "text" in p
        )
    return str(content or "")


def answer_for(messages: Sequence[dict[str, Any]]) -> str:
    """The emulator's answer to ``messages`` (before ``max_tokens``)."""
    last_user = next(
        (_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    return f"OpenAI emulator: {last_user}"


def embedding_for(text: str, model: str, dimension: int, native: int | None = None) -> list[float]:
    """The emulator's unit vector for ``text``: the same text and model give the same vector;
    a shortened one (``dimensions``) is the model's full vector cut and renormalised, as
    OpenAI's text-embedding-3 models do."""
    seed = hashlib.sha256(f"{model}\0{text}".encode()).digest()
    rng = random.Random(seed)
    size = native or EMBEDDING_MODELS.get(model, dimension)
    full = [rng.gauss(0.0, 1.0) for _ in range(max(size, dimension))]
    cut = full[:dimension]
    norm = math.sqrt(sum(x * x for x in cut)) or 1.0
    # Rounded to float32, so a base64 answer decodes to exactly these numbers.
    return [struct.unpack("<f", struct.pack("<f", x / norm))[0] for x in cut]


def _truncate(text: str, max_tokens: int) -> tuple[str, bool]:
    matches = list(_TOKEN.finditer(text))
    if len(matches) <= max_tokens:
        return text, False
    return text[: matches[max_tokens - 1].end()], True


def _pieces(text: str) -> list[str]:
    """``text`` as stream deltas: each word with the whitespace before the next."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


# -- scripted faults ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fail:
    """Answer with ``status`` in OpenAI's error shape, with the retry headers given."""

    status: int
    retry_after: float | None = None
    message: str | None = None
    retry_after_ms: float | None = None
    #: Sent as ``x-should-retry: true|false``.
    should_retry: bool | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Pass:
    """Answer normally (a gap in a :meth:`OpenAIEmulator.script` sequence)."""


@dataclass(frozen=True, slots=True)
class CutStream:
    """Streaming only: end after ``after_chunks`` text chunks, no finish and no ``[DONE]``."""

    after_chunks: int = 1


@dataclass(frozen=True, slots=True)
class MalformedLine:
    """Streaming only: send a ``data:`` line that is not JSON after ``after_chunks``."""

    after_chunks: int = 1


@dataclass(frozen=True, slots=True)
class NoDone:
    """Streaming only: every event including the finish, but no ``[DONE]``."""


@dataclass(frozen=True, slots=True)
class BreakStream:
    """Streaming only: drop the connection after ``after_chunks`` text chunks."""

    after_chunks: int = 1


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """Streaming only: after ``after_chunks`` chunks send ``data: {"error": {...}}`` and end
    (what OpenAI does when generation fails mid-stream)."""

    after_chunks: int = 1
    message: str = "The server had an error while processing your request."


@dataclass(frozen=True, slots=True)
class CallTool:
    """A scripted tool call: the "model" calls ``name`` with ``arguments`` - a dict, a string
    sent verbatim (invalid JSON, say), or None for arguments made from the tool's schema."""

    name: str
    arguments: Mapping[str, Any] | str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer: exactly ``text`` (JSON that violates the response schema, say)."""

    text: str


@dataclass(frozen=True, slots=True)
class _Calls:
    calls: tuple[CallTool, ...] = field(default_factory=tuple)


Turn = Reply | _Calls


class EmulatedConnectionReset(Exception):
    """Raised inside a streamed body to make the server drop the connection."""


Step = Fail | Pass | CutStream | MalformedLine | NoDone | BreakStream | ErrorEvent
_StreamFault = CutStream | MalformedLine | NoDone | BreakStream | ErrorEvent
_STREAM_FAULTS = (CutStream, MalformedLine, NoDone, BreakStream, ErrorEvent)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the emulator received (headers lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class OpenAIEmulator:
    """OpenAI's chat-completions API as an ASGI app; an ``orchestrator.testing.ScriptableApp``.

    ``api_key``: the key every call must carry (None: any or none); sent as ``Bearer`` or,
    when ``accept_api_key_scheme`` (the Yandex style), as ``Api-Key`` too.
    Every scripting method is thread-safe.
    """

    def __init__(
        self,
        *,
        api_key: str | None = TEST_API_KEY,
        models: Sequence[str] = MODELS,
        accept_api_key_scheme: bool = True,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        context_window: int = 128_000,
        tool_call_style: Literal["openai", "yandex"] = "openai",
        tool_delta_size: int = 4,
        embedding_models: Mapping[str, int] = EMBEDDING_MODELS,
    ) -> None:
        self.api_key = api_key
        self.models = tuple(models)
        #: ``openai``: call ids ``call_...``, streamed arguments in deltas of
        #: ``tool_delta_size`` characters; ``yandex``: the id is the function's name and a
        #: streamed call comes whole in one chunk with the finish reason (Yandex's ``/v1``).
        self.tool_call_style = tool_call_style
        self.tool_delta_size = max(1, tool_delta_size)
        self.embedding_models = dict(embedding_models)
        self._turns: deque[Turn] = deque()
        self.accept_api_key_scheme = accept_api_key_scheme
        #: Seconds before every response's headers.
        self.latency = latency
        #: Seconds between streamed events.
        self.chunk_delay = chunk_delay
        #: Prompts over this many tokens get 400 ``context_length_exceeded``.
        self.context_window = context_window
        #: While True every call answers 503.
        self.outage = False
        self._lock = threading.Lock()
        self._steps: deque[Step] = deque()
        self._stream_faults: deque[_StreamFault] = deque()
        self._request_count = 0
        #: The last 1000 requests received, oldest first.
        self.requests: deque[RecordedRequest] = deque(maxlen=1000)
        self._app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/models/{model:path}", self._model, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    # -- ScriptableApp -------------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """API calls received so far."""
        return self._request_count

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
        retry_after_ms: float | None = None,
        should_retry: bool | None = None,
        code: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls with ``status`` (``{"error": {...}}``), with
        ``Retry-After``, ``retry-after-ms`` and ``x-should-retry`` when given."""
        self.script(
            *[Fail(status, retry_after, message, retry_after_ms, should_retry, code)] * times
        )

    def cut_next_stream(self, *, after_chunks: int = 1, times: int = 1) -> None:
        """End the next ``times`` streams after ``after_chunks`` chunks (no finish, no
        ``[DONE]``)."""
        with self._lock:
            self._stream_faults.extend([CutStream(after_chunks)] * times)

    def script(self, *steps: Step) -> None:
        """Queue what the next calls do, one step per call, in order (stream faults act as
        ``Pass`` on a plain call)."""
        with self._lock:
            self._steps.extend(steps)

    def call_tools_next(
        self, *calls: CallTool | str | tuple[str, Mapping[str, Any]], times: int = 1
    ) -> None:
        """The next ``times`` chat answers call these tools (a name alone: arguments made
        from its schema), whatever the request says; several calls are parallel calls."""
        turn = _Calls(
            tuple(
                CallTool(c) if isinstance(c, str) else CallTool(*c) if isinstance(c, tuple) else c
                for c in calls
            )
        )
        if not turn.calls:
            raise ValueError("call_tools_next() needs at least one call")
        with self._lock:
            self._turns.extend([turn] * times)

    def reply_next(self, text: str, *, times: int = 1) -> None:
        """The next ``times`` chat answers are exactly ``text`` (even with tools or a
        response_format: a schema-violating structured answer, say)."""
        with self._lock:
            self._turns.extend([Reply(text)] * times)

    def reset(self) -> None:
        """Forget scripted faults and answers, counters and recorded requests."""
        with self._lock:
            self._turns.clear()
            self._steps.clear()
            self._stream_faults.clear()
            self._request_count = 0
            self.requests.clear()
            self.outage = False
            self.latency = self.chunk_delay = 0.0

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _error(
        status: int,
        message: str | None = None,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        kind, default_code, default_message = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error")
        )
        body = {
            "error": {
                "message": message or default_message,
                "type": kind,
                "param": param,
                "code": code or default_code,
            }
        }
        all_headers = {"x-request-id": f"req_{uuid.uuid4().hex}", **(headers or {})}
        return JSONResponse(body, status, all_headers)

    def _fail(self, step: Fail) -> JSONResponse:
        headers: dict[str, str] = {}
        if step.retry_after is not None:
            headers["retry-after"] = f"{step.retry_after:g}"
        if step.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{step.retry_after_ms:g}"
        if step.should_retry is not None:
            headers["x-should-retry"] = "true" if step.should_retry else "false"
        return self._error(step.status, step.message, code=step.code, headers=headers)

    async def _begin(self, request: Request) -> tuple[bytes, Response | _StreamFault | None]:
        """Record and count a call; apply latency, outage, auth and the scripted step."""
        body = await request.body()
        self.requests.append(
            RecordedRequest(
                request.method,
                request.url.path,
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        with self._lock:
            self._request_count += 1
            step = self._steps.popleft() if self._steps else None
        if self.latency:
            await anyio.sleep(self.latency)
        if self.outage:
            return body, self._error(503)
        if isinstance(step, Fail):
            return body, self._fail(step)
        if self.api_key is not None:
            scheme, _, key = request.headers.get("authorization", "").partition(" ")
            schemes = ("bearer", "api-key") if self.accept_api_key_scheme else ("bearer",)
            if scheme.lower() not in schemes or key.strip() != self.api_key:
                shown = key.strip()
                hint = f"sk-...{shown[-4:]}" if len(shown) > 8 else "(none)"
                return body, self._error(
                    401,
                    f"Incorrect API key provided: {hint}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys."
                    if scheme
                    else "You didn't provide an API key.",
                    code="invalid_api_key" if scheme else None,
                )
        if isinstance(step, _STREAM_FAULTS):
            return body, step
        return body, None

    def _known(self, model: str) -> bool:
        return model in self.models

    def _validate(self, data: Any) -> JSONResponse | None:
        if not isinstance(data, dict):
            return self._error(400, "We could not parse the JSON body of your request.")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            return self._error(400, "you must provide a model parameter", param="model")
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            return self._error(
                400, "[] is too short - 'messages'", code="empty_array", param="messages"
            )
        call_ids: set[str] = set()
        unanswered: list[str] = []
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                return self._error(
                    400, f"Invalid value for 'messages[{index}].role'.", param="messages"
                )
            if unanswered and message["role"] != "tool":
                return self._unanswered(unanswered)
            content = message.get("content")
            if content is not None and not isinstance(content, str | list):
                return self._error(
                    400, f"Invalid type for 'messages[{index}].content'.", param="messages"
                )
            problem = self._check_history_calls(index, message)
            if problem is not None:
                return problem
            for call in message.get("tool_calls") or []:
                call_ids.add(call["id"])
                unanswered.append(call["id"])
            if message["role"] == "tool":
                if message.get("tool_call_id") not in call_ids:
                    return self._error(
                        400,
                        "Invalid parameter: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'.",
                        param=f"messages.[{index}].role",
                    )
                if message["tool_call_id"] in unanswered:
                    unanswered.remove(message["tool_call_id"])
        if unanswered:
            return self._unanswered(unanswered)
        problem = self._check_tools(data) or self._check_response_format(data)
        if problem is not None:
            return problem
        ranges = (
            ("temperature", 0.0, 2.0),
            ("top_p", 0.0, 1.0),
            ("max_tokens", 1, None),
            ("max_completion_tokens", 1, None),
            ("n", 1, 128),
        )
        for name, low, high in ranges:
            value = data.get(name)
            if value is None:
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or value < low
                or (high is not None and value > high)
            ):
                return self._error(400, f"Invalid value for '{name}'.", param=name)
        stop = data.get("stop")
        if stop is not None and not (
            isinstance(stop, str)
            or (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop))
        ):
            return self._error(400, "'stop' must be a string or up to 4 strings", param="stop")
        if data.get("stream_options") is not None and not data.get("stream"):
            return self._error(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        if not self._known(model):
            return self._error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        return None

    def _unanswered(self, ids: list[str]) -> JSONResponse:
        return self._error(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(ids)}",
            param="messages",
        )

    def _check_history_calls(self, index: int, message: dict[str, Any]) -> JSONResponse | None:
        calls = message.get("tool_calls")
        if calls is None:
            return None
        where = f"messages[{index}].tool_calls"
        if message["role"] != "assistant" or not isinstance(calls, list):
            return self._error(400, f"Invalid value for '{where}'.", param=where)
        for position, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if (
                not isinstance(function, dict)
                or not isinstance(call.get("id"), str)
                or call.get("type") != "function"
                or not isinstance(function.get("name"), str)
                or not isinstance(function.get("arguments"), str)
            ):
                return self._error(
                    400,
                    f"Invalid value for '{where}[{position}]': expected "
                    '{"id", "type": "function", '
                    '"function": {"name", "arguments": "<JSON string>"}}',
                    param=f"{where}[{position}]",
                )
        return None

    def _check_tools(self, data: dict[str, Any]) -> JSONResponse | None:
        tools = data.get("tools")
        choice = data.get("tool_choice")
        if tools is None:
            for key in ("tool_choice", "parallel_tool_calls"):
                if data.get(key) is not None:
                    return self._error(
                        400,
                        f"Invalid value for '{key}': '{key}' is only allowed when 'tools' "
                        "are specified.",
                        param=key,
                    )
            return None
        if not isinstance(tools, list) or len(tools) > 128:
            return self._error(400, "Invalid 'tools': expected an array of at most 128 tools.")
        names = []
        for index, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or tool.get("type") != "function":
                return self._error(
                    400, f"Invalid value for 'tools[{index}].type'.", param=f"tools[{index}]"
                )
            name = function.get("name")
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                return self._error(
                    400,
                    f"Invalid 'tools[{index}].function.name': string does not match pattern "
                    "'^[a-zA-Z0-9_-]+$' (1-64 characters).",
                    param=f"tools[{index}].function.name",
                )
            parameters = function.get("parameters")
            if parameters is not None and not isinstance(parameters, dict):
                return self._error(
                    400,
                    f"Invalid 'tools[{index}].function.parameters': expected an object.",
                    param=f"tools[{index}].function.parameters",
                )
            names.append(name)
        if isinstance(choice, dict):
            function = choice.get("function")
            name = function.get("name") if isinstance(function, dict) else None
            if choice.get("type") != "function" or name not in names:
                return self._error(
                    400,
                    f"Invalid value for 'tool_choice': function {name!r} not found in 'tools'.",
                    param="tool_choice",
                )
        elif choice is not None and choice not in ("none", "auto", "required"):
            return self._error(400, "Invalid value for 'tool_choice'.", param="tool_choice")
        parallel = data.get("parallel_tool_calls")
        if parallel is not None and not isinstance(parallel, bool):
            return self._error(
                400, "Invalid type for 'parallel_tool_calls'.", param="parallel_tool_calls"
            )
        return None

    def _check_response_format(self, data: dict[str, Any]) -> JSONResponse | None:
        response_format = data.get("response_format")
        if response_format is None:
            return None
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind == "text":
            return None
        if kind == "json_object":
            said = json.dumps(data.get("messages"), ensure_ascii=False).lower()
            if "json" not in said:
                return self._error(
                    400,
                    "'messages' must contain the word 'json' in some form, to use "
                    "'response_format' of type 'json_object'.",
                    param="messages",
                )
            return None
        if kind != "json_schema":
            return self._error(
                400, "Invalid value for 'response_format.type'.", param="response_format"
            )
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            return self._error(
                400,
                "Missing required parameter: 'response_format.json_schema'.",
                param="response_format.json_schema",
            )
        name = spec.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            return self._error(
                400,
                "Invalid 'response_format.json_schema.name': string does not match pattern "
                "'^[a-zA-Z0-9_-]+$' (1-64 characters).",
                param="response_format.json_schema.name",
            )
        if spec.get("strict") and not strict_compatible(spec.get("schema", {})):
            return self._error(
                400,
                f"Invalid schema for response_format '{name}': In context=(), "
                "'additionalProperties' is required to be supplied and to be false, and "
                "'required' must list every key in 'properties'.",
                code="invalid_json_schema",
                param="response_format",
            )
        return None

    # -- the "model" ---------------------------------------------------------------------------

    def _turn(self, data: dict[str, Any]) -> Turn:
        """What the model does: the scripted turn, else the default behaviour."""
        with self._lock:
            if self._turns:
                return self._turns.popleft()
        messages: list[dict[str, Any]] = data["messages"]
        tools = data.get("tools") or []
        choice = data.get("tool_choice")
        if tools and choice != "none" and messages[-1].get("role") != "tool":
            names = [t["function"]["name"] for t in tools]
            if isinstance(choice, dict):
                return _Calls((CallTool(choice["function"]["name"]),))
            last = next(
                (_text_of(m.get("content")) for m in reversed(messages) if m["role"] == "user"),
                "",
            )
            wanted = [n for n in names if re.search(rf"\b{re.escape(n)}\b", last)] or names[:1]
            if data.get("parallel_tool_calls") is False:
                wanted = wanted[:1]
            return _Calls(tuple(CallTool(n) for n in wanted))
        text = answer_for(messages)
        if messages[-1].get("role") == "tool":
            names_by_id = {
                call["id"]: call["function"]["name"]
                for m in messages
                for call in m.get("tool_calls") or ()
            }
            results = []
            for m in reversed(messages):
                if m.get("role") != "tool":
                    break
                name = names_by_id.get(m.get("tool_call_id"), "tool")
                results.append(f"{name} returned {_text_of(m.get('content'))}")
            text = "OpenAI emulator: " + "; ".join(reversed(results))
        response_format = data.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            schema = response_format["json_schema"].get("schema", {})
            return Reply(json.dumps(example_instance(schema), ensure_ascii=False))
        if response_format.get("type") == "json_object":
            return Reply(json.dumps({"answer": text}, ensure_ascii=False))
        return Reply(text)

    def _wire_calls(self, data: dict[str, Any], turn: _Calls) -> list[dict[str, Any]]:
        schemas = {
            t["function"]["name"]: t["function"].get("parameters") or {}
            for t in data.get("tools") or []
        }
        calls = []
        for index, call in enumerate(turn.calls):
            arguments = call.arguments
            if arguments is None:
                arguments = example_instance(schemas.get(call.name, {})) or {}
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments, ensure_ascii=False)
            if self.tool_call_style == "yandex":
                call_id = call.id or call.name
            else:
                call_id = call.id or f"call_{uuid.uuid4().hex[:24]}"
            wire: dict[str, Any] = {
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": arguments},
            }
            if self.tool_call_style == "yandex":
                wire = {"index": index, **wire}
            calls.append(wire)
        return calls

    # -- API -----------------------------------------------------------------------------------

    async def _chat(self, request: Request) -> Response:
        body, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        problem = self._validate(data)
        if problem is not None:
            return problem
        messages: list[dict[str, Any]] = data["messages"]
        prompt_tokens = sum(count_tokens(_text_of(m.get("content"))) + 3 for m in messages)
        if prompt_tokens > self.context_window:
            return self._error(
                400,
                f"This model's maximum context length is {self.context_window} tokens. "
                f"However, your messages resulted in {prompt_tokens} tokens.",
                code="context_length_exceeded",
                param="messages",
            )
        turn = self._turn(data)
        calls = self._wire_calls(data, turn) if isinstance(turn, _Calls) else []
        text, finish = (turn.text, "stop") if isinstance(turn, Reply) else ("", "tool_calls")
        limit = data.get("max_completion_tokens") or data.get("max_tokens")
        if isinstance(limit, int) and not calls:
            text, cut = _truncate(text, limit)
            if cut:
                finish = "length"
        completion_tokens = count_tokens(text) + sum(
            count_tokens(c["function"]["name"] + c["function"]["arguments"]) for c in calls
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        request_id = f"req_{uuid.uuid4().hex}"
        yandex = self.tool_call_style == "yandex"
        completion_id = str(uuid.uuid4()) if yandex else f"chatcmpl-{uuid.uuid4().hex[:24]}"
        headers = {"x-request-id": request_id, "openai-processing-ms": "1"}
        model = data["model"]
        created = int(time.time())
        if data.get("stream"):
            fault = outcome if isinstance(outcome, _STREAM_FAULTS) else None
            if fault is None:
                with self._lock:
                    fault = self._stream_faults.popleft() if self._stream_faults else None
            options = data.get("stream_options") or {}
            include_usage = (
                bool(options.get("include_usage")) if isinstance(options, dict) else False
            )
            events = self._events(
                completion_id,
                model,
                created,
                self._deltas(text, calls),
                finish,
                usage if include_usage else None,
                fault,
            )
            return StreamingResponse(
                events,
                media_type="text/event-stream",
                headers={**headers, "cache-control": "no-cache"},
            )
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if calls:
            message["content"] = "" if yandex else None
            message["tool_calls"] = calls
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": usage,
                "system_fingerprint": "fp_emulator",
            },
            headers=headers,
        )

    def _deltas(self, text: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The streamed deltas of an answer: its text word by word, or its tool calls (the
        arguments in pieces of ``tool_delta_size`` characters, two pieces per chunk)."""
        if not calls:
            return [{"content": piece} for piece in _pieces(text)]
        if self.tool_call_style == "yandex":  # the whole call in one chunk
            return [{"tool_calls": calls}]
        deltas: list[dict[str, Any]] = []
        size = self.tool_delta_size
        for index, call in enumerate(calls):
            function = call["function"]
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": function["name"], "arguments": ""},
                        }
                    ]
                }
            )
            arguments = function["arguments"]
            pieces = [arguments[i : i + size] for i in range(0, len(arguments), size)]
            for start in range(0, len(pieces), 2):
                deltas.append(
                    {
                        "tool_calls": [
                            {"index": index, "function": {"arguments": piece}}
                            for piece in pieces[start : start + 2]
                        ]
                    }
                )
        return deltas

    async def _events(
        self,
        completion_id: str,
        model: str,
        created: int,
        deltas: list[dict[str, Any]],
        finish: str,
        usage: dict[str, Any] | None,
        fault: _StreamFault | None,
    ) -> AsyncIterator[str]:
        with_usage = usage is not None
        # Yandex sends a streamed tool call whole, with the finish reason on the same chunk.
        inline = self.tool_call_style == "yandex" and finish == "tool_calls"

        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_emulator",
                "choices": choices,
            }
            if with_usage:
                payload["usage"] = None
            payload.update(extra)
            return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"

        def choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

        if not inline:
            yield event([choice({"role": "assistant", "content": "", "refusal": None})])
        for index, delta in enumerate(deltas):
            if isinstance(fault, CutStream) and index >= fault.after_chunks:
                return
            if isinstance(fault, BreakStream) and index >= fault.after_chunks:
                raise EmulatedConnectionReset("emulated connection reset (BreakStream fault)")
            if isinstance(fault, MalformedLine) and index == fault.after_chunks:
                yield 'data: {"choices": [{"delta": {"content": \n\n'
            if isinstance(fault, ErrorEvent) and index == fault.after_chunks:
                error = {"message": fault.message, "type": "server_error", "code": None}
                yield f"data: {json.dumps({'error': error})}\n\n"
                return
            if index and self.chunk_delay:
                await anyio.sleep(self.chunk_delay)
            if inline:
                yield event([choice({"role": "assistant", **delta}, finish)])
            else:
                yield event([choice(delta)])
        if isinstance(fault, CutStream):
            return
        if not inline:
            yield event([choice({}, finish)])
        if usage is not None:
            yield event([], usage=usage)
        if not isinstance(fault, NoDone):
            yield "data: [DONE]\n\n"

    async def _embeddings(self, request: Request) -> Response:
        body, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return self._error(400, "We could not parse the JSON body of your request.")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            return self._error(400, "you must provide a model parameter", param="model")
        texts = self._embedding_inputs(data.get("input"))
        if isinstance(texts, JSONResponse):
            return texts
        encoding = data.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return self._error(
                400,
                f"Invalid value for 'encoding_format': {encoding!r}; expected 'float' or 'base64'.",
                param="encoding_format",
            )
        if model not in self.embedding_models:
            return self._error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        native = self.embedding_models[model]
        dimension = data.get("dimensions")
        if dimension is None:
            dimension = native
        elif not model.startswith("text-embedding-3"):
            return self._error(
                400, "This model does not support specifying dimensions.", param="dimensions"
            )
        elif (
            isinstance(dimension, bool)
            or not isinstance(dimension, int)
            or not (1 <= dimension <= native)
        ):
            return self._error(
                400,
                f"Invalid value for 'dimensions': expected 1 to {native}.",
                param="dimensions",
            )
        items = []
        for index, text in enumerate(texts):
            vector = embedding_for(text, model, dimension, native)
            embedding: list[float] | str = vector
            if encoding == "base64":
                packed = struct.pack(f"<{len(vector)}f", *vector)
                embedding = base64.b64encode(packed).decode("ascii")
            items.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(count_tokens(text) for text in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": items,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            headers={"x-request-id": f"req_{uuid.uuid4().hex}"},
        )

    def _embedding_inputs(self, raw: Any) -> list[str] | JSONResponse:
        """``input`` as texts: a string, strings, or token arrays (kept as their numbers)."""
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            return self._error(400, "'input' must be a non-empty string or array.", param="input")
        if len(raw) > 2048:
            return self._error(400, "'input' must have at most 2048 items.", param="input")
        if all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
            return [" ".join(map(str, raw))]
        texts = []
        for index, item in enumerate(raw):
            if isinstance(item, list) and item and all(isinstance(x, int) for x in item):
                texts.append(" ".join(map(str, item)))
            elif isinstance(item, str) and item:
                texts.append(item)
            else:
                return self._error(
                    400,
                    f"Invalid 'input[{index}]': cannot be an empty string; expected a "
                    "non-empty string or array of tokens.",
                    param="input",
                )
        return texts

    def _model_object(self, model: str) -> dict[str, Any]:
        owner = "openai" if model.startswith(("gpt", "o", "text-")) else "system"
        return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": owner}

    async def _models(self, request: Request) -> Response:
        _, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        data = [self._model_object(m) for m in self.models]
        return JSONResponse(
            {"object": "list", "data": data}, headers={"x-request-id": f"req_{uuid.uuid4().hex}"}
        )

    async def _model(self, request: Request) -> Response:
        _, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        model = request.path_params["model"]
        if not self._known(model):
            return self._error(
                404,
                f"The model '{model}' does not exist",
                code="model_not_found",
                param="model",
            )
        return JSONResponse(
            self._model_object(model), headers={"x-request-id": f"req_{uuid.uuid4().hex}"}
        )


def _served_app(server: LoopbackServer) -> Any:
    """The app ``server`` serves, looking through forwarding wrappers (such as the contract
    kit's app switch, which has the current app as ``.app``)."""
    app = server.app
    for _ in range(5):
        if hasattr(app, "api_key") or not hasattr(app, "app"):
            break
        app = app.app
    return app


def config_for(server: LoopbackServer, name: str = "openai", **overrides: Any) -> OpenAIConfig:
    """An :class:`OpenAIConfig` pointed at ``server`` (serving an :class:`OpenAIEmulator`).

    Base URL (``…/v1``), the emulator's key, the server's CA under TLS; the ``OPENAI_*``
    settings are pinned so the environment cannot leak in. ``overrides`` win.
    """
    values: dict[str, Any] = dict.fromkeys(ENV_VARS)
    values.update(
        name=name,
        base_url=f"{server.base_url}/v1",
        api_key=getattr(_served_app(server), "api_key", TEST_API_KEY),
        model="gpt-4o-mini",
        embedding_model="text-embedding-3-small",  # served here, so embed() works
        extra_headers={},
        timeout=30.0,
        ca_bundle_file=server.ca_file if server.tls else None,
    )
    values.update(overrides)
    return OpenAIConfig(**values)


def main(argv: Sequence[str] | None = None, *, stop: threading.Event | None = None) -> int:
    """Serve an emulator on loopback and print the ``OPENAI_*`` settings to use."""
    from orchestrator.testing import LoopbackServer

    parser = argparse.ArgumentParser(
        prog="python -m orchestrator_openai.emulator",
        description="Serve the OpenAI API emulator on 127.0.0.1 until Ctrl-C.",
    )
    parser.add_argument("--tls", action="store_true", help="HTTPS with a throwaway CA")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per API call")
    args = parser.parse_args(argv)
    app = OpenAIEmulator(latency=args.latency)
    with LoopbackServer(app, tls=args.tls) as server:
        config = config_for(server)
        print(f"OpenAI emulator serving on {server.base_url}")
        print(f"export OPENAI_BASE_URL={config.base_url}")
        print(f"export OPENAI_API_KEY={app.api_key}")
        if server.ca_file:
            print(f"export SSL_CERT_FILE={server.ca_file}  # the emulator's throwaway CA")
        print("Press Ctrl-C to stop.", flush=True)
        stop = stop or threading.Event()
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
