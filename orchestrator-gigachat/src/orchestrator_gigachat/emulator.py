"""A protocol-faithful GigaChat API emulator, with scriptable faults.

:class:`GigaChatEmulator` is an ASGI app implementing the OAuth endpoint and the v1 API
(``/chat/completions`` plain and SSE, ``/models``, ``/models/{id}``, ``/tokens/count``,
``/embeddings``, ``/balance``, password ``/token``) with the JSON shapes, headers and
validation errors of ``shared/specs/gigachat-api.md``. Serve it on a real loopback socket
with :class:`orchestrator.testing.LoopbackServer` and point a provider at it with
:func:`config_for`::

    from orchestrator.testing import LoopbackServer
    from orchestrator_gigachat import GigaChatProvider
    from orchestrator_gigachat.emulator import GigaChatEmulator, config_for

    app = GigaChatEmulator()
    with LoopbackServer(app, tls=True) as server:
        provider = GigaChatProvider(config_for(server))
        ...

Answers are deterministic: ``answer_for(messages)`` is ``"GigaChat emulator: <last user
message>"``, the same for plain and streamed calls; a user message containing
``[blacklist]`` gets GigaChat's topic refusal with ``finish_reason="blacklist"``; a small
``max_tokens`` cuts the answer with ``finish_reason="length"``.

Functions (``shared/specs/gigachat-functions-embeddings.md`` section 9): ``functions`` and
``function_call`` are validated; with ``function_call: {"name": f}`` the "model" calls ``f``,
with ``"auto"`` (or none given) it calls the first function named in the last user message
(else the first function) -- unless the last message is a ``function`` result, which it
answers in text (``"<prefix>: <name> returned <content>"``). Arguments are made up from the
function's JSON Schema (every property, a value of its type). A call comes back with
``content: ""``, ``finish_reason: "function_call"``, arguments as an object and a
``functions_state_id``; streamed, the whole call is in the last event before ``[DONE]``.
``response_format`` (``{"type": "json_schema", "schema": ...}``) answers a JSON string made
up from the schema. Script what the model does instead with :class:`CallFunction`,
:class:`InvalidArguments` and :class:`Reply` (see :meth:`GigaChatEmulator.script`).

From the command line: ``python -m orchestrator_gigachat.emulator [--tls]`` prints the
``GIGACHAT_*`` variables to export and serves until Ctrl-C.

Needs the ``emulator`` extra: ``pip install "orchestrator-gigachat[emulator]"``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from orchestrator.testing.schemas import example_instance
from orchestrator_gigachat.config import ENV_VARS, SCOPES, GigaChatConfig

if TYPE_CHECKING:
    from orchestrator.testing import LoopbackServer

__all__ = [
    "BLACKLIST_ANSWER",
    "BLACKLIST_TRIGGER",
    "MODELS",
    "TEST_AUTHORIZATION_KEY",
    "TEST_PASSWORD",
    "TEST_USER",
    "BreakStream",
    "CallFunction",
    "CutStream",
    "EmulatedConnectionReset",
    "ExpireTokens",
    "Fail",
    "GigaChatEmulator",
    "InvalidArguments",
    "MalformedLine",
    "NoDone",
    "Pass",
    "RecordedRequest",
    "Reply",
    "Stall",
    "WrongShape",
    "answer_for",
    "config_for",
    "count_tokens",
    "example_for",
    "main",
]

#: The authorization key the emulator accepts by default (base64 of a fake id:secret).
TEST_AUTHORIZATION_KEY = base64.b64encode(b"emulator-client-id:emulator-client-secret").decode()
TEST_USER = "emulator-user"
# Not "emulator-...": a registered secret masks its leading part wherever it appears, and
# messages about the emulator say "emulator".
TEST_PASSWORD = "pw-0f3c9e-test-only"  # noqa: S105 - a documented test credential

BLACKLIST_TRIGGER = "[blacklist]"
#: GigaChat's refusal of a blacklisted topic (Cyrillic on purpose).
BLACKLIST_ANSWER = "Не люблю менять тему разговора, но вот сейчас тот самый случай."  # noqa: RUF001
MODEL_VERSION = "2.0.28.2"

#: (id, type) of every model ``GET /models`` lists.
MODELS: tuple[tuple[str, str], ...] = (
    ("GigaChat", "chat"),
    ("GigaChat-Pro", "chat"),
    ("GigaChat-Max", "chat"),
    ("GigaChat-2", "chat"),
    ("GigaChat-2-Pro", "chat"),
    ("GigaChat-2-Max", "chat"),
    ("GigaChat-2-preview", "chat"),
    ("GigaChat-2-Pro-preview", "chat"),
    ("GigaChat-2-Max-preview", "chat"),
    ("GigaChat-3-Ultra", "chat"),
    ("Embeddings", "embedder"),
    ("Embeddings-2", "embedder"),
    ("EmbeddingsGigaR", "embedder"),
)
_MODEL_IDS = frozenset(m for m, _ in MODELS)
#: Vector size of every embeddings model (1024 is confirmed for ``Embeddings``; the others'
#: sizes are not, and the emulator gives them the same).
EMBEDDING_DIMENSION = 1024
#: GigaChat's built-in functions (callable by name without a description in ``functions``).
BUILTIN_FUNCTIONS = frozenset(("text2image", "get_file_content", "text2model3d"))
# "Only Latin letters, must not start with a digit"; the official examples use "_" (the
# exact rule is unconfirmed: digits, "_" and "-" after the first letter are accepted).
_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ROLES = frozenset(("system", "user", "assistant", "function"))

_STATUS_MESSAGES = {
    400: "Bad request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Permission denied",
    404: "No such model",
    413: "Payload too large",
    422: "Invalid params",
    429: "Too many requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """The emulator's token count of ``text`` (words and punctuation marks)."""
    return len(_TOKEN.findall(text))


def answer_for(
    messages: Sequence[dict[str, Any]], prefix: str = "GigaChat emulator"
) -> tuple[str, str]:
    """The emulator's answer text (``"<prefix>: <last user message>"``, or
    ``"<prefix>: <name> returned <content>"`` after a function result) and finish reason for
    ``messages`` (before max_tokens)."""
    if messages and messages[-1].get("role") == "function":
        last = messages[-1]
        name = last.get("name") or next(
            (
                m["function_call"].get("name")
                for m in reversed(messages)
                if isinstance(m.get("function_call"), dict)
            ),
            "function",
        )
        return f"{prefix}: {name} returned {last.get('content')}", "stop"
    last_user = next(
        (str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"),
        "",
    )
    if BLACKLIST_TRIGGER in last_user:
        return BLACKLIST_ANSWER, "blacklist"
    return f"{prefix}: {last_user}", "stop"


def example_for(schema: Any, hint: str = "emulator") -> Any:
    """A value matching JSON Schema ``schema`` (what the emulator's "model" fills function
    arguments and structured answers with), its strings ``hint`` (the user's words)."""
    return example_instance(schema if isinstance(schema, dict) else {}, text=hint)


def _truncate(text: str, max_tokens: int) -> tuple[str, bool]:
    matches = list(_TOKEN.finditer(text))
    if len(matches) <= max_tokens:
        return text, False
    return text[: matches[max_tokens - 1].end()], True


def _pieces(text: str, tokens_per_chunk: int) -> list[str]:
    """``text`` split into chunks of ``tokens_per_chunk`` tokens; they join back to it."""
    starts = [m.start() for m in _TOKEN.finditer(text)][::tokens_per_chunk]
    if not starts:
        return [text] if text else []
    starts[0] = 0
    ends = [*starts[1:], len(text)]
    return [text[a:b] for a, b in zip(starts, ends, strict=True)]


# -- scripted faults -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fail:
    """Answer with ``status`` in GigaChat's error shape (``Retry-After`` when given)."""

    status: int
    retry_after: float | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Pass:
    """Answer normally (a gap in a :meth:`GigaChatEmulator.script` sequence)."""


@dataclass(frozen=True, slots=True)
class ExpireTokens:
    """Expire every issued access token now; the request then meets a 401."""


@dataclass(frozen=True, slots=True)
class CutStream:
    """Streaming only: end the response after ``after_chunks`` text chunks, no final
    event and no ``[DONE]``."""

    after_chunks: int = 1


@dataclass(frozen=True, slots=True)
class MalformedLine:
    """Streaming only: send a ``data:`` line that is not JSON after ``after_chunks``."""

    after_chunks: int = 1


@dataclass(frozen=True, slots=True)
class NoDone:
    """Streaming only: send every event including the final one, but no ``[DONE]``."""


@dataclass(frozen=True, slots=True)
class BreakStream:
    """Streaming only: drop the connection after ``after_chunks`` text chunks, mid-body
    (the client sees an incomplete chunked read, like a reset)."""

    after_chunks: int = 1


@dataclass(frozen=True, slots=True)
class Stall:
    """Wait ``seconds`` before answering this call (a slow first byte), on top of
    ``latency``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class WrongShape:
    """Valid JSON of the wrong shape (by default ``{"choices": [null]}``): a plain call gets
    it as its 200 body; a stream gets it as one ``data:`` event after ``after_chunks`` text
    chunks, then the rest of the answer."""

    payload: Any = field(default_factory=lambda: {"choices": [None]})
    after_chunks: int = 1


@dataclass(frozen=True, slots=True)
class CallFunction:
    """Chat only: the "model" calls function ``name`` with ``arguments`` (an object as
    GigaChat sends it; a string to test a client's decoding). ``state_id``: the
    ``functions_state_id`` to send (``"auto"``: a fresh UUID; None: none). Streamed with
    ``split=True``, the name and each argument come in separate events before the last."""

    name: str
    arguments: Any = field(default_factory=dict)
    state_id: str | None = "auto"
    split: bool = False


@dataclass(frozen=True, slots=True)
class InvalidArguments:
    """Chat only: the "model" produces invalid arguments for a function: GigaChat's
    ``finish_reason: "error"``, with ``arguments`` in ``function_call``."""

    name: str | None = None
    arguments: Any = field(default_factory=lambda: {"location": None})


@dataclass(frozen=True, slots=True)
class Reply:
    """Chat only: the "model" answers ``content`` as text (finish_reason ``stop``), e.g. a
    structured answer that violates the schema, or text where a call was expected."""

    content: str


class EmulatedConnectionReset(Exception):
    """Raised inside a streamed body to make the server drop the connection."""


Step = (
    Fail
    | Pass
    | ExpireTokens
    | Stall
    | WrongShape
    | CutStream
    | MalformedLine
    | NoDone
    | BreakStream
    | CallFunction
    | InvalidArguments
    | Reply
)
_StreamFault = CutStream | MalformedLine | NoDone | BreakStream | WrongShape
_STREAM_FAULTS = (CutStream, MalformedLine, NoDone, BreakStream, WrongShape)
_Answer = CallFunction | InvalidArguments | Reply
_ANSWERS = (CallFunction, InvalidArguments, Reply)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the emulator received (headers lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class GigaChatEmulator:
    """The GigaChat API as an ASGI app; implements ``orchestrator.testing.ScriptableApp``.

    Every scripting method is thread-safe (tests call them while the server thread serves).
    """

    def __init__(
        self,
        *,
        authorization_key: str = TEST_AUTHORIZATION_KEY,
        scope: str = "GIGACHAT_API_PERS",
        user: str = TEST_USER,
        password: str = TEST_PASSWORD,
        token_ttl: float = 1800.0,
        expires_at_unit: Literal["ms", "s"] = "ms",
        token_shape: Literal["access_token", "tok"] = "access_token",  # noqa: S107
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        tokens_per_chunk: int = 2,
        keepalive: bool = False,
        context_window: int = 32768,
        answer_prefix: str = "GigaChat emulator",
        strict_function_content: bool = False,
    ) -> None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        self.authorization_key = authorization_key
        self.scope = scope
        self.user = user
        self.password = password
        #: Lifetime of issued tokens, seconds (GigaChat: 30 minutes).
        self.token_ttl = token_ttl
        #: ``expires_at`` in milliseconds (SDK, most docs) or seconds (one doc example).
        self.expires_at_unit = expires_at_unit
        #: ``{"access_token", "expires_at"}`` or the recorded ``{"tok", "exp"}``.
        self.token_shape = token_shape
        #: Seconds before every API response's headers (not OAuth).
        self.latency = latency
        #: Seconds between streamed events.
        self.chunk_delay = chunk_delay
        self.tokens_per_chunk = max(1, tokens_per_chunk)
        #: Send ``: keep-alive`` SSE comment lines between events.
        self.keepalive = keepalive
        #: Prompts longer than this many tokens get 413.
        self.context_window = context_window
        #: Answers are ``"<answer_prefix>: <last user message>"`` (tell instances apart).
        self.answer_prefix = answer_prefix
        #: 422 for a ``function`` message whose content is not JSON (the reference asks for
        #: "a valid JSON object wrapped in a string"; the real server's check is unconfirmed).
        self.strict_function_content = strict_function_content
        #: While True every API call answers 503.
        self.outage = False
        #: While True the OAuth endpoint answers 503.
        self.oauth_outage = False
        self._lock = threading.Lock()
        self._steps: deque[Step] = deque()
        self._stream_faults: deque[_StreamFault] = deque()
        self._oauth_steps: deque[Fail] = deque()
        self._tokens: dict[str, float] = {}
        self._sessions: dict[str, int] = {}
        self._request_count = 0
        self._oauth_count = 0
        #: The last 1000 requests received, oldest first.
        self.requests: deque[RecordedRequest] = deque(maxlen=1000)
        routes = [Route("/api/v2/oauth", self._oauth, methods=["POST"])]
        for prefix in ("/api/v1", "/v1", ""):
            routes += [
                Route(f"{prefix}/token", self._password_token, methods=["POST"]),
                Route(f"{prefix}/chat/completions", self._chat, methods=["POST"]),
                Route(f"{prefix}/models", self._models, methods=["GET"]),
                Route(f"{prefix}/models/{{model:path}}", self._model, methods=["GET"]),
                Route(f"{prefix}/tokens/count", self._tokens_count, methods=["POST"]),
                Route(f"{prefix}/embeddings", self._embeddings, methods=["POST"]),
                Route(f"{prefix}/balance", self._balance, methods=["GET"]),
            ]
        self._app = Starlette(routes=routes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)

    # -- ScriptableApp ----------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """API calls received so far (OAuth and password-token calls excluded)."""
        return self._request_count

    @property
    def oauth_count(self) -> int:
        """OAuth and password-token requests received so far."""
        return self._oauth_count

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` API calls with ``status`` (``{"status", "message"}``)."""
        self.script(*[Fail(status, retry_after, message)] * times)

    def cut_next_stream(self, *, after_chunks: int = 1, times: int = 1) -> None:
        """End the next ``times`` streams after ``after_chunks`` chunks, without the final
        event and ``[DONE]``."""
        with self._lock:
            self._stream_faults.extend([CutStream(after_chunks)] * times)

    def malform_next_stream(self, *, after_chunks: int = 1, times: int = 1) -> None:
        """Put a non-JSON ``data:`` line into the next ``times`` streams."""
        with self._lock:
            self._stream_faults.extend([MalformedLine(after_chunks)] * times)

    def drop_done_next_stream(self, *, times: int = 1) -> None:
        """Omit ``data: [DONE]`` from the next ``times`` streams."""
        with self._lock:
            self._stream_faults.extend([NoDone()] * times)

    def break_next_stream(self, *, after_chunks: int = 1, times: int = 1) -> None:
        """Drop the connection of the next ``times`` streams after ``after_chunks`` chunks
        (uvicorn logs the emulated reset as an application error)."""
        with self._lock:
            self._stream_faults.extend([BreakStream(after_chunks)] * times)

    def script(self, *steps: Step) -> None:
        """Queue what the next API calls do, one step per call, in order.

        ``Fail``, ``Pass``, ``ExpireTokens``, ``Stall`` and ``WrongShape`` apply to any call;
        ``CutStream``, ``MalformedLine``, ``NoDone`` and ``BreakStream`` to a streaming call
        (a plain call treats them as ``Pass``); ``CallFunction``, ``InvalidArguments`` and
        ``Reply`` say what the "model" answers a chat call (plain or streamed; any other call
        treats them as ``Pass``).
        """
        with self._lock:
            self._steps.extend(steps)

    def call_function_next(
        self,
        name: str,
        arguments: Any = None,
        *,
        state_id: str | None = "auto",
        split: bool = False,
    ) -> None:
        """Make the "model" answer the next chat call with a call of ``name``."""
        self.script(CallFunction(name, {} if arguments is None else arguments, state_id, split))

    def call_tools_next(self, *calls: tuple[str, Any], times: int = 1) -> None:
        """The vendor-neutral form (:class:`~orchestrator.testing.ScriptableModel`): the next
        ``times`` answers call the tool ``(name, arguments)``. GigaChat makes one call per
        answer, so exactly one is accepted."""
        if len(calls) != 1:
            raise ValueError(
                f"GigaChat answers with one function call at a time, got {len(calls)}; "
                "script several answers instead"
            )
        ((name, arguments),) = calls
        for _ in range(times):
            self.call_function_next(name, arguments)

    def reply_next(self, content: str, *, times: int = 1) -> None:
        """Make the "model" answer the next ``times`` chat calls with ``content`` as text."""
        self.script(*[Reply(content)] * times)

    def invalid_arguments_next(self, name: str | None = None) -> None:
        """Make the next chat call end with ``finish_reason: "error"`` (invalid arguments)."""
        self.script(InvalidArguments(name))

    def fail_next_oauth(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` OAuth/token requests with ``status``
        (``{"code", "message"}``)."""
        with self._lock:
            self._oauth_steps.extend([Fail(status, retry_after, message)] * times)

    def expire_tokens(self) -> None:
        """Expire every issued access token now (the next API call meets a 401)."""
        with self._lock:
            self._tokens.clear()

    def issue_token(self) -> str:
        """A valid access token, as OAuth would issue (for pre-issued-token tests)."""
        token, _ = self._issue()
        return token

    def reset(self) -> None:
        """Forget scripted faults, tokens, sessions, counters and recorded requests."""
        with self._lock:
            self._steps.clear()
            self._stream_faults.clear()
            self._oauth_steps.clear()
            self._tokens.clear()
            self._sessions.clear()
            self._request_count = self._oauth_count = 0
            self.requests.clear()
            self.outage = self.oauth_outage = False
            self.latency = self.chunk_delay = 0.0

    # -- helpers ----------------------------------------------------------------------------

    def _issue(self) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        expires_at = time.time() + self.token_ttl
        with self._lock:
            self._tokens[token] = expires_at
        return token, expires_at

    async def _record(self, request: Request) -> bytes:
        body = await request.body()
        self.requests.append(
            RecordedRequest(
                request.method,
                request.url.path,
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        return body

    @staticmethod
    def _ids(request: Request) -> dict[str, str]:
        return {
            "X-Request-Id": request.headers.get("x-request-id") or str(uuid.uuid4()),
            "X-Session-Id": request.headers.get("x-session-id") or str(uuid.uuid4()),
        }

    def _error(
        self,
        request: Request,
        status: int,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> JSONResponse:
        headers = self._ids(request)
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        text = message or _STATUS_MESSAGES.get(status, "Error")
        return JSONResponse({"status": status, "message": text}, status, headers)

    @staticmethod
    def _oauth_error(
        status: int, code: int, message: str, retry_after: float | None = None
    ) -> JSONResponse:
        headers = {"X-Request-Id": str(uuid.uuid4())}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        return JSONResponse({"code": code, "message": message}, status, headers)

    async def _begin(
        self, request: Request
    ) -> tuple[bytes, Response | _StreamFault | _Answer | None]:
        """Record and count an API call, apply latency, outage, scripted steps and auth.

        Returns the body and an error response to send, a stream fault, or None.
        """
        body = await self._record(request)
        with self._lock:
            self._request_count += 1
            step = self._steps.popleft() if self._steps else None
        if self.latency:
            await anyio.sleep(self.latency)
        if isinstance(step, Stall):
            await anyio.sleep(step.seconds)
        if self.outage:
            return body, self._error(request, 503)
        if isinstance(step, Fail):
            return body, self._error(request, step.status, step.message, step.retry_after)
        if isinstance(step, ExpireTokens):
            self.expire_tokens()
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth[:7].lower() == "bearer " else ""
        with self._lock:
            expires_at = self._tokens.get(token)
        if expires_at is None or expires_at <= time.time():
            return body, self._error(request, 401)
        if isinstance(step, (*_STREAM_FAULTS, *_ANSWERS)):
            return body, step
        return body, None

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            return None

    # -- OAuth ------------------------------------------------------------------------------

    async def _oauth(self, request: Request) -> Response:
        body = await self._record(request)
        with self._lock:
            self._oauth_count += 1
            step = self._oauth_steps.popleft() if self._oauth_steps else None
        if self.oauth_outage:
            return self._oauth_error(503, 503, "Service Unavailable")
        if step is not None:
            return self._oauth_error(
                step.status, step.status, step.message or "Error", step.retry_after
            )
        rquid = request.headers.get("rquid", "")
        try:
            valid_rquid = len(rquid) == 36 and bool(uuid.UUID(rquid))
        except ValueError:
            valid_rquid = False
        if not valid_rquid:
            return self._oauth_error(400, 400, "RqUID header is missing or not a uuid4")
        auth = request.headers.get("authorization", "")
        if auth[:6].lower() != "basic ":
            return self._oauth_error(401, 4, "Can't decode 'Authorization' header")
        key = auth[6:].strip()
        try:
            base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            return self._oauth_error(401, 4, "Can't decode 'Authorization' header")
        if not secrets.compare_digest(key.encode(), self.authorization_key.encode()):
            return self._oauth_error(401, 6, "credentials doesn't match db data")
        form = parse_qs(body.decode("utf-8", "replace"))
        scope = (form.get("scope") or [""])[0]
        if not scope:
            return self._oauth_error(400, 5, "scope is empty")
        if scope not in SCOPES:
            return self._oauth_error(400, 1, "scope data format invalid")
        if scope != self.scope:
            return self._oauth_error(400, 7, "scope from db not fully includes consumed scope")
        token, expires_at = self._issue()
        value = int(expires_at * 1000) if self.expires_at_unit == "ms" else int(expires_at)
        if self.token_shape == "tok":  # noqa: S105
            return JSONResponse({"tok": token, "exp": value})
        return JSONResponse({"access_token": token, "expires_at": value})

    async def _password_token(self, request: Request) -> Response:
        await self._record(request)
        with self._lock:
            self._oauth_count += 1
            step = self._oauth_steps.popleft() if self._oauth_steps else None
        if self.oauth_outage:
            return self._error(request, 503)
        if step is not None:
            return self._error(request, step.status, step.message, step.retry_after)
        auth = request.headers.get("authorization", "")
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except (binascii.Error, ValueError):
            user = password = ""
        if auth[:6].lower() != "basic " or (user, password) != (self.user, self.password):
            return self._error(request, 401)
        token, expires_at = self._issue()
        # Milliseconds, as the real service and the official SDK's expiry check (it compares
        # exp with time.time() * 1000: in seconds it re-authenticates before every call).
        value = int(expires_at * 1000) if self.expires_at_unit == "ms" else int(expires_at)
        return JSONResponse({"tok": token, "exp": value}, headers=self._ids(request))

    # -- API --------------------------------------------------------------------------------

    def _validate_chat(self, data: Any) -> tuple[int, str] | None:
        if not isinstance(data, dict):
            return 400, "Bad request"
        model = data.get("model")
        if not isinstance(model, str) or not model:
            return 422, "Invalid params: model is required"
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            return 422, "Invalid params: messages must not be empty"
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                return 422, f"Invalid params: messages[{index}].role is invalid"
            if not isinstance(message.get("content", ""), str):
                return 422, f"Invalid params: messages[{index}].content must be a string"
            if message["role"] == "system" and index != 0:
                return 422, "Invalid params: system message must be the first message"
            problem = self._check_message_functions(index, message)
            if problem is not None:
                return 422, f"Invalid params: {problem}"
        problem = _check_functions(data)
        if problem is not None:
            return 422, f"Invalid params: {problem}"
        # (name, lowest, lowest allowed itself, highest, interval as GigaChat words it)
        checks = (
            ("temperature", 0.0, False, None, "(0, +inf)"),
            ("top_p", 0.0, True, 1.0, "[0, 1]"),
            ("repetition_penalty", 0.0, False, None, "(0, +inf)"),
            ("max_tokens", 1.0, True, None, "[1, +inf)"),
            ("update_interval", 0.0, True, None, "[0, +inf)"),
        )
        for name, low, inclusive, high, interval in checks:
            value = data.get(name)
            if value is None:
                continue
            ok = (
                not isinstance(value, bool)
                and isinstance(value, int | float)
                and (value >= low if inclusive else value > low)
                and (high is None or value <= high)
            )
            if not ok:
                return 422, f"Invalid params: {name} must be in range {interval}"
        if model not in _MODEL_IDS:
            return 404, "No such model"
        return None

    def _check_message_functions(self, index: int, message: dict[str, Any]) -> str | None:
        """What is wrong with a message's function fields (section 9, items 4-6), or None."""
        where = f"messages[{index}]"
        role = message["role"]
        if role == "function":
            # The SDK documents name as required for role function, but the reference does
            # not list it and langchain-gigachat leaves it out when a ToolMessage has none.
            name = message.get("name")
            if name is not None and (not isinstance(name, str) or not name):
                return f"{where}.name must be a non-empty string"
            if self.strict_function_content:
                try:
                    json.loads(message.get("content", ""))
                except ValueError:
                    return f"{where}.content of a function message must be a JSON string"
        if "function_call" in message and message["function_call"] is not None:
            call = message["function_call"]
            if role != "assistant":
                return f"{where}.function_call is allowed on assistant messages only"
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                return f"{where}.function_call must be an object with a name"
            if not isinstance(call.get("arguments", {}), dict):
                return f"{where}.function_call.arguments must be an object"
        state_id = message.get("functions_state_id")
        if state_id is not None:
            if role != "assistant":
                return f"{where}.functions_state_id is allowed on assistant messages only"
            try:
                uuid.UUID(str(state_id))
            except ValueError:
                return f"{where}.functions_state_id is not a uuid"
        return None

    def _function_answer(
        self, data: dict[str, Any], messages: list[dict[str, Any]], hint: str
    ) -> dict[str, Any] | None:
        """The function call the unscripted "model" makes, or None (it answers text)."""
        functions = [f for f in data.get("functions") or [] if isinstance(f, dict)]
        choice = data.get("function_call")
        if choice == "none":
            return None
        if isinstance(choice, dict):
            name = choice["name"]
            function = next((f for f in functions if f.get("name") == name), {"name": name})
            arguments = example_for(function.get("parameters"), hint)
            partial = choice.get("partial_arguments")
            if isinstance(arguments, dict) and isinstance(partial, dict):
                arguments.update(partial)
            return {"name": name, "arguments": arguments if isinstance(arguments, dict) else {}}
        if not functions or messages[-1].get("role") == "function":
            return None
        last_user = hint.lower()
        function = next((f for f in functions if str(f["name"]).lower() in last_user), functions[0])
        arguments = example_for(function.get("parameters"), hint)
        return {
            "name": function["name"],
            "arguments": arguments if isinstance(arguments, dict) else {},
        }

    async def _chat(self, request: Request) -> Response:
        body, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        data = self._json(body)
        problem = self._validate_chat(data)
        if problem is not None:
            return self._error(request, *problem)
        messages: list[dict[str, Any]] = data["messages"]
        prompt_tokens = sum(count_tokens(str(m.get("content") or "")) + 1 for m in messages)
        if prompt_tokens > self.context_window:
            return self._error(request, 413, "Payload too large")
        text, finish = answer_for(messages, self.answer_prefix)
        function_call: dict[str, Any] | None = None
        state_id: str | None = None
        split = False
        last_user = next(
            (str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"),
            "",
        )
        if isinstance(outcome, Reply):
            text, finish = outcome.content, "stop"
        elif isinstance(outcome, InvalidArguments):
            first: Any = next(iter(data.get("functions") or []), {})
            name = outcome.name or (first.get("name") if isinstance(first, dict) else None)
            function_call = {"name": name or "function", "arguments": outcome.arguments}
            text, finish = "", "error"
        elif isinstance(outcome, CallFunction):
            function_call = {"name": outcome.name, "arguments": outcome.arguments}
            state_id = str(uuid.uuid4()) if outcome.state_id == "auto" else outcome.state_id
            text, finish, split = "", "function_call", outcome.split
        elif finish != "blacklist":
            function_call = self._function_answer(data, messages, last_user[:80] or "emulator")
            if function_call is not None:
                text, finish, state_id = "", "function_call", str(uuid.uuid4())
            elif data.get("response_format", {}).get("type") == "json_schema":
                text = _structured_answer(data["response_format"]["schema"], last_user[:80])
        max_tokens = data.get("max_tokens")
        if isinstance(max_tokens, int) and function_call is None:
            text, cut = _truncate(text, max_tokens)
            if cut:
                finish = "length"
        headers = self._ids(request)
        session = request.headers.get("x-session-id")
        with self._lock:
            precached = min(self._sessions.get(session, 0), prompt_tokens) if session else 0
            if session:
                self._sessions[session] = prompt_tokens
        completion_tokens = count_tokens(text)
        if function_call is not None:
            completion_tokens += count_tokens(json.dumps(function_call, ensure_ascii=False))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "precached_prompt_tokens": precached,
        }
        model = f"{data['model']}:{MODEL_VERSION}"
        created = int(time.time())
        if data.get("stream"):
            fault = outcome if isinstance(outcome, _STREAM_FAULTS) else None
            if fault is None:
                with self._lock:
                    fault = self._stream_faults.popleft() if self._stream_faults else None
            call = (function_call, state_id, split)
            events = self._events(text, finish, usage, model, created, fault, call)
            headers["Cache-Control"] = "no-store"
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        if isinstance(outcome, WrongShape):
            return JSONResponse(outcome.payload, headers=headers)
        message: dict[str, Any] = {"content": text, "role": "assistant"}
        if function_call is not None:
            message["function_call"] = function_call
        if state_id is not None:
            message["functions_state_id"] = state_id
        return JSONResponse(
            {
                "choices": [
                    {
                        "message": message,
                        "index": 0,
                        "finish_reason": finish,
                    }
                ],
                "created": created,
                "model": model,
                "object": "chat.completion",
                "usage": usage,
            },
            headers=headers,
        )

    async def _events(
        self,
        text: str,
        finish: str,
        usage: dict[str, int],
        model: str,
        created: int,
        fault: _StreamFault | None,
        call: tuple[dict[str, Any] | None, str | None, bool] = (None, None, False),
    ) -> AsyncIterator[str]:
        def event(delta: dict[str, Any], **extra: Any) -> str:
            choice: dict[str, Any] = {"delta": delta, "index": 0}
            if "finish_reason" in extra:
                choice["finish_reason"] = extra.pop("finish_reason")
            payload = {
                "choices": [choice],
                "created": created,
                "model": model,
                "object": "chat.completion",
                **extra,
            }
            return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"

        for index, piece in enumerate(_pieces(text, self.tokens_per_chunk)):
            if isinstance(fault, CutStream) and index >= fault.after_chunks:
                return
            if isinstance(fault, BreakStream) and index >= fault.after_chunks:
                raise EmulatedConnectionReset("emulated connection reset (BreakStream fault)")
            if isinstance(fault, MalformedLine) and index == fault.after_chunks:
                yield 'data: {"choices": [{"delta": {"content": \n\n'
            if isinstance(fault, WrongShape) and index == fault.after_chunks:
                yield f"data: {json.dumps(fault.payload)}\n\n"
            if index and self.chunk_delay:
                await anyio.sleep(self.chunk_delay)
            if index and self.keepalive:
                yield ": keep-alive\n\n"
            delta = {"content": piece, "role": "assistant"} if index == 0 else {"content": piece}
            yield event(delta)
        if isinstance(fault, CutStream):
            return
        if self.chunk_delay:
            await anyio.sleep(self.chunk_delay)
        function_call, state_id, split = call
        last: dict[str, Any] = {"content": ""}
        if function_call is not None:
            last["role"] = "assistant"
            if split:
                for delta in _split_call(function_call):
                    yield event(delta)
            else:
                last["function_call"] = function_call
        if state_id is not None:
            last["functions_state_id"] = state_id
        yield event(last, finish_reason=finish, usage=usage)
        if not isinstance(fault, NoDone):
            yield "data: [DONE]\n\n"

    async def _models(self, request: Request) -> Response:
        _, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        data = [
            {"id": model, "object": "model", "owned_by": "salutedevices", "type": kind}
            for model, kind in MODELS
        ]
        return JSONResponse({"object": "list", "data": data}, headers=self._ids(request))

    async def _model(self, request: Request) -> Response:
        _, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        model = request.path_params["model"]
        kind = dict(MODELS).get(model)
        if kind is None:
            return self._error(request, 404, "No such model")
        return JSONResponse(
            {"id": model, "object": "model", "owned_by": "salutedevices", "type": kind},
            headers=self._ids(request),
        )

    async def _tokens_count(self, request: Request) -> Response:
        body, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        data = self._json(body)
        if not isinstance(data, dict) or not isinstance(data.get("model"), str):
            return self._error(request, 422, "Invalid params: model is required")
        items = data.get("input")
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            return self._error(request, 422, "Invalid params: input must be a list of strings")
        if data["model"] not in _MODEL_IDS:
            return self._error(request, 404, "No such model")
        counts = [
            {"object": "tokens", "tokens": count_tokens(item), "characters": len(item)}
            for item in items
        ]
        return JSONResponse(counts, headers=self._ids(request))

    async def _embeddings(self, request: Request) -> Response:
        body, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        data = self._json(body)
        items = data.get("input") if isinstance(data, dict) else None
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            return self._error(request, 422, "Invalid params: input must be a list of strings")
        model = data.get("model") or "Embeddings"
        if dict(MODELS).get(model) != "embedder":
            return self._error(request, 404, "No such model")
        vectors = [
            {
                "object": "embedding",
                "index": index,
                "embedding": [
                    round(byte / 127.5 - 1.0, 6)
                    for byte in hashlib.shake_256(item.encode()).digest(EMBEDDING_DIMENSION)
                ],
                "usage": {"prompt_tokens": count_tokens(item)},
            }
            for index, item in enumerate(items)
        ]
        return JSONResponse(
            {"object": "list", "model": model, "data": vectors}, headers=self._ids(request)
        )

    async def _balance(self, request: Request) -> Response:
        _, outcome = await self._begin(request)
        if isinstance(outcome, Response):
            return outcome
        balance = [
            {"usage": "GigaChat", "value": 991490},
            {"usage": "GigaChat-Pro", "value": 50000},
            {"usage": "embeddings", "value": 1000000},
        ]
        return JSONResponse({"balance": balance}, headers=self._ids(request))


def _check_functions(data: dict[str, Any]) -> str | None:
    """What is wrong with ``functions``, ``function_call`` or ``response_format``."""
    functions = data.get("functions")
    names: set[str] = set()
    if functions is not None:
        if not isinstance(functions, list):
            return "functions must be an array"
        for index, function in enumerate(functions):
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
                return (
                    f"functions[{index}].name must be Latin letters and must not start with a digit"
                )
            if not isinstance(function.get("description", ""), str):
                return f"functions[{index}].description must be a string"
            if not isinstance(function.get("parameters", {}), dict):
                return f"functions[{index}].parameters must be an object"
            names.add(name)
    choice = data.get("function_call")
    if choice is not None and choice not in ("auto", "none"):
        name = choice.get("name") if isinstance(choice, dict) else None
        if not isinstance(name, str):
            return "function_call must be 'auto', 'none' or an object with a name"
        if name not in names and name not in BUILTIN_FUNCTIONS:
            return f"function_call.name {name!r} is not described in functions"
        if not isinstance(choice.get("partial_arguments", {}), dict):
            return "function_call.partial_arguments must be an object"
    response_format = data.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind == "text":
            if set(response_format) != {"type"}:
                return "response_format of type text takes no other fields"
        elif kind == "json_schema":
            if not isinstance(response_format.get("schema"), dict):
                return "response_format.schema must be an object (the flat shape)"
            if not isinstance(response_format.get("strict", False), bool):
                return "response_format.strict must be a boolean"
        elif kind == "regex":
            if not isinstance(response_format.get("regex"), str):
                return "response_format.regex must be a string"
        else:
            return "response_format.type must be text, json_schema or regex"
    return None


def _structured_answer(schema: dict[str, Any], hint: str) -> str:
    """The JSON string the unscripted "model" answers a ``json_schema`` response_format
    with (indented as the recorded answers are)."""
    value = example_for(schema, hint or "emulator")
    return json.dumps(value, ensure_ascii=False, indent=4)


def _split_call(function_call: dict[str, Any]) -> list[dict[str, Any]]:
    """A function call as several deltas: the name, then one argument (or half of a
    string of arguments) per delta."""
    name, arguments = function_call["name"], function_call["arguments"]
    deltas: list[dict[str, Any]] = [
        {"role": "assistant", "content": "", "function_call": {"name": name, "arguments": {}}}
    ]
    if isinstance(arguments, dict):
        parts: list[Any] = [{key: value} for key, value in arguments.items()]
    else:
        text = str(arguments)
        parts = [text[: len(text) // 2], text[len(text) // 2 :]]
    deltas += [{"content": "", "function_call": {"arguments": part}} for part in parts]
    return deltas


def config_for(server: LoopbackServer, name: str = "gigachat", **overrides: Any) -> GigaChatConfig:
    """A :class:`GigaChatConfig` pointed at ``server`` (serving a :class:`GigaChatEmulator`).

    Base and OAuth URLs, the emulator's authorization key and scope, and the server's CA
    bundle under TLS; every other ``GIGACHAT_*`` setting is pinned so the environment
    cannot leak in. ``overrides`` win (e.g. ``api_key=None, access_token=...``).
    """
    app = server.app
    values: dict[str, Any] = dict.fromkeys(ENV_VARS)
    values.update(
        name=name,
        base_url=f"{server.base_url}/api/v1",
        auth_url=f"{server.base_url}/api/v2/oauth",
        api_key=getattr(app, "authorization_key", TEST_AUTHORIZATION_KEY),
        scope=getattr(app, "scope", "GIGACHAT_API_PERS"),
        model="GigaChat-2",
        verify_ssl=True,
        timeout=30.0,
        ca_bundle_file=server.ca_file if server.tls else None,
    )
    values.update(overrides)
    return GigaChatConfig(**values)


def main(argv: Sequence[str] | None = None, *, stop: threading.Event | None = None) -> int:
    """Serve an emulator on loopback and print the ``GIGACHAT_*`` settings to use."""
    from orchestrator.testing import LoopbackServer

    parser = argparse.ArgumentParser(
        prog="python -m orchestrator_gigachat.emulator",
        description="Serve the GigaChat API emulator on 127.0.0.1 until Ctrl-C.",
    )
    parser.add_argument("--tls", action="store_true", help="HTTPS with a throwaway CA")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per API call")
    args = parser.parse_args(argv)
    app = GigaChatEmulator(latency=args.latency)
    with LoopbackServer(app, tls=args.tls) as server:
        config = config_for(server)
        print(f"GigaChat emulator serving on {server.base_url}")
        print(f"export GIGACHAT_BASE_URL={config.base_url}")
        print(f"export GIGACHAT_AUTH_URL={config.auth_url}")
        print(f"export GIGACHAT_CREDENTIALS={app.authorization_key}")
        print(f"export GIGACHAT_MODEL={config.model}")
        if server.ca_file:
            print(f"export GIGACHAT_CA_BUNDLE_FILE={server.ca_file}")
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
