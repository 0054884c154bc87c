"""An Ollama API emulator that the official ``ollama`` client accepts, with scriptable faults.

:class:`OllamaEmulator` is an ASGI app serving ``POST /api/chat`` (JSON, or NDJSON when
``stream`` is true — the default when omitted — ending with a ``"done": true`` line that
carries ``done_reason``, the counts and the durations), ``GET /api/tags``, ``POST /api/show``,
``GET /api/version`` and ``GET|HEAD /`` (``Ollama is running``), with Ollama's error body
``{"error": "<text>"}`` (``model '<name>' not found`` for a model that is not pulled). Serve it
with :class:`orchestrator.testing.LoopbackServer` and point a provider at it with
:func:`config_for`::

    from orchestrator.testing import LoopbackServer
    from orchestrator_ollama import OllamaProvider
    from orchestrator_ollama.emulator import OllamaEmulator, config_for

    app = OllamaEmulator()
    with LoopbackServer(app) as server:
        provider = OllamaProvider(config_for(server))

Answers are deterministic: ``"Ollama emulator: <last user message>"``, the same for plain and
streamed calls; a small ``options.num_predict`` cuts it with ``done_reason="length"``.

Tools, ``format`` and ``POST /api/embed``: with ``tools`` the "model" calls the tools named in
the last user message (else the first tool), with arguments made from the tool's schema, as
objects; a stream carries the calls whole on one ``done: false`` line, as Ollama does. After
``tool`` messages it answers with their results. With ``format`` (a JSON Schema, or ``"json"``)
it answers JSON that matches. Script it with :meth:`OllamaEmulator.call_tools_next` (which tool,
which arguments - a string is sent verbatim as the arguments, which no real Ollama does but a
broken proxy might) and :meth:`OllamaEmulator.reply_next` (an exact answer, e.g. JSON that
violates the schema). ``/api/embed`` answers unit vectors, the same for the same text.

From the command line: ``orchestrator emulate ollama`` or ``python -m
orchestrator_ollama.emulator [--tls]``. Needs the ``emulator`` extra.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import hashlib
import json
import math
import random
import re
import threading
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from orchestrator.testing.schemas import example_instance
from orchestrator_ollama.config import ENV_VARS, OllamaConfig

if TYPE_CHECKING:
    from orchestrator.testing import LoopbackServer

__all__ = [
    "EMBEDDING_MODELS",
    "MODELS",
    "TEST_API_KEY",
    "VERSION",
    "BreakStream",
    "CallTool",
    "CutStream",
    "EmulatedConnectionReset",
    "ErrorLine",
    "Fail",
    "MalformedLine",
    "OllamaEmulator",
    "Pass",
    "RecordedRequest",
    "Reply",
    "answer_for",
    "config_for",
    "count_tokens",
    "embedding_for",
    "main",
    "normalise",
]

#: A key for tests of an authenticating server (ollama.com, a proxy); local Ollama has none.
TEST_API_KEY = "ollama-emulator-key-5d1e7a"
VERSION = "0.12.6"
#: (name, family, parameter size, quantization, size in bytes) of the pulled models.
MODELS: tuple[tuple[str, str, str, str, int], ...] = (
    ("llama3.2:latest", "llama", "3.2B", "Q4_K_M", 2_019_393_189),
    ("qwen2.5:0.5b", "qwen2", "494.03M", "Q4_K_M", 397_821_319),
    ("nomic-embed-text:latest", "nomic-bert", "137M", "F16", 274_302_450),
)
#: The pulled embedding models and the length of their vectors.
EMBEDDING_MODELS: dict[str, int] = {"nomic-embed-text:latest": 768}
_ROLES = frozenset(("system", "user", "assistant", "tool"))
_TOKEN = re.compile(r"\w+|[^\w\s]")
#: Expected JSON types of the options the emulator checks.
_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": (int, float),
    "top_p": (int, float),
    "top_k": (int,),
    "num_predict": (int,),
    "num_ctx": (int,),
    "seed": (int,),
    "stop": (list,),
}


def normalise(model: str) -> str:
    """``llama3.2`` -> ``llama3.2:latest`` (the tag defaults to ``latest``)."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def count_tokens(text: str) -> int:
    """The emulator's token count of ``text`` (words and punctuation marks)."""
    return len(_TOKEN.findall(text))


def answer_for(messages: Sequence[dict[str, Any]]) -> str:
    """The emulator's answer to ``messages`` (before ``num_predict``)."""
    last_user = next(
        (str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), ""
    )
    return f"Ollama emulator: {last_user}"


def embedding_for(text: str, model: str, dimension: int, native: int | None = None) -> list[float]:
    """The emulator's unit vector for ``text``: the same text and model give the same vector
    (``dimensions`` cuts the model's full vector and renormalises it)."""
    seed = hashlib.sha256(f"{normalise(model)}\0{text}".encode()).digest()
    rng = random.Random(seed)
    full = [rng.gauss(0.0, 1.0) for _ in range(max(native or dimension, dimension))]
    cut = full[:dimension]
    norm = math.sqrt(sum(x * x for x in cut)) or 1.0
    return [x / norm for x in cut]


def _truncate(text: str, limit: int) -> tuple[str, bool]:
    matches = list(_TOKEN.finditer(text))
    if limit < 0 or len(matches) <= limit:  # -1: no limit
        return text, False
    return (text[: matches[limit - 1].end()] if limit else ""), True


def _pieces(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text) or [""]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


# -- scripted faults ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fail:
    """Answer with ``status`` and ``{"error": message}`` (``Retry-After`` when given)."""

    status: int
    retry_after: float | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Pass:
    """Answer normally (a gap in a :meth:`OllamaEmulator.script` sequence)."""


@dataclass(frozen=True, slots=True)
class CutStream:
    """Streaming only: end after ``after_chunks`` lines, without the ``done: true`` line."""

    after_chunks: int = 1


@dataclass(frozen=True, slots=True)
class MalformedLine:
    """Streaming only: send a line that is not JSON after ``after_chunks`` lines."""

    after_chunks: int = 1


@dataclass(frozen=True, slots=True)
class BreakStream:
    """Streaming only: drop the connection after ``after_chunks`` lines."""

    after_chunks: int = 1


@dataclass(frozen=True, slots=True)
class ErrorLine:
    """Streaming only: after ``after_chunks`` lines send ``{"error": message}`` and end, the
    status staying 200 (what Ollama does when the runner fails mid-generation)."""

    after_chunks: int = 1
    message: str = "an error was encountered while running the model"


@dataclass(frozen=True, slots=True)
class CallTool:
    """A scripted tool call: the "model" calls ``name`` with ``arguments`` - a dict, a string
    sent verbatim, or None for arguments made from the tool's schema."""

    name: str
    arguments: Mapping[str, Any] | str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer: exactly ``text`` (JSON that violates the ``format`` schema, say)."""

    text: str


@dataclass(frozen=True, slots=True)
class _Calls:
    calls: tuple[CallTool, ...] = field(default_factory=tuple)


Turn = Reply | _Calls


class EmulatedConnectionReset(Exception):
    """Raised inside a streamed body to make the server drop the connection."""


Step = Fail | Pass | CutStream | MalformedLine | BreakStream | ErrorLine
_StreamFault = CutStream | MalformedLine | BreakStream | ErrorLine
_STREAM_FAULTS = (CutStream, MalformedLine, BreakStream, ErrorLine)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the emulator received (headers lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class OllamaEmulator:
    """Ollama's API as an ASGI app; an ``orchestrator.testing.ScriptableApp``.

    ``api_key``: when set, every API call must carry ``Authorization: Bearer <key>`` (as
    ollama.com); None (the default) is a local server without auth. ``models``: the names
    pulled (``name:tag``). Every scripting method is thread-safe.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] | None = None,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        embedding_models: Mapping[str, int] = EMBEDDING_MODELS,
    ) -> None:
        self.api_key = api_key
        self.embedding_models = {normalise(m): d for m, d in embedding_models.items()}
        self._turns: deque[Turn] = deque()
        self.models = tuple(normalise(m) for m in models) if models else tuple(m[0] for m in MODELS)
        #: Seconds before every API response's headers.
        self.latency = latency
        #: Seconds between streamed lines.
        self.chunk_delay = chunk_delay
        #: While True every API call answers 503.
        self.outage = False
        self._lock = threading.Lock()
        self._steps: deque[Step] = deque()
        self._stream_faults: deque[_StreamFault] = deque()
        self._request_count = 0
        #: The last 1000 requests received, oldest first.
        self.requests: deque[RecordedRequest] = deque(maxlen=1000)
        self._app = Starlette(
            routes=[
                Route("/", self._root, methods=["GET", "HEAD"]),
                Route("/api/version", self._version, methods=["GET"]),
                Route("/api/chat", self._chat, methods=["POST"]),
                Route("/api/embed", self._embed, methods=["POST"]),
                Route("/api/tags", self._tags, methods=["GET"]),
                Route("/api/show", self._show, methods=["POST"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    # -- ScriptableApp -------------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """API calls received so far (``/`` and ``/api/version`` excluded)."""
        return self._request_count

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` API calls with ``status`` and ``{"error": message}``."""
        self.script(*[Fail(status, retry_after, message)] * times)

    def cut_next_stream(self, *, after_chunks: int = 1, times: int = 1) -> None:
        """End the next ``times`` streams after ``after_chunks`` lines, without ``done``."""
        with self._lock:
            self._stream_faults.extend([CutStream(after_chunks)] * times)

    def script(self, *steps: Step) -> None:
        """Queue what the next API calls do, one step per call, in order (stream faults act
        as ``Pass`` on a plain call)."""
        with self._lock:
            self._steps.extend(steps)

    def call_tools_next(
        self, *calls: CallTool | str | tuple[str, Mapping[str, Any]], times: int = 1
    ) -> None:
        """The next ``times`` chat answers call these tools (a name alone: arguments made
        from its schema); several calls are parallel calls."""
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
        """The next ``times`` chat answers are exactly ``text``."""
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
    def _error(status: int, message: str, retry_after: float | None = None) -> JSONResponse:
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return JSONResponse({"error": message}, status, headers)

    async def _begin(self, request: Request) -> tuple[bytes, Response | _StreamFault | None]:
        """Record and count an API call; apply latency, outage, auth and the scripted step."""
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
            return body, self._error(503, "service unavailable")
        if isinstance(step, Fail):
            default = {404: "not found", 429: "too many requests"}.get(step.status, "error")
            return body, self._error(step.status, step.message or default, step.retry_after)
        if self.api_key is not None:
            auth = request.headers.get("authorization", "")
            if auth != f"Bearer {self.api_key}":
                return body, self._error(401, "unauthorized")
        if isinstance(step, _STREAM_FAULTS):
            return body, step
        return body, None

    def _validate(self, data: Any) -> JSONResponse | None:
        if not isinstance(data, dict):
            return self._error(400, "invalid request body")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            return self._error(400, "model is required")
        messages = data.get("messages", [])
        if not isinstance(messages, list):
            return self._error(400, "messages must be a list")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                return self._error(400, f"invalid role in messages[{index}]")
            if not isinstance(message.get("content", ""), str):
                return self._error(400, f"messages[{index}].content must be a string")
            for call in message.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    return self._error(400, f"messages[{index}].tool_calls: function.name missing")
                if not isinstance(function.get("arguments", {}), dict):
                    kind = type(function["arguments"]).__name__.replace("str", "string")
                    return self._error(
                        400,
                        f"json: cannot unmarshal {kind} into Go struct field "
                        "ToolCallFunction.messages.tool_calls.function.arguments of type "
                        "api.ToolCallFunctionArguments",
                    )
            for image in message.get("images") or []:
                try:
                    base64.b64decode(str(image), validate=True)
                except (binascii.Error, ValueError):
                    return self._error(400, "illegal base64 data in images")
        tools = data.get("tools")
        if tools is not None and not isinstance(tools, list):
            return self._error(400, "tools must be a list")
        for tool in tools or []:
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                return self._error(400, "invalid tool: function.name is required")
            if not isinstance(function.get("parameters") or {}, dict):
                return self._error(400, "invalid tool: parameters must be an object")
        options = data.get("options")
        options = {} if options is None else options
        if not isinstance(options, dict):
            return self._error(400, "options must be an object")
        for key, types in _OPTION_TYPES.items():
            value = options.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
                return self._error(400, f"option {key!r} must be of type {types[0].__name__}")
        fmt = data.get("format")
        if fmt not in (None, "", "json") and not isinstance(fmt, dict):
            return self._error(400, "invalid format: must be 'json' or a JSON schema")
        if normalise(model) not in self.models:
            return self._error(404, f"model '{model}' not found")
        if normalise(model) in self.embedding_models:
            return self._error(400, f'"{model}" does not support chat')
        return None

    # -- API -----------------------------------------------------------------------------------

    async def _root(self, request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    async def _version(self, request: Request) -> Response:
        return JSONResponse({"version": VERSION})

    async def _chat(self, request: Request) -> Response:
        body, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        try:
            data = json.loads(body)
        except ValueError:
            return self._error(400, "invalid character in request body")
        problem = self._validate(data)
        if problem is not None:
            return problem
        model = data["model"]
        messages: list[dict[str, Any]] = data.get("messages") or []
        if not messages:  # an empty chat loads the model
            return JSONResponse(
                {
                    "model": model,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": ""},
                    "done_reason": "load",
                    "done": True,
                }
            )
        turn = self._turn(data)
        calls = self._wire_calls(data, turn) if isinstance(turn, _Calls) else []
        text, reason = turn.text if isinstance(turn, Reply) else "", "stop"
        limit = (data.get("options") or {}).get("num_predict")
        if isinstance(limit, int) and not calls:
            text, cut = _truncate(text, limit)
            if cut:
                reason = "length"
        prompt = sum(count_tokens(str(m.get("content") or "")) + 4 for m in messages)
        generated = count_tokens(text) + sum(
            count_tokens(c["function"]["name"] + json.dumps(c["function"]["arguments"]))
            for c in calls
        )
        final = {
            "done_reason": reason,
            "done": True,
            "total_duration": 5_191_566_416,
            "load_duration": 2_154_458,
            "prompt_eval_count": prompt,
            "prompt_eval_duration": 383_809_000,
            "eval_count": generated,
            "eval_duration": 4_799_921_000,
        }
        if data.get("stream", True):
            fault = outcome if isinstance(outcome, _STREAM_FAULTS) else None
            if fault is None:
                with self._lock:
                    fault = self._stream_faults.popleft() if self._stream_faults else None
            return StreamingResponse(
                self._lines(model, text, calls, final, fault), media_type="application/x-ndjson"
            )
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = calls
        return JSONResponse({"model": model, "created_at": _now(), "message": message, **final})

    def _turn(self, data: dict[str, Any]) -> Turn:
        """What the model does: the scripted turn, else the default behaviour."""
        with self._lock:
            if self._turns:
                return self._turns.popleft()
        messages: list[dict[str, Any]] = data["messages"]
        tools = data.get("tools") or []
        if tools and messages[-1].get("role") != "tool":
            names = [t["function"]["name"] for t in tools]
            last = next(
                (str(m.get("content") or "") for m in reversed(messages) if m["role"] == "user"),
                "",
            )
            wanted = [n for n in names if re.search(rf"\b{re.escape(n)}\b", last)] or names[:1]
            return _Calls(tuple(CallTool(n) for n in wanted))
        text = answer_for(messages)
        if messages[-1].get("role") == "tool":
            results = []
            for m in reversed(messages):
                if m.get("role") != "tool":
                    break
                results.append(f"{m.get('tool_name') or 'tool'} returned {m.get('content')}")
            text = "Ollama emulator: " + "; ".join(reversed(results))
        fmt = data.get("format")
        if isinstance(fmt, dict):
            return Reply(json.dumps(example_instance(fmt), ensure_ascii=False))
        if fmt == "json":
            return Reply(json.dumps({"answer": text}, ensure_ascii=False))
        return Reply(text)

    @staticmethod
    def _wire_calls(data: dict[str, Any], turn: _Calls) -> list[dict[str, Any]]:
        schemas = {
            t["function"]["name"]: t["function"].get("parameters") or {}
            for t in data.get("tools") or []
        }
        calls = []
        for index, call in enumerate(turn.calls):
            arguments: Any = call.arguments
            if arguments is None:
                arguments = example_instance(schemas.get(call.name, {})) or {}
            elif not isinstance(arguments, str):
                arguments = dict(arguments)
            calls.append({"function": {"index": index, "name": call.name, "arguments": arguments}})
        return calls

    async def _embed(self, request: Request) -> Response:
        body, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        try:
            data = json.loads(body)
        except ValueError:
            return self._error(400, "invalid character in request body")
        if not isinstance(data, dict):
            return self._error(400, "invalid request body")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            return self._error(400, "model is required")
        raw = data.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return self._error(400, "invalid input type")
        if normalise(model) not in self.models:
            return self._error(404, f"model '{model}' not found")
        native = self.embedding_models.get(normalise(model))
        if native is None:
            return self._error(400, "this model does not support embeddings")
        dimension = data.get("dimensions") or native
        if (
            isinstance(dimension, bool)
            or not isinstance(dimension, int)
            or not (1 <= dimension <= native)
        ):
            return self._error(400, f"dimensions must be between 1 and {native}")
        vectors = [embedding_for(text, model, dimension, native) for text in texts]
        return JSONResponse(
            {
                "model": model,
                "embeddings": vectors,
                "total_duration": 14_143_917,
                "load_duration": 1_019_500,
                "prompt_eval_count": sum(count_tokens(text) for text in texts),
            }
        )

    async def _lines(
        self,
        model: str,
        text: str,
        calls: list[dict[str, Any]],
        final: dict[str, Any],
        fault: _StreamFault | None,
    ) -> AsyncIterator[str]:
        def line(content: str, tool_calls: list[dict[str, Any]] | None = None, **extra: Any) -> str:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if tool_calls:
                message["tool_calls"] = tool_calls
            payload = {
                "model": model,
                "created_at": _now(),
                "message": message,
                "done": False,
                **extra,
            }
            return json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n"

        # Tool calls come whole, all on one line, before the final one.
        pieces: list[str | list[dict[str, Any]]] = [calls] if calls else list(_pieces(text))
        for index, piece in enumerate(pieces):
            if isinstance(fault, CutStream) and index >= fault.after_chunks:
                return
            if isinstance(fault, BreakStream) and index >= fault.after_chunks:
                raise EmulatedConnectionReset("emulated connection reset (BreakStream fault)")
            if isinstance(fault, MalformedLine) and index == fault.after_chunks:
                yield '{"model": "' + model + '", "message": {\n'
            if isinstance(fault, ErrorLine) and index == fault.after_chunks:
                yield json.dumps({"error": fault.message}) + "\n"
                return
            if index and self.chunk_delay:
                await anyio.sleep(self.chunk_delay)
            yield line("", piece) if isinstance(piece, list) else line(piece)
        if isinstance(fault, CutStream):
            return
        yield line("", **final)

    def _tag(self, name: str) -> dict[str, Any]:
        known = {m[0]: m for m in MODELS}
        _, family, size, quantization, length = known.get(
            name, (name, "llama", "1B", "Q4_K_M", 1_000_000_000)
        )
        return {
            "name": name,
            "model": name,
            "modified_at": "2025-05-04T17:37:44.706015396-07:00",
            "size": length,
            "digest": hashlib.sha256(name.encode()).hexdigest(),
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": family,
                "families": [family],
                "parameter_size": size,
                "quantization_level": quantization,
            },
        }

    async def _tags(self, request: Request) -> Response:
        _, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        return JSONResponse({"models": [self._tag(m) for m in self.models]})

    async def _show(self, request: Request) -> Response:
        body, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        model = data.get("model") if isinstance(data, dict) else None
        if not isinstance(model, str) or not model:
            return self._error(400, "model is required")
        if normalise(model) not in self.models:
            return self._error(404, f"model '{model}' not found")
        tag = self._tag(normalise(model))
        embedding = "embed" in model
        return JSONResponse(
            {
                "modelfile": f"FROM {model}\n",
                "parameters": 'stop "<|eot_id|>"',
                "template": "{{ .Prompt }}",
                "details": tag["details"],
                "model_info": {
                    "general.architecture": tag["details"]["family"],
                    "llama.context_length": 131072,
                },
                "capabilities": ["embedding"] if embedding else ["completion", "tools"],
                "modified_at": tag["modified_at"],
            }
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


def config_for(server: LoopbackServer, name: str = "ollama", **overrides: Any) -> OllamaConfig:
    """An :class:`OllamaConfig` pointed at ``server`` (serving an :class:`OllamaEmulator`).

    The server's URL, the emulator's key (if it has one), its CA under TLS; ``OLLAMA_*``
    settings are pinned so the environment cannot leak in. ``overrides`` win.
    """
    values: dict[str, Any] = dict.fromkeys(ENV_VARS)
    values.update(
        name=name,
        base_url=server.base_url,
        api_key=getattr(_served_app(server), "api_key", None),
        model="llama3.2",
        timeout=30.0,
        ca_bundle_file=server.ca_file if server.tls else None,
    )
    values.update(overrides)
    return OllamaConfig(**values)


def main(argv: Sequence[str] | None = None, *, stop: threading.Event | None = None) -> int:
    """Serve an emulator on loopback and print the ``OLLAMA_HOST`` to use."""
    from orchestrator.testing import LoopbackServer

    parser = argparse.ArgumentParser(
        prog="python -m orchestrator_ollama.emulator",
        description="Serve the Ollama API emulator on 127.0.0.1 until Ctrl-C.",
    )
    parser.add_argument("--tls", action="store_true", help="HTTPS with a throwaway CA")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per API call")
    args = parser.parse_args(argv)
    app = OllamaEmulator(latency=args.latency)
    with LoopbackServer(app, tls=args.tls, port=args.port) as server:
        print(f"Ollama emulator serving on {server.base_url}")
        print(f"export OLLAMA_HOST={server.base_url}")
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
