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

From the command line: ``orchestrator emulate openai`` or ``python -m
orchestrator_openai.emulator [--tls]``. Needs the ``emulator`` extra.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from orchestrator_openai.config import ENV_VARS, OpenAIConfig

if TYPE_CHECKING:
    from orchestrator.testing import LoopbackServer

__all__ = [
    "MODELS",
    "TEST_API_KEY",
    "BreakStream",
    "CutStream",
    "EmulatedConnectionReset",
    "ErrorEvent",
    "Fail",
    "MalformedLine",
    "NoDone",
    "OpenAIEmulator",
    "Pass",
    "RecordedRequest",
    "answer_for",
    "config_for",
    "count_tokens",
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
)
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
    ) -> None:
        self.api_key = api_key
        self.models = tuple(models)
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

    def reset(self) -> None:
        """Forget scripted faults, counters and recorded requests."""
        with self._lock:
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
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                return self._error(
                    400, f"Invalid value for 'messages[{index}].role'.", param="messages"
                )
            content = message.get("content")
            if content is not None and not isinstance(content, str | list):
                return self._error(
                    400, f"Invalid type for 'messages[{index}].content'.", param="messages"
                )
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict) and isinstance(call.get("id"), str):
                    call_ids.add(call["id"])
            if message["role"] == "tool" and message.get("tool_call_id") not in call_ids:
                return self._error(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    param=f"messages.[{index}].role",
                )
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
        text, finish = answer_for(messages), "stop"
        limit = data.get("max_completion_tokens") or data.get("max_tokens")
        if isinstance(limit, int):
            text, cut = _truncate(text, limit)
            if cut:
                finish = "length"
        completion_tokens = count_tokens(text)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        request_id = f"req_{uuid.uuid4().hex}"
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
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
                completion_id, model, created, text, finish, usage if include_usage else None, fault
            )
            return StreamingResponse(
                events,
                media_type="text/event-stream",
                headers={**headers, "cache-control": "no-cache"},
            )
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": usage,
                "system_fingerprint": "fp_emulator",
            },
            headers=headers,
        )

    async def _events(
        self,
        completion_id: str,
        model: str,
        created: int,
        text: str,
        finish: str,
        usage: dict[str, Any] | None,
        fault: _StreamFault | None,
    ) -> AsyncIterator[str]:
        with_usage = usage is not None

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

        yield event([choice({"role": "assistant", "content": "", "refusal": None})])
        for index, piece in enumerate(_pieces(text)):
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
            yield event([choice({"content": piece})])
        if isinstance(fault, CutStream):
            return
        yield event([choice({}, finish)])
        if usage is not None:
            yield event([], usage=usage)
        if not isinstance(fault, NoDone):
            yield "data: [DONE]\n\n"

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
