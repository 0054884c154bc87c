"""A scriptable fake of an OpenAI-compatible chat API, served by the contract kit.

:class:`FakeOpenAIServer` is a plain ASGI app (no framework) that speaks the OpenAI wire
format closely enough for a provider written against it to work against vLLM, llama.cpp,
OpenRouter and friends:

- ``POST /v1/chat/completions`` (JSON, or SSE with ``"stream": true``, ending ``data: [DONE]``,
  with a usage chunk first when ``stream_options.include_usage`` is set), with ``tools`` /
  ``tool_choice`` / ``tool`` messages and ``response_format`` checked for shape; tool calls
  stream as OpenAI does, their arguments split across several deltas;
- ``POST /v1/embeddings`` (``float`` or ``base64`` vectors of ``embedding_dimension``
  numbers that depend on the text only);
- ``GET /v1/models`` (a cheap health-check target);
- errors as ``{"error": {"message", "type", "param", "code"}}`` with ``x-request-id`` and,
  when scripted, ``Retry-After`` or any other header (``x-should-retry``, a date
  ``Retry-After``...).

The answer is ``"Echo: <last user message>"`` unless ``reply`` is set, so a test can predict
it. Failures are scripted through the :class:`~orchestrator.testing.ScriptableApp` methods,
the model's answers through the :class:`~orchestrator.testing.ScriptableModel` ones::

    app = FakeOpenAIServer(api_key="sk-test")
    with LoopbackServer(app) as server:
        app.fail_next(429, retry_after=0.05)   # the next API call is rate limited
        app.fail_next(503, headers={"x-should-retry": "false"})  # and the one after fails
        app.cut_next_stream(after_chunks=1)    # the next stream ends without its final event
        app.call_tools_next(("get_weather", {"city": "Moscow"}))  # the next answer calls it
        app.reply_next('{"answer": "ok"}')     # and the one after that says this
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import re
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import anyio

__all__ = ["FakeOpenAIServer", "RecordedRequest"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_ERROR_TYPES = {
    400: ("invalid_request_error", "bad_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout_error", "timeout"),
    409: ("conflict_error", "conflict"),
    413: ("invalid_request_error", "context_length_exceeded"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}
_REASONS = {
    400: "Bad request",
    401: "Incorrect API key provided",
    403: "You do not have access to this resource",
    404: "Not found",
    413: "This model's maximum context length was exceeded",
    422: "Unprocessable entity",
    429: "Rate limit reached; slow down",
    500: "The server had an error while processing your request",
    502: "Bad gateway",
    503: "The service is temporarily unavailable",
    504: "Gateway timeout",
}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One API call the fake received (path, method, parsed JSON body, headers)."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass(slots=True)
class _Failure:
    status: int
    retry_after: float | None
    message: str | None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class _Scripted:
    text: str = ""
    calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()


def _vector(text: str, dimension: int) -> list[float]:
    """A unit-length vector that depends on ``text`` only."""
    numbers: list[float] = []
    counter = 0
    while len(numbers) < dimension:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        numbers.extend(b / 127.5 - 1.0 for b in digest)
        counter += 1
    numbers = numbers[:dimension]
    norm = sum(x * x for x in numbers) ** 0.5 or 1.0
    # Rounded through float32, so float and base64 answers are the same numbers.
    return [struct.unpack("<f", struct.pack("<f", x / norm))[0] for x in numbers]


def _request_problem(body: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of a chat request's tools/response_format, if anything."""
    tools = body.get("tools")
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list):
            return "'tools' must be a list"
        for tool in tools:
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") != "function" or not function:
                return "each tool must be {'type': 'function', 'function': {...}}"
            if not isinstance(function.get("name"), str):
                return "a tool's function needs a 'name'"
            if not isinstance(function.get("parameters", {}), dict):
                return "a tool's 'parameters' must be a JSON Schema object"
            names.add(function["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name")
            if name not in names:
                return f"tool_choice names {name!r}, which is not in 'tools'"
        elif choice not in ("auto", "none", "required"):
            return "tool_choice must be 'auto', 'none', 'required' or a named function"
    for message in body.get("messages") or ():
        if (
            isinstance(message, dict)
            and message.get("role") == "tool"
            and not message.get("tool_call_id")
        ):
            return "a 'tool' message needs 'tool_call_id'"
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind == "json_schema":
            spec = response_format.get("json_schema")
            if not isinstance(spec, dict) or not spec.get("name") or "schema" not in spec:
                return "response_format json_schema needs 'name' and 'schema'"
        elif kind not in ("json_object", "text"):
            return "response_format type must be 'text', 'json_object' or 'json_schema'"
    return None


def _split_words(text: str) -> list[str]:
    """Stream pieces: each word with the whitespace after it (never cumulative)."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


class FakeOpenAIServer:
    """An OpenAI-compatible chat API with scriptable faults (a ``ScriptableApp``).

    ``api_key``: the bearer token every API call must carry (None accepts any request).
    ``model``: the model reported when a request names none. ``reply``: a fixed answer
    instead of the echo. ``embedding_dimension``: the length of its embeddings.
    ``ensure_ascii=False`` sends non-ASCII text in the JSON raw (UTF-8), as OpenAI and most
    servers do, instead of as ``\\uXXXX`` escapes: U+2028 and U+0085 inside a streamed JSON
    string then test a provider's line splitting. Every scripting method is thread-safe.
    """

    def __init__(
        self,
        *,
        api_key: str | None = "sk-fake-orchestrator-key",
        model: str = "fake-model",
        reply: str | None = None,
        embedding_dimension: int = 8,
        ensure_ascii: bool = True,
    ) -> None:
        self.api_key = api_key
        self.ensure_ascii = ensure_ascii
        self.model = model
        self.reply = reply
        self.embedding_dimension = embedding_dimension
        self._script: collections.deque[_Scripted] = collections.deque()
        self.latency = 0.0
        self.outage = False
        self.requests: list[RecordedRequest] = []
        self._failures: collections.deque[_Failure] = collections.deque()
        self._cuts: collections.deque[int] = collections.deque()
        self._lock = threading.Lock()
        self._count = 0

    # -- ScriptableApp --------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` API calls with ``status`` in OpenAI's error shape, with
        ``Retry-After: <retry_after>`` and ``headers`` (e.g. ``{"x-should-retry": "false"}``
        or ``{"Retry-After": "<an HTTP date>"}``) when given."""
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next() needs an HTTP error status (400-599), got {status}")
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            extra = tuple((name.lower(), value) for name, value in (headers or {}).items())
            self._failures.extend(
                _Failure(status, retry_after, message, extra) for _ in range(times)
            )

    def cut_next_stream(self, *, after_chunks: int = 1, times: int = 1) -> None:
        """End the next ``times`` streams after ``after_chunks`` text chunks, without the
        final chunk and without ``data: [DONE]``."""
        if after_chunks < 0 or times < 1:
            raise ValueError("after_chunks must be >= 0 and times >= 1")
        with self._lock:
            self._cuts.extend(after_chunks for _ in range(times))

    # -- ScriptableModel -------------------------------------------------------------------

    def call_tools_next(self, *calls: tuple[str, Mapping[str, Any]], times: int = 1) -> None:
        """The next ``times`` chat answers call these tools, in order."""
        if not calls or times < 1:
            raise ValueError("call_tools_next() needs at least one call and times >= 1")
        scripted = _Scripted(calls=tuple((name, dict(args)) for name, args in calls))
        with self._lock:
            self._script.extend(scripted for _ in range(times))

    def reply_next(self, text: str, *, times: int = 1) -> None:
        """The next ``times`` chat answers are ``text``."""
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._script.extend(_Scripted(text=text) for _ in range(times))

    @property
    def request_count(self) -> int:
        """API calls received so far."""
        with self._lock:
            return self._count

    def answer_for(self, messages: list[dict[str, Any]]) -> str:
        """The text this fake answers to ``messages``."""
        if self.reply is not None:
            return self.reply
        last = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
        return f"Echo: {last}"

    # -- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off in LoopbackServer; be tolerant anyway
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body", False):
                break
        path: str = scope["path"]
        method: str = scope["method"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        routes = {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("GET", "/v1/models"): self._models,
        }
        handler = routes.get((method, path))
        if handler is None:
            await self._error(send, 404, f"No route for {method} {path}")
            return
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
            if method == "POST":
                await self._error(send, 400, "The request body is not valid JSON")
                return
        with self._lock:
            self._count += 1
            request_id = f"req-{self._count}"
            self.requests.append(RecordedRequest(method, path, parsed, headers))
            failure = self._failures.popleft() if self._failures else None
        if self.latency and await self._client_left_during(self.latency, receive):
            return
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            await self._error(send, 401, None, request_id=request_id)
            return
        if self.outage:
            await self._error(send, 503, None, request_id=request_id)
            return
        if failure is not None:
            await self._error(
                send,
                failure.status,
                failure.message,
                request_id=request_id,
                retry_after=failure.retry_after,
                headers=failure.headers,
            )
            return
        await handler(send, parsed, request_id)

    @staticmethod
    async def _client_left_during(seconds: float, receive: Receive) -> bool:
        """Wait ``seconds``; True if the client disconnected meanwhile (then stop early,
        so a cancelled request does not keep the server busy)."""
        left = False
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                nonlocal left
                while (await receive())["type"] != "http.disconnect":
                    pass
                left = True
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            await anyio.sleep(seconds)
            tg.cancel_scope.cancel()
        return left

    async def _models(self, send: Send, _body: Any, request_id: str) -> None:
        payload = {
            "object": "list",
            "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "fake"}],
        }
        await self._json(send, 200, payload, request_id)

    async def _chat(self, send: Send, body: Any, request_id: str) -> None:
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            await self._error(
                send, 400, "'messages' must be a non-empty list", request_id=request_id
            )
            return
        problem = _request_problem(body)
        if problem is not None:
            await self._error(send, 400, problem, request_id=request_id)
            return
        model = body.get("model") or self.model
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        calls: list[dict[str, Any]] = (
            []
            if scripted is None
            else [
                {
                    "id": f"call_{request_id}_{index}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)},
                }
                for index, (name, args) in enumerate(scripted.calls)
            ]
        )
        text = self.answer_for(messages) if scripted is None else scripted.text
        finish = "tool_calls" if calls else "stop"
        prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in messages)
        completion_tokens = len(text.split()) + sum(
            len(c["function"]["arguments"]) // 4 for c in calls
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        completion_id = f"chatcmpl-{request_id}"
        if not body.get("stream"):
            await self._json(
                send,
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": None if calls else text,
                                **({"tool_calls": calls} if calls else {}),
                            },
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                },
                request_id,
            )
            return
        with self._lock:
            cut = self._cuts.popleft() if self._cuts else None
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        created = int(time.time())

        def event(choices: list[Any], **extra: Any) -> bytes:
            chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(chunk, ensure_ascii=self.ensure_ascii)}\n\n".encode()

        deltas: list[dict[str, Any]] = []
        for position, call in enumerate(calls):
            # As OpenAI streams them: id and name first, then the arguments in fragments.
            arguments = call["function"]["arguments"]
            third = max(1, len(arguments) // 3)
            head = {"index": position, "id": call["id"], "type": "function"}
            deltas.append(
                {
                    "tool_calls": [
                        {**head, "function": {"name": call["function"]["name"], "arguments": ""}}
                    ]
                }
            )
            for start in range(0, len(arguments), third):
                piece = arguments[start : start + third]
                deltas.append(
                    {"tool_calls": [{"index": position, "function": {"arguments": piece}}]}
                )
        if not calls:
            deltas = [{"content": piece} for piece in _split_words(text)]
        for index, delta in enumerate(deltas):
            if cut is not None and index >= cut:
                break
            if index == 0:
                delta = {"role": "assistant", **delta}
            await send(
                {
                    "type": "http.response.body",
                    "body": event([{"index": 0, "delta": delta, "finish_reason": None}]),
                    "more_body": True,
                }
            )
        if cut is None:
            tail = event([{"index": 0, "delta": {}, "finish_reason": finish}])
            if include_usage:
                tail += event([], usage=usage)
            tail += b"data: [DONE]\n\n"
        else:
            tail = b""  # a truncated stream: no final chunk, no [DONE]
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    async def _embeddings(self, send: Send, body: Any, request_id: str) -> None:
        texts = body.get("input") if isinstance(body, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            await self._error(
                send, 400, "'input' must be a string or a non-empty list of strings",
                request_id=request_id,
            )  # fmt: skip
            return
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            await self._error(
                send, 400, "encoding_format must be 'float' or 'base64'", request_id=request_id
            )
            return
        data = []
        for index, text in enumerate(texts):
            vector: Any = _vector(text, self.embedding_dimension)
            if encoding == "base64":
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(len(t.split()) for t in texts)
        payload = {
            "object": "list",
            "data": data,
            "model": body.get("model") or self.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        await self._json(send, 200, payload, request_id)

    async def _json(self, send: Send, status: int, payload: Any, request_id: str) -> None:
        body = json.dumps(payload, ensure_ascii=self.ensure_ascii).encode()
        await self._respond(send, status, body, request_id, None)

    async def _error(
        self,
        send: Send,
        status: int,
        message: str | None,
        *,
        request_id: str = "req-0",
        retry_after: float | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        kind, code = _ERROR_TYPES.get(status, ("server_error", "server_error"))
        payload = {
            "error": {
                "message": message or _REASONS.get(status, f"HTTP {status}"),
                "type": kind,
                "param": None,
                "code": code,
            }
        }
        body = json.dumps(payload, ensure_ascii=self.ensure_ascii).encode()
        await self._respond(send, status, body, request_id, retry_after, headers)

    @staticmethod
    async def _respond(
        send: Send,
        status: int,
        body: bytes,
        request_id: str,
        retry_after: float | None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ]
        if retry_after is not None and not any(name == "retry-after" for name, _ in extra):
            headers.append((b"retry-after", f"{retry_after:g}".encode()))
        headers += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
