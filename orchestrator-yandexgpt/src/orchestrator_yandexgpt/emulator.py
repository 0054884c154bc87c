"""A protocol-faithful YandexGPT emulator: an ASGI app for offline tests and demos.

It serves, on one app (so one :class:`~orchestrator.testing.LoopbackServer` serves all):

- ``POST /foundationModels/v1/completion`` — plain, and streaming NDJSON with cumulative text;
- ``POST /foundationModels/v1/completionAsync`` and ``GET /operations/{id}``;
- ``POST /foundationModels/v1/tokenize``, ``.../tokenizeCompletion``, ``.../textEmbedding``;
- ``POST /iam/v1/tokens`` — OAuth token or service-account JWT (PS256) -> IAM token;
- Yandex's OpenAI-compatible API: ``POST /v1/chat/completions`` (plain and SSE),
  ``POST /v1/embeddings``, ``GET /v1/models`` (model URIs only; the tool-call id is the
  function's name; a streamed call arrives whole in one chunk with its finish reason).

Credentials it accepts: ``Api-Key`` :data:`TEST_API_KEY`, ``Bearer`` :data:`TEST_IAM_TOKEN` or
any IAM token it issued (on ``/v1`` also ``Bearer`` with the API key, the folder in
``OpenAI-Project``), in folder :data:`TEST_FOLDER_ID`; the OAuth token
:data:`TEST_OAUTH_TOKEN`; service-account keys made by
:meth:`YandexGPTEmulator.create_service_account_key`.

The answer is deterministic: ``"Echo: "`` and the words of the last user message (the same
text for plain and streamed calls), one token per word. With tools the model calls the tools
named in the user's text (else the first; the forced one with ``functionName``) with
arguments made up from their schemas, and answers tool results with ``"Results: ..."``; with
``jsonSchema`` it answers an instance of the schema. What it does next is scripted with
:meth:`~YandexGPTEmulator.call_tools_next`, :meth:`~YandexGPTEmulator.invalid_arguments_next`,
:meth:`~YandexGPTEmulator.reply_next` and :meth:`~YandexGPTEmulator.violate_schema_next`.
Faults are scripted with the
:class:`~orchestrator.testing.scripting.ScriptableApp` methods plus the YandexGPT-specific
ones below (malformed line, error line, dropped connection, wrong-shape JSON, a stalled
answer, ``CONTENT_FILTER``, ``TRUNCATED_FINAL``, IAM expiry, failed operations).

    from orchestrator.testing import LoopbackServer
    from orchestrator_yandexgpt import YandexGPTProvider
    from orchestrator_yandexgpt.emulator import YandexGPTEmulator, config_for

    with LoopbackServer(YandexGPTEmulator(), tls=True) as server:
        provider = YandexGPTProvider(config_for(server))

Needs the ``emulator`` extra: ``pip install "orchestrator-yandexgpt[emulator]"``.
"""

from __future__ import annotations

import contextvars
import hashlib
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from orchestrator.testing.schemas import example_instance, violating_instance
from orchestrator_yandexgpt.config import YandexGPTConfig

if TYPE_CHECKING:
    from orchestrator.testing import LoopbackServer

__all__ = [
    "EmulatedConnectionReset",
    "TEST_API_KEY",
    "TEST_FOLDER_ID",
    "TEST_IAM_TOKEN",
    "TEST_OAUTH_TOKEN",
    "YandexGPTEmulator",
    "config_for",
]

#: The API key the emulator accepts by default.
TEST_API_KEY = "AQVNemulator-test-api-key"
#: The folder the emulator's models live in by default.
TEST_FOLDER_ID = "b1gemulatorfolder000"
#: An IAM token the emulator always accepts (unless expired with ``expire_iam_tokens``).
TEST_IAM_TOKEN = "t1.emulator-test-iam-token"  # noqa: S105  (a documented test value)
#: The OAuth token the emulator's IAM endpoint exchanges.
TEST_OAUTH_TOKEN = "y0_emulator-test-oauth-token"  # noqa: S105

ErrorShape = Literal["grpc", "llm"]
_JWT_AUDIENCE = "https://iam.api.cloud.yandex.net/iam/v1/tokens"
_MODELS = frozenset(("yandexgpt-lite", "yandexgpt", "llama-lite", "llama"))
_MODEL_URI = re.compile(r"^gpt://([^/]+)/([^/@]+)(?:/([^/@]+))?(?:@([\w.-]+))?$")
_EMB_URI = re.compile(r"^emb://([^/]+)/(text-search-doc|text-search-query)(?:/[^/]+)?$")
_HTTP_TO_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 429: 8, 500: 13, 501: 12, 503: 14, 504: 4}
_DEFAULT_MESSAGES = {
    400: "Request validation error",
    401: "Unknown api key",
    403: "Permission denied",
    404: "Not found",
    429: "ai.textGenerationCompletionSessionsCount.count gauge quota limit exceeded: "
    "limit 10, request 1",
    500: "Internal error",
    503: "Service is unavailable, try again later",
    504: "Deadline exceeded",
}
#: The error body shape of the request being handled (``llm`` on the ``/v1`` endpoints).
_SHAPE: contextvars.ContextVar[ErrorShape | None] = contextvars.ContextVar("_SHAPE", default=None)
_ROLES = ("system", "user", "assistant")
_CONTENTS = ("text", "toolCallList", "toolResultList")
_TOOL_CHOICE_MODES = frozenset(("NONE", "AUTO", "REQUIRED", "TOOL_CHOICE_MODE_UNSPECIFIED"))
_REFUSAL = "I can't discuss that topic. Let's talk about something else."
_TOKEN = re.compile(r"\s*\S+")


def _tokens(text: str) -> list[str]:
    """The emulator's tokenization: a word with its leading whitespace."""
    return _TOKEN.findall(text)


def _embedding(model: str, text: str) -> list[float]:
    """The emulator's 256-number vector of ``text`` by ``model`` (a hash: the same text
    gives the same vector; doc and query vectors of one text differ)."""
    digest = hashlib.sha256(f"{model}:{text}".encode()).digest()
    return [(digest[i % 32] - 128) / 128.0 for i in range(256)]


#: Alternative status -> OpenAI ``finish_reason`` on ``/v1``.
_OPENAI_FINISH = {
    "ALTERNATIVE_STATUS_FINAL": "stop",
    "ALTERNATIVE_STATUS_TRUNCATED_FINAL": "length",
    "ALTERNATIVE_STATUS_CONTENT_FILTER": "content_filter",
    "ALTERNATIVE_STATUS_TOOL_CALLS": "tool_calls",
}


def _openai_text(content: Any) -> str | None:
    """An OpenAI message ``content`` as text: a string, null (beside tool calls), or a
    list of ``{"type": "text", "text"}`` parts; None for anything else."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "".join(p["text"] for p in content)
    return None


def _rfc3339(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}123Z"


@dataclass(slots=True)
class _Fault:
    status: int
    retry_after: float | None
    message: str | None
    shape: ErrorShape | None


@dataclass(slots=True)
class _StreamFault:
    kind: Literal["cut", "malformed", "error", "break", "shape"]
    after_chunks: int
    grpc_code: int = 13
    message: str = ""
    payload: Any = None


class EmulatedConnectionReset(Exception):
    """Raised inside a streamed body to make the server drop the connection."""


@dataclass(slots=True)
class _Answer:
    text: str
    status: str
    input_tokens: int
    pieces: list[str]
    #: Tool calls ``(name, arguments)`` instead of a text (status TOOL_CALLS).
    calls: list[tuple[str, Any]] | None = None


@dataclass(slots=True)
class _ToolRequest:
    """What a request says about tools and the answer's format."""

    #: Tool name -> its parameters schema, in request order.
    tools: dict[str, dict[str, Any]]
    mode: str
    forced: str | None
    parallel: bool
    json_object: bool
    schema: dict[str, Any] | None


@dataclass(slots=True)
class _Script:
    """What the "model" does in its next answer (see the ``*_next`` scripting methods)."""

    kind: Literal["calls", "invalid_arguments", "text", "violate_schema"]
    calls: tuple[tuple[str, Any], ...] = ()
    tool: str | None = None
    text: str = ""


def _countable(message: dict[str, Any]) -> str:
    """The text of a parsed message that counts as input tokens."""
    if "text" in message:
        return str(message["text"])
    if "calls" in message:
        return " ".join(json.dumps(a, ensure_ascii=False) for _, a in message["calls"])
    return " ".join(content for _, content in message["results"])


def _split(text: str) -> list[str]:
    """``text`` in streamable pieces that join back to it exactly: the emulator's tokens
    (a word with its leading whitespace), any trailing whitespace with the last one."""
    pieces = _tokens(text)
    consumed = sum(map(len, pieces))
    if consumed < len(text):
        if pieces:
            pieces[-1] += text[consumed:]
        else:
            pieces = [text]
    return pieces


class _Reject(Exception):
    """Stops a handler with an error response."""

    def __init__(self, response: Response) -> None:
        self.response = response


class YandexGPTEmulator:
    """The YandexGPT API as an ASGI app with scriptable faults (thread-safe)."""

    def __init__(
        self,
        *,
        api_key: str = TEST_API_KEY,
        folder_id: str = TEST_FOLDER_ID,
        iam_token: str = TEST_IAM_TOKEN,
        oauth_token: str = TEST_OAUTH_TOKEN,
        error_shape: ErrorShape = "grpc",
        iam_token_ttl: float = 12 * 3600.0,
        context_limit: int = 8192,
        operation_polls: int = 1,
        model_version: str = "23.10.2024",
    ) -> None:
        self.api_key = api_key
        self.folder_id = folder_id
        self.iam_token = iam_token
        self.oauth_token = oauth_token
        #: Error body shape: ``grpc`` (``{"code", "message", "details"}``) or ``llm``
        #: (``{"error": {"grpcCode", "httpCode", ...}}``).
        self.error_shape: ErrorShape = error_shape
        self.iam_token_ttl = iam_token_ttl
        self.context_limit = context_limit
        #: Polls of ``/operations/{id}`` answered ``done: false`` before the result.
        self.operation_polls = operation_polls
        self.model_version = model_version
        #: Seconds added before every API response (not IAM token calls).
        self.latency = 0.0
        #: Seconds between the lines of a streamed answer.
        self.stream_delay = 0.0
        #: While True every API call answers 503.
        self.outage = False
        #: The last API requests received: ``{"method", "path", "headers", "json"}``.
        self.requests: deque[dict[str, Any]] = deque(maxlen=100)
        self.iam_request_count = 0
        self._request_count = 0
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._iam_faults: deque[_Fault] = deque()
        self._stream_faults: deque[_StreamFault] = deque()
        self._stalls: deque[float] = deque()
        self._shapes: deque[Any] = deque()
        self._statuses: deque[str] = deque()
        self._chunk_plans: deque[list[int]] = deque()
        self._operation_errors: deque[tuple[int, str]] = deque()
        self._scripts: deque[_Script] = deque()
        self._issued: dict[str, float] = {}
        self._static_iam_valid = True
        self._service_accounts: dict[str, tuple[str, Any]] = {}
        self._operations: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        prefix = "/foundationModels/v1"
        self._app = Starlette(
            routes=[
                Route(f"{prefix}/completion", self._completion, methods=["POST"]),
                Route(f"{prefix}/completionAsync", self._completion_async, methods=["POST"]),
                Route(f"{prefix}/tokenize", self._tokenize, methods=["POST"]),
                Route(f"{prefix}/tokenizeCompletion", self._tokenize_completion, methods=["POST"]),
                Route(f"{prefix}/textEmbedding", self._embedding, methods=["POST"]),
                Route("/operations/{operation_id}", self._operation, methods=["GET"]),
                Route("/iam/v1/tokens", self._iam_tokens, methods=["POST"]),
                Route("/v1/chat/completions", self._openai_chat, methods=["POST"]),
                Route("/v1/embeddings", self._openai_embeddings, methods=["POST"]),
                Route("/v1/models", self._openai_models, methods=["GET"]),
            ]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    def reset(self) -> None:
        """Forget scripted faults, recorded requests, counters, operations and IAM tokens."""
        with self._lock:
            self.latency = 0.0
            self.stream_delay = 0.0
            self.outage = False
            self.requests.clear()
            self.iam_request_count = 0
            self._request_count = 0
            for queue in (
                self._faults,
                self._iam_faults,
                self._stream_faults,
                self._stalls,
                self._shapes,
                self._statuses,
                self._chunk_plans,
                self._operation_errors,
                self._scripts,
            ):
                queue.clear()
            self._issued.clear()
            self._static_iam_valid = True
            self._operations.clear()

    # -- the ScriptableApp interface ------------------------------------------------------

    @property
    def request_count(self) -> int:
        """API calls received so far (IAM token calls excluded)."""
        return self._request_count

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
        shape: ErrorShape | None = None,
    ) -> None:
        """Answer the next ``times`` API calls with ``status`` in a Yandex error shape
        (``shape`` or the emulator's ``error_shape``)."""
        with self._lock:
            for _ in range(times):
                self._faults.append(_Fault(status, retry_after, message, shape))

    def cut_next_stream(self, *, after_chunks: int = 1, times: int = 1) -> None:
        """End the next ``times`` streams after ``after_chunks`` lines, with no final status."""
        with self._lock:
            for _ in range(times):
                self._stream_faults.append(_StreamFault("cut", after_chunks))

    # -- YandexGPT-specific faults ----------------------------------------------------------

    def malform_next_stream(self, *, after_chunks: int = 1) -> None:
        """Send a line that is not JSON in the next stream after ``after_chunks`` lines."""
        with self._lock:
            self._stream_faults.append(_StreamFault("malformed", after_chunks))

    def error_in_next_stream(
        self, *, after_chunks: int = 1, grpc_code: int = 13, message: str = "Internal error"
    ) -> None:
        """Send an ``{"error": {...}}`` line in the next stream after ``after_chunks`` lines."""
        with self._lock:
            self._stream_faults.append(_StreamFault("error", after_chunks, grpc_code, message))

    def break_next_stream(self, *, after_chunks: int = 1, times: int = 1) -> None:
        """Drop the connection of the next ``times`` streams after ``after_chunks`` lines,
        mid-body (the client sees an incomplete chunked read, like a reset; uvicorn logs
        the emulated reset as an application error)."""
        with self._lock:
            for _ in range(times):
                self._stream_faults.append(_StreamFault("break", after_chunks))

    def wrong_shape_next_stream(self, payload: Any = None, *, after_chunks: int = 1) -> None:
        """Send valid JSON of the wrong shape as one line of the next stream after
        ``after_chunks`` lines (default ``{"result": {"alternatives": [null]}}``), then the
        rest of the answer."""
        if payload is None:
            payload = {"result": {"alternatives": [None]}}
        with self._lock:
            self._stream_faults.append(_StreamFault("shape", after_chunks, payload=payload))

    def wrong_shape_next(self, payload: Any = None) -> None:
        """Answer the next plain completion 200 with valid JSON of the wrong shape
        (default ``{"result": {"alternatives": [null]}}``)."""
        if payload is None:
            payload = {"result": {"alternatives": [None]}}
        with self._lock:
            self._shapes.append(payload)

    def stall_next(self, seconds: float, *, times: int = 1) -> None:
        """Wait ``seconds`` before answering the next ``times`` API calls (a slow first
        byte), on top of ``latency``."""
        with self._lock:
            self._stalls.extend([seconds] * times)

    def finish_next(self, status: Literal["CONTENT_FILTER", "TRUNCATED_FINAL"]) -> None:
        """End the next completion with ``ALTERNATIVE_STATUS_<status>``: a refusal text, or
        the answer cut to half its tokens."""
        with self._lock:
            self._statuses.append(f"ALTERNATIVE_STATUS_{status}")

    def chunk_next_stream(self, sizes: list[int]) -> None:
        """Tokens per line of the next stream (the rest goes one token per line)."""
        with self._lock:
            self._chunk_plans.append([max(1, s) for s in sizes])

    # -- the "model": scripted tool calls and answers ------------------------------------

    def call_tools_next(self, *calls: tuple[str, Any] | dict[str, Any], times: int = 1) -> None:
        """Make the next ``times`` completions call these tools: each call a
        ``(name, arguments)`` pair or ``{"name": ..., "arguments": ...}``. The names are not
        checked against the request's tools and the arguments not against their schemas
        (a model can get both wrong). Arguments are a dict; a string is sent as it is —
        something the real API never does, to test how a client copes with garbage.
        With ``parallelToolCalls: false`` only the first call is made."""
        parsed: list[tuple[str, Any]] = []
        for call in calls:
            if isinstance(call, dict):
                parsed.append((str(call["name"]), call.get("arguments", {})))
            else:
                name, arguments = call
                parsed.append((str(name), arguments))
        if not parsed:
            raise ValueError("call_tools_next() needs at least one (name, arguments) call")
        with self._lock:
            self._scripts.extend([_Script("calls", tuple(parsed))] * times)

    def invalid_arguments_next(self, name: str | None = None, *, times: int = 1) -> None:
        """Make the next ``times`` completions call the tool ``name`` (by default the forced
        tool, else the first one) with arguments that violate its parameters schema (a
        required property left out, or one of the wrong type)."""
        with self._lock:
            self._scripts.extend([_Script("invalid_arguments", tool=name)] * times)

    def reply_next(self, text: str, *, times: int = 1) -> None:
        """Make the next ``times`` completions answer exactly ``text`` (no tool calls),
        whatever the request asked for (e.g. JSON that breaks the request's schema)."""
        with self._lock:
            self._scripts.extend([_Script("text", text=text)] * times)

    def violate_schema_next(self, *, times: int = 1) -> None:
        """Make the next ``times`` structured answers break the request's ``jsonSchema``
        (a required property left out, or one of the wrong type), or not be JSON at all
        when the request asked for ``jsonObject``."""
        with self._lock:
            self._scripts.extend([_Script("violate_schema")] * times)

    def fail_next_iam(self, status: int, *, times: int = 1, message: str | None = None) -> None:
        """Answer the next ``times`` IAM token exchanges with ``status``."""
        with self._lock:
            for _ in range(times):
                self._iam_faults.append(_Fault(status, None, message, None))

    def fail_next_operation(self, *, grpc_code: int = 13, message: str = "Internal error") -> None:
        """Make the next async completion finish with an operation error."""
        with self._lock:
            self._operation_errors.append((grpc_code, message))

    def expire_iam_tokens(self) -> None:
        """Expire every IAM token issued so far (and the static test token)."""
        with self._lock:
            now = time.time()
            self._issued = dict.fromkeys(self._issued, now - 1)
            self._static_iam_valid = False

    def create_service_account_key(self, service_account_id: str = "ajeemulatorserviceacc") -> str:
        """Make an RSA key pair, trust its public part, return the authorized-key JSON."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = "aje" + secrets.token_hex(8)
        with self._lock:
            self._service_accounts[key_id] = (service_account_id, private.public_key())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        public = (
            private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        return json.dumps(
            {
                "id": key_id,
                "service_account_id": service_account_id,
                "created_at": _rfc3339(time.time()),
                "key_algorithm": "RSA_2048",
                "public_key": public,
                "private_key": "PLEASE DO NOT REMOVE THIS LINE! Yandex.Cloud SA Key ID "
                f"<{key_id}>\n{pem}",
            }
        )

    # -- responses ------------------------------------------------------------------------

    def _error(
        self,
        status: int,
        message: str | None = None,
        *,
        grpc_code: int | None = None,
        shape: ErrorShape | None = None,
        retry_after: float | None = None,
    ) -> JSONResponse:
        grpc = grpc_code if grpc_code is not None else _HTTP_TO_GRPC.get(status, 2)
        text = message or _DEFAULT_MESSAGES.get(status, HTTPStatus(status).phrase)
        request_id = str(uuid.uuid4())
        body: dict[str, Any]
        if (shape or _SHAPE.get() or self.error_shape) == "llm":
            body = {
                "error": {
                    "grpcCode": grpc,
                    "httpCode": status,
                    "message": text,
                    "httpStatus": HTTPStatus(status).phrase,
                    "details": [],
                }
            }
        else:
            body = {
                "code": grpc,
                "message": text,
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": request_id}
                ],
            }
        headers = {"x-request-id": request_id}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        return JSONResponse(body, status_code=status, headers=headers)

    async def _enter(self, request: Request, *, openai: bool = False) -> Any:
        """Count, record, delay, apply outage/faults, parse JSON and check auth."""
        body: Any = None
        raw = await request.body()
        with self._lock:
            self._request_count += 1
            fault = self._faults.popleft() if self._faults else None
            stall = self._stalls.popleft() if self._stalls else 0.0
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "headers": dict(request.headers),
                "json": body,
            }
        )
        if self.latency > 0:
            await anyio.sleep(self.latency)
        if stall > 0:
            await anyio.sleep(stall)
        if self.outage:
            raise _Reject(self._error(503))
        if fault is not None:
            raise _Reject(
                self._error(
                    fault.status, fault.message, shape=fault.shape, retry_after=fault.retry_after
                )
            )
        self._check_auth(request, openai=openai)
        if request.method == "POST" and not isinstance(body, dict):
            raise _Reject(self._error(400, "Request body is not a JSON object"))
        return body

    def _check_auth(self, request: Request, *, openai: bool = False) -> None:
        """``Api-Key <key>`` or ``Bearer <IAM token>`` (on ``/v1`` also ``Bearer <API key>``,
        what the ``openai`` SDK sends); a folder in ``x-folder-id`` (or ``OpenAI-Project``
        on ``/v1``) must be the emulator's."""
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme == "Api-Key" or (openai and scheme == "Bearer" and credential == self.api_key):
            if credential != self.api_key:
                raise _Reject(self._error(401, f"Unknown api key '{credential}'"))
        elif scheme == "Bearer":
            with self._lock:
                expiry = self._issued.get(credential)
                static_ok = credential == self.iam_token and self._static_iam_valid
            if not static_ok and (expiry is None or expiry <= time.time()):
                raise _Reject(self._error(401, "The token is invalid or has expired."))
        else:
            raise _Reject(
                self._error(
                    401,
                    "Authorization header is missing or malformed; "
                    "use 'Api-Key <key>' or 'Bearer <IAM token>'",
                )
            )
        folder = request.headers.get("x-folder-id")
        if openai and folder is None:
            folder = request.headers.get("openai-project")
        if folder is not None and folder != self.folder_id:
            raise _Reject(self._folder_denied(folder))

    def _folder_denied(self, folder: str) -> JSONResponse:
        return self._error(
            403,
            f"Permission to [resource-manager.folder {folder}] denied; the subject needs "
            "the role ai.languageModels.user",
        )

    def _check_model(self, uri: Any) -> None:
        match = _MODEL_URI.match(uri) if isinstance(uri, str) else None
        if match is None:
            raise _Reject(self._error(400, f"Invalid modelUri {uri!r}"))
        folder, model, version = match.group(1), match.group(2), match.group(3)
        if folder != self.folder_id:
            raise _Reject(self._folder_denied(folder))
        if model not in _MODELS or (version or "latest") not in ("latest", "rc", "deprecated"):
            raise _Reject(self._error(404, f"Model {uri} not found"))

    def _parse_messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The request's messages, checked as the API checks them: a role of system, user
        or assistant and exactly one of ``text`` / ``toolCallList`` (assistant) /
        ``toolResultList`` (user), each of the right shape."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Reject(self._error(400, "messages: at least one message is required"))
        result = []
        for index, message in enumerate(messages):
            where = f"messages[{index}]"
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise _Reject(
                    self._error(400, f"{where}: role must be one of system, user, assistant")
                )
            contents = [key for key in _CONTENTS if key in message]
            if len(contents) != 1:
                raise _Reject(
                    self._error(
                        400,
                        f"{where}: exactly one of text, toolCallList, toolResultList is "
                        f"required, got {', '.join(contents) or 'none'}",
                    )
                )
            role, content = message["role"], contents[0]
            if content == "text":
                if not isinstance(message["text"], str):
                    raise _Reject(self._error(400, f"{where}.text must be a string"))
                result.append({"role": role, "text": message["text"]})
            elif content == "toolCallList":
                if role != "assistant":
                    raise _Reject(
                        self._error(400, f"{where}: toolCallList belongs in an assistant message")
                    )
                calls = self._checked_list(message, where, "toolCallList", "toolCalls")
                result.append(
                    {"role": role, "calls": [self._checked_call(c, where) for c in calls]}
                )
            else:
                if role != "user":
                    raise _Reject(
                        self._error(400, f"{where}: toolResultList belongs in a user message")
                    )
                results = self._checked_list(message, where, "toolResultList", "toolResults")
                result.append(
                    {"role": role, "results": [self._checked_result(r, where) for r in results]}
                )
        return result

    def _checked_list(
        self, message: dict[str, Any], where: str, field: str, items: str
    ) -> list[Any]:
        container = message[field]
        values = container.get(items) if isinstance(container, dict) else None
        if not isinstance(values, list) or not values:
            raise _Reject(self._error(400, f"{where}.{field}.{items} must be a non-empty list"))
        return values

    def _checked_call(self, call: Any, where: str) -> tuple[str, Any]:
        function = call.get("functionCall") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _Reject(self._error(400, f"{where}: a tool call needs functionCall.name"))
        arguments = function.get("arguments", {})
        if not isinstance(arguments, dict):
            raise _Reject(
                self._error(400, f"{where}: functionCall.arguments must be a JSON object")
            )
        return function["name"], arguments

    def _checked_result(self, result: Any, where: str) -> tuple[str, str]:
        function = result.get("functionResult") if isinstance(result, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _Reject(self._error(400, f"{where}: a tool result needs functionResult.name"))
        if not isinstance(function.get("content"), str):
            raise _Reject(self._error(400, f"{where}: functionResult.content must be a string"))
        return function["name"], function["content"]

    def _parse_tools(self, body: dict[str, Any]) -> _ToolRequest:
        """``tools``, ``toolChoice``, ``parallelToolCalls``, ``jsonObject``/``jsonSchema``."""
        tools: dict[str, dict[str, Any]] = {}
        listed = body.get("tools", [])
        if not isinstance(listed, list):
            raise _Reject(self._error(400, "tools must be a list"))
        for index, tool in enumerate(listed):
            function = tool.get("function") if isinstance(tool, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str) or not name:
                raise _Reject(self._error(400, f"tools[{index}].function.name is required"))
            parameters = function.get("parameters", {})  # type: ignore[union-attr]
            if not isinstance(parameters, dict):
                raise _Reject(
                    self._error(400, f"tools[{index}].function.parameters must be an object")
                )
            tools[name] = parameters
        choice = body.get("toolChoice")
        mode, forced = "AUTO", None
        if choice is not None:
            keys = set(choice) if isinstance(choice, dict) else set()
            if len(keys & {"mode", "functionName"}) != 1 or keys - {"mode", "functionName"}:
                raise _Reject(
                    self._error(400, "toolChoice must have exactly one of mode, functionName")
                )
            if "mode" in keys:
                mode = choice["mode"]
                if mode not in _TOOL_CHOICE_MODES:
                    raise _Reject(
                        self._error(400, f"toolChoice.mode {mode!r} is not a ToolChoiceMode")
                    )
                mode = "AUTO" if mode == "TOOL_CHOICE_MODE_UNSPECIFIED" else mode
            else:
                forced = choice["functionName"]
                if forced not in tools:
                    raise _Reject(
                        self._error(
                            400, f"toolChoice.functionName {forced!r} is not one of the tools"
                        )
                    )
        parallel = body.get("parallelToolCalls", True)
        if not isinstance(parallel, bool):
            raise _Reject(self._error(400, "parallelToolCalls must be a boolean"))
        json_object = body.get("jsonObject", False)
        json_schema = body.get("jsonSchema")
        if not isinstance(json_object, bool):
            raise _Reject(self._error(400, "jsonObject must be a boolean"))
        if json_object and json_schema is not None:
            raise _Reject(self._error(400, "only one of jsonObject, jsonSchema may be set"))
        schema = None
        if json_schema is not None:
            schema = json_schema.get("schema") if isinstance(json_schema, dict) else None
            if not isinstance(schema, dict):
                raise _Reject(self._error(400, "jsonSchema.schema must be an object"))
        return _ToolRequest(tools, mode, forced, parallel, json_object, schema)

    def _answer(self, body: dict[str, Any]) -> _Answer:
        self._check_model(body.get("modelUri"))
        messages = self._parse_messages(body)
        request = self._parse_tools(body)
        options = body.get("completionOptions") or {}
        if not isinstance(options, dict):
            raise _Reject(self._error(400, "completionOptions must be an object"))
        temperature = options.get("temperature", 0.3)
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 1:
            raise _Reject(self._error(400, "temperature must be between 0 and 1"))
        try:
            max_tokens = int(options.get("maxTokens", 8000))
            if max_tokens <= 0:
                raise ValueError
        except (TypeError, ValueError):
            raise _Reject(self._error(400, "maxTokens must be a positive int64")) from None
        input_tokens = sum(len(_tokens(_countable(m))) for m in messages)
        if input_tokens > self.context_limit:
            raise _Reject(
                self._error(
                    400,
                    f"Number of input tokens must be no more than {self.context_limit}, "
                    f"got {input_tokens}",
                )
            )
        with self._lock:
            script = self._scripts.popleft() if self._scripts else None
        calls = self._tool_calls(messages, request, script)
        if calls:
            if not request.parallel:
                calls = calls[:1]  # recorded: one call per turn with parallelToolCalls false
            pieces = _tokens(" ".join(json.dumps(a, ensure_ascii=False) for _, a in calls))
            return _Answer("", "ALTERNATIVE_STATUS_TOOL_CALLS", input_tokens, pieces, calls)
        text = self._text(messages, request, script)
        pieces = _split(text)
        status = "ALTERNATIVE_STATUS_FINAL"
        if len(pieces) > max_tokens:
            pieces, status = pieces[:max_tokens], "ALTERNATIVE_STATUS_TRUNCATED_FINAL"
        with self._lock:
            forced = self._statuses.popleft() if self._statuses else None
        if forced == "ALTERNATIVE_STATUS_CONTENT_FILTER":
            pieces, status = _tokens(_REFUSAL), forced
        elif forced is not None:
            pieces, status = pieces[: max(1, len(pieces) // 2)], forced
        return _Answer("".join(pieces), status, input_tokens, pieces)

    def _tool_calls(
        self, messages: list[dict[str, Any]], request: _ToolRequest, script: _Script | None
    ) -> list[tuple[str, Any]]:
        """The calls the "model" makes: a scripted list, or by default the forced tool
        (``functionName``), else with ``REQUIRED`` or ``AUTO`` after a user's text the
        tools named in that text (the first tool when none is), never with ``NONE`` nor
        ``AUTO`` after tool results (the model then answers)."""
        if script is not None:
            if script.kind == "calls":
                return list(script.calls)
            if script.kind == "invalid_arguments":
                name = script.tool or request.forced or next(iter(request.tools), None)
                if name is None:
                    return [("invalid_call", {"unexpected": True})]
                arguments = violating_instance(request.tools.get(name, {}))
                if not isinstance(arguments, dict):
                    arguments = {"unexpected": arguments}
                return [(name, arguments)]
            return []  # a scripted text answer
        if not request.tools or request.mode == "NONE":
            return []
        if request.forced is not None:
            names = [request.forced]
        elif request.mode == "REQUIRED" or (
            messages[-1]["role"] == "user" and "text" in messages[-1]
        ):
            said = messages[-1].get("text", "")
            names = [name for name in request.tools if name in said] or [next(iter(request.tools))]
        else:
            return []
        return [(name, example_instance(request.tools[name])) for name in names]

    def _text(
        self, messages: list[dict[str, Any]], request: _ToolRequest, script: _Script | None
    ) -> str:
        if script is not None and script.kind == "text":
            return script.text
        if script is not None and script.kind == "violate_schema":
            if request.schema is None:
                return "This is not JSON."
            return json.dumps(violating_instance(request.schema), ensure_ascii=False)
        last = messages[-1]
        if "results" in last:
            text = "Results: " + "; ".join(f"{n}: {c}" for n, c in last["results"])
        else:
            said = next(
                (m["text"] for m in reversed(messages) if m["role"] == "user" and "text" in m),
                "",
            )
            words = said.split()
            text = "Echo: " + " ".join(words) if words else "Hello! How can I help you?"
        if request.schema is not None:
            return json.dumps(example_instance(request.schema), ensure_ascii=False)
        if request.json_object:
            return json.dumps({"answer": text}, ensure_ascii=False)
        return text

    def _result(self, answer: _Answer, text: str, status: str, completion: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "text": text}
        if answer.calls and status == answer.status:
            calls = [{"functionCall": {"name": n, "arguments": a}} for n, a in answer.calls]
            message = {"role": "assistant", "toolCallList": {"toolCalls": calls}}
        return {
            "alternatives": [{"message": message, "status": status}],
            "usage": {
                "inputTextTokens": str(answer.input_tokens),
                "completionTokens": str(completion),
                "totalTokens": str(answer.input_tokens + completion),
                "completionTokensDetails": {"reasoningTokens": "0"},
            },
            "modelVersion": self.model_version,
        }

    async def _guard(
        self,
        request: Request,
        handler: Callable[[Any], Awaitable[Response]],
        *,
        openai: bool = False,
    ) -> Response:
        token = _SHAPE.set("llm" if openai else None)
        try:
            body = await self._enter(request, openai=openai)
            return await handler(body)
        except _Reject as reject:
            return reject.response
        finally:
            _SHAPE.reset(token)

    # -- endpoints ------------------------------------------------------------------------

    async def _completion(self, request: Request) -> Response:
        async def handle(body: dict[str, Any]) -> Response:
            answer = self._answer(body)
            options = body.get("completionOptions") or {}
            if options.get("stream") is True:
                return StreamingResponse(self._stream_lines(answer), media_type="application/json")
            with self._lock:
                shape = self._shapes.popleft() if self._shapes else None
            if shape is not None:
                return JSONResponse(shape, headers={"x-request-id": str(uuid.uuid4())})
            result = self._result(answer, answer.text, answer.status, len(answer.pieces))
            return JSONResponse({"result": result}, headers={"x-request-id": str(uuid.uuid4())})

        return await self._guard(request, handle)

    async def _stream_lines(self, answer: _Answer) -> AsyncIterator[bytes]:
        with self._lock:
            fault = self._stream_faults.popleft() if self._stream_faults else None
            plan = self._chunk_plans.popleft() if self._chunk_plans else []
        bounds: list[int] = []
        position = 0
        if answer.calls:  # tool calls arrive whole, on the final line
            plan = [len(answer.pieces)]
        for size in plan:
            if position + size >= len(answer.pieces):
                break  # the rest arrives with the final line
            position += size
            bounds.append(position)
        else:
            bounds.extend(range(position + 1, len(answer.pieces)))
        shape = fault if fault is not None and fault.kind == "shape" else None
        if shape is not None:
            fault = None
        for sent, bound in enumerate(bounds):
            if fault is not None and sent == fault.after_chunks:
                break
            if shape is not None and sent == shape.after_chunks:
                yield json.dumps(shape.payload).encode() + b"\n"
            text = "".join(answer.pieces[:bound])
            line = {"result": self._result(answer, text, "ALTERNATIVE_STATUS_PARTIAL", bound)}
            yield json.dumps(line, ensure_ascii=False).encode() + b"\n"
            if self.stream_delay > 0:
                await anyio.sleep(self.stream_delay)
        if fault is not None:
            if fault.kind == "malformed":
                yield b'{"result": {"alternatives": [\n'
            elif fault.kind == "break":
                raise EmulatedConnectionReset("emulated connection reset (break_next_stream)")
            elif fault.kind == "error":
                status = next((h for h, g in _HTTP_TO_GRPC.items() if g == fault.grpc_code), 500)
                line = {
                    "error": {
                        "grpcCode": fault.grpc_code,
                        "httpCode": status,
                        "message": fault.message,
                        "httpStatus": HTTPStatus(status).phrase,
                        "details": [],
                    }
                }
                yield json.dumps(line).encode() + b"\n"
            return  # "cut": the body ends without a final status
        final = self._result(answer, answer.text, answer.status, len(answer.pieces))
        yield json.dumps({"result": final}, ensure_ascii=False).encode() + b"\n"

    async def _completion_async(self, request: Request) -> Response:
        async def handle(body: dict[str, Any]) -> Response:
            answer = self._answer(body)
            now = _rfc3339(time.time())
            operation_id = f"d7q{next(self._ids):06d}emu"
            with self._lock:
                error = self._operation_errors.popleft() if self._operation_errors else None
            operation: dict[str, Any] = {
                "id": operation_id,
                "description": "Async GPT Completion",
                "createdAt": now,
                "createdBy": "ajeemulator",
                "modifiedAt": now,
                "done": False,
                "metadata": None,
            }
            result = self._result(answer, answer.text, answer.status, len(answer.pieces))
            with self._lock:
                self._operations[operation_id] = {
                    "operation": operation,
                    "polls": 0,
                    "response": {
                        "@type": "type.googleapis.com/yandex.cloud.ai.foundation_models.v1."
                        "CompletionResponse",
                        **result,
                    },
                    "error": error,
                }
            return JSONResponse(operation)

        return await self._guard(request, handle)

    async def _operation(self, request: Request) -> Response:
        operation_id = request.path_params["operation_id"]

        async def handle(_: Any) -> Response:
            with self._lock:
                entry = self._operations.get(operation_id)
                if entry is not None:
                    entry["polls"] += 1
            if entry is None:
                return self._error(404, f"Operation {operation_id} not found")
            operation = dict(entry["operation"])
            if entry["polls"] > self.operation_polls:
                operation["done"] = True
                operation["modifiedAt"] = _rfc3339(time.time())
                if entry["error"] is not None:
                    code, message = entry["error"]
                    operation["error"] = {"code": code, "message": message, "details": []}
                else:
                    operation["response"] = entry["response"]
            return JSONResponse(operation)

        return await self._guard(request, handle)

    def _token_list(self, text: str) -> list[dict[str, Any]]:
        return [
            {
                "id": str(int.from_bytes(hashlib.sha256(piece.encode()).digest()[:3], "big")),
                "text": piece,
                "special": False,
            }
            for piece in _tokens(text)
        ]

    async def _tokenize(self, request: Request) -> Response:
        async def handle(body: dict[str, Any]) -> Response:
            self._check_model(body.get("modelUri"))
            text = body.get("text")
            if not isinstance(text, str):
                return self._error(400, "text is required")
            return JSONResponse(
                {"tokens": self._token_list(text), "modelVersion": self.model_version}
            )

        return await self._guard(request, handle)

    async def _tokenize_completion(self, request: Request) -> Response:
        async def handle(body: dict[str, Any]) -> Response:
            self._check_model(body.get("modelUri"))
            messages = self._parse_messages(body)
            tokens = [t for m in messages for t in self._token_list(_countable(m))]
            return JSONResponse({"tokens": tokens, "modelVersion": self.model_version})

        return await self._guard(request, handle)

    async def _embedding(self, request: Request) -> Response:
        async def handle(body: dict[str, Any]) -> Response:
            uri = body.get("modelUri")
            match = _EMB_URI.match(uri) if isinstance(uri, str) else None
            if match is None:
                return self._error(400, f"Invalid modelUri {uri!r}")
            if match.group(1) != self.folder_id:
                return self._folder_denied(match.group(1))
            text = body.get("text")
            if isinstance(text, list):
                return self._error(400, "text must be a string: one text per request")
            dim = body.get("dim")  # int64: a string, or a number
            if dim is not None and str(dim) != "256":
                return self._error(
                    400, f"dim {dim!r} is not supported by {match.group(2)}: it answers 256"
                )
            if not isinstance(text, str):
                return self._error(400, "text is required")
            return JSONResponse(
                {
                    "embedding": _embedding(match.group(2), text),
                    "numTokens": str(len(_tokens(text))),
                    "modelVersion": self.model_version,
                }
            )

        return await self._guard(request, handle)

    # -- the OpenAI-compatible API (/v1) ---------------------------------------------------

    def _openai_body(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool, bool]:
        """A ``/v1/chat/completions`` request as a native completion body (so one "model"
        answers both APIs), whether it streams, and whether it asked for a usage chunk."""
        uri = body.get("model")
        if not isinstance(uri, str) or not uri.startswith("gpt://"):
            raise _Reject(
                self._error(
                    400,
                    f"model must be a model URI such as gpt://{self.folder_id}/yandexgpt/latest, "
                    f"got {uri!r}",
                )
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Reject(self._error(400, "messages: at least one message is required"))
        native: dict[str, Any] = {
            "modelUri": uri,
            "messages": self._openai_messages(messages),
            "completionOptions": {},
        }
        options = native["completionOptions"]
        if body.get("temperature") is not None:
            options["temperature"] = body["temperature"]
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if limit is not None:
            options["maxTokens"] = limit
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list) or any(
                not isinstance(t, dict) or t.get("type", "function") != "function" for t in tools
            ):
                raise _Reject(self._error(400, "tools must be a list of function tools"))
            native["tools"] = [{"function": t.get("function")} for t in tools]
        choice = body.get("tool_choice")
        if isinstance(choice, str):
            if choice not in ("auto", "none", "required"):
                raise _Reject(self._error(400, f"tool_choice {choice!r} is not supported"))
            native["toolChoice"] = {"mode": choice.upper()}
        elif isinstance(choice, dict):
            function = choice.get("function")
            name = function.get("name") if isinstance(function, dict) else None
            native["toolChoice"] = {"functionName": name}
        elif choice is not None:
            raise _Reject(self._error(400, "tool_choice must be a string or an object"))
        # Recorded: with parallel_tool_calls false the server still returned 2 calls, so
        # it is accepted and not honoured here.
        response_format = body.get("response_format")
        if isinstance(response_format, dict):
            kind = response_format.get("type")
            if kind == "json_object":
                native["jsonObject"] = True
            elif kind == "json_schema":
                spec = response_format.get("json_schema")
                if not isinstance(spec, dict):
                    raise _Reject(self._error(400, "response_format.json_schema is required"))
                schema = spec.get("schema")
                if schema is None:  # the docs' shape: the bare schema under json_schema
                    schema = {k: v for k, v in spec.items() if k not in ("name", "strict")}
                native["jsonSchema"] = {"schema": schema}
            elif kind != "text":
                raise _Reject(self._error(400, f"response_format type {kind!r} is not supported"))
        elif response_format is not None:
            raise _Reject(self._error(400, "response_format must be an object"))
        stream_options = body.get("stream_options")
        usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
        return native, body.get("stream") is True, usage

    def _openai_messages(self, messages: list[Any]) -> list[dict[str, Any]]:
        """OpenAI messages as native ones: tool results (``role: tool``, matched to the
        call's name by ``tool_call_id``, which Yandex sets to the name) grouped into one
        user ``toolResultList``."""
        native: list[dict[str, Any]] = []
        names: dict[str, str] = {}
        results: list[dict[str, Any]] | None = None
        for index, message in enumerate(messages):
            where = f"messages[{index}]"
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ("system", "user", "assistant", "tool"):
                raise _Reject(
                    self._error(400, f"{where}: role must be system, user, assistant or tool")
                )
            content = _openai_text(message.get("content"))
            if content is None:
                raise _Reject(self._error(400, f"{where}: content must be a string"))
            if role == "tool":
                call_id = message.get("tool_call_id")
                if not isinstance(call_id, str):
                    raise _Reject(self._error(400, f"{where}: tool_call_id is required"))
                result = {
                    "functionResult": {"name": names.get(call_id, call_id), "content": content}
                }
                if results is None:
                    results = []
                    native.append({"role": "user", "toolResultList": {"toolResults": results}})
                results.append(result)
                continue
            results = None
            calls = message.get("tool_calls") if role == "assistant" else None
            if not calls:
                native.append({"role": role, "text": content})
                continue
            wire = []
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                name = function.get("name") if isinstance(function, dict) else None
                if not isinstance(name, str):
                    raise _Reject(self._error(400, f"{where}: a tool call needs function.name"))
                try:
                    arguments = json.loads(function.get("arguments") or "{}")  # type: ignore[union-attr]
                except (TypeError, ValueError):
                    raise _Reject(
                        self._error(400, f"{where}: tool call arguments must be a JSON string")
                    ) from None
                names[str(call.get("id") or name)] = name
                wire.append({"functionCall": {"name": name, "arguments": arguments}})
            native.append({"role": "assistant", "toolCallList": {"toolCalls": wire}})
        return native

    def _openai_calls(self, answer: _Answer) -> list[dict[str, Any]]:
        return [
            {
                "index": index,
                "id": name,  # Yandex: the tool-call id is the function name
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else json.dumps(arguments, ensure_ascii=False),
                },
            }
            for index, (name, arguments) in enumerate(answer.calls or ())
        ]

    def _openai_usage(self, answer: _Answer) -> dict[str, int]:
        completion = len(answer.pieces)
        return {
            "prompt_tokens": answer.input_tokens,
            "total_tokens": answer.input_tokens + completion,
            "completion_tokens": completion,
        }

    async def _openai_chat(self, request: Request) -> Response:
        async def handle(body: dict[str, Any]) -> Response:
            native, stream, usage = self._openai_body(body)
            answer = self._answer(native)
            head = {"id": str(uuid.uuid4()), "created": int(time.time()), "model": body["model"]}
            finish = _OPENAI_FINISH.get(answer.status, "stop")
            if stream:
                return StreamingResponse(
                    self._openai_events(answer, head, finish, usage),
                    media_type="text/event-stream",
                )
            message: dict[str, Any] = {"role": "assistant", "content": answer.text}
            if answer.calls:
                message["tool_calls"] = self._openai_calls(answer)
            return JSONResponse(
                {
                    **head,
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": self._openai_usage(answer),
                }
            )

        return await self._guard(request, handle, openai=True)

    async def _openai_events(
        self, answer: _Answer, head: dict[str, Any], finish: str, usage: bool
    ) -> AsyncIterator[bytes]:
        """SSE: text deltas (``finish_reason`` on the last one), or the whole tool calls in
        one chunk with ``finish_reason``; a usage chunk when asked for; ``[DONE]``."""
        with self._lock:
            fault = self._stream_faults.popleft() if self._stream_faults else None

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            data = {**head, "object": "chat.completion.chunk", "choices": choices, **extra}
            return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"

        deltas: list[dict[str, Any]]
        if answer.calls:
            deltas = [{"role": "assistant", "tool_calls": self._openai_calls(answer)}]
        else:
            deltas = [{"content": piece} for piece in answer.pieces] or [{"content": ""}]
            deltas[0] = {"role": "assistant", **deltas[0]}
        for sent, delta in enumerate(deltas):
            if fault is not None and sent == fault.after_chunks:
                if fault.kind == "break":
                    raise EmulatedConnectionReset("emulated connection reset (break_next_stream)")
                if fault.kind == "malformed":
                    yield b"data: {not json\n\n"
                elif fault.kind == "error":
                    error = {"message": fault.message, "grpcCode": fault.grpc_code}
                    yield b"data: " + json.dumps({"error": error}).encode() + b"\n\n"
                if fault.kind != "shape":
                    return  # cut: no finish_reason, no [DONE]
                yield b"data: " + json.dumps(fault.payload).encode() + b"\n\n"
            last = sent == len(deltas) - 1
            choice = {"index": 0, "delta": delta, "finish_reason": finish if last else None}
            yield event([choice])
            if self.stream_delay > 0 and not last:
                await anyio.sleep(self.stream_delay)
        if usage:
            yield event([], usage=self._openai_usage(answer))
        yield b"data: [DONE]\n\n"

    async def _openai_embeddings(self, request: Request) -> Response:
        async def handle(body: dict[str, Any]) -> Response:
            uri = body.get("model")
            match = _EMB_URI.match(uri) if isinstance(uri, str) else None
            if match is None:
                return self._error(
                    400,
                    f"model must be an embedding model URI such as "
                    f"emb://{self.folder_id}/text-search-doc/latest, got {uri!r}",
                )
            if match.group(1) != self.folder_id:
                return self._folder_denied(match.group(1))
            texts = body.get("input")
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, list) or len(texts) != 1 or not isinstance(texts[0], str):
                return self._error(400, "input must be one string (one text per request)")
            encoding = body.get("encoding_format", "float")
            if encoding != "float":
                return self._error(
                    400, f"encoding_format {encoding!r} is not supported; use 'float'"
                )
            tokens = len(_tokens(texts[0]))
            return JSONResponse(
                {
                    "object": "list",
                    "model": uri,
                    "data": [
                        {
                            "index": 0,
                            "embedding": _embedding(match.group(2), texts[0]),
                            "object": "embedding",
                        }
                    ],
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )

        return await self._guard(request, handle, openai=True)

    async def _openai_models(self, request: Request) -> Response:
        async def handle(_: Any) -> Response:
            created = 1_700_000_000
            ids = [f"gpt://{self.folder_id}/{model}/latest" for model in sorted(_MODELS)]
            ids += [
                f"emb://{self.folder_id}/{m}/latest"
                for m in ("text-search-doc", "text-search-query")
            ]
            return JSONResponse(
                {
                    "object": "list",
                    "data": [
                        {"id": i, "object": "model", "created": created, "owned_by": "yandex"}
                        for i in ids
                    ],
                }
            )

        return await self._guard(request, handle, openai=True)

    async def _iam_tokens(self, request: Request) -> Response:
        with self._lock:
            self.iam_request_count += 1
            fault = self._iam_faults.popleft() if self._iam_faults else None
        if fault is not None:
            return self._error(fault.status, fault.message)
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._error(400, "Request body is not a JSON object")
        if "yandexPassportOauthToken" in body:
            if body["yandexPassportOauthToken"] != self.oauth_token:
                return self._error(401, "The provided OAuth token is invalid or expired.")
        elif "jwt" in body:
            problem = self._check_jwt(body["jwt"])
            if problem is not None:
                return self._error(401, f"Invalid JWT: {problem}")
        else:
            return self._error(400, "one of yandexPassportOauthToken or jwt is required")
        token = "t1." + secrets.token_urlsafe(32)
        expires = time.time() + self.iam_token_ttl
        with self._lock:
            self._issued[token] = expires
        return JSONResponse({"iamToken": token, "expiresAt": _rfc3339(expires)})

    def _check_jwt(self, token: Any) -> str | None:
        import jwt

        if not isinstance(token, str):
            return "not a string"
        try:
            key_id = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return "malformed"
        with self._lock:
            account = self._service_accounts.get(str(key_id))
        if account is None:
            return f"unknown key id {key_id!r}"
        service_account_id, public_key = account
        try:
            claims = jwt.decode(
                token,
                public_key,
                algorithms=["PS256"],
                audience=_JWT_AUDIENCE,
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except jwt.PyJWTError as exc:
            return str(exc)
        if claims["iss"] != service_account_id:
            return "iss is not the key's service account"
        if int(claims["exp"]) - int(claims["iat"]) > 3600:
            return "exp - iat must be at most 3600 seconds"
        return None


def config_for(
    server: LoopbackServer, name: str = "yandexgpt", **overrides: Any
) -> YandexGPTConfig:
    """A provider config pointed at ``server`` (serving a :class:`YandexGPTEmulator`):
    its base, IAM and operation URLs, its test API key and folder, its CA when TLS.

    Give another credential (``iam_token=``, ``oauth_token=``, ``service_account_key=``)
    in ``overrides`` to use it instead of the API key.
    """
    app = server.app
    # Look through forwarding wrappers (such as the contract kit's app switch).
    for _ in range(5):
        if hasattr(app, "api_key") or not hasattr(app, "app"):
            break
        app = app.app
    values: dict[str, Any] = {
        "name": name,
        "base_url": server.base_url,
        "iam_url": f"{server.base_url}/iam/v1/tokens",
        "operation_url": server.base_url,
        "api_key": getattr(app, "api_key", TEST_API_KEY),
        "folder_id": getattr(app, "folder_id", TEST_FOLDER_ID),
        "model": "yandexgpt-lite",
        "poll_interval": 0.05,
    }
    if server.ca_file:
        values["ca_bundle"] = server.ca_file
    other = ("iam_token", "oauth_token", "service_account_key", "service_account_key_file")
    if "api_key" not in overrides and any(overrides.get(k) for k in other):
        del values["api_key"]
    values.update(overrides)
    return YandexGPTConfig(**values)
