"""The GigaChat provider: chat, SSE streaming, function calling, structured output,
embeddings, models, token counting, health check.

Wire facts follow ``shared/specs/gigachat-api.md``. Parameters map to GigaChat's names:
``temperature`` (GigaChat needs > 0: ``0`` is sent as ``0.001``, the value below which
GigaChat switches to its most deterministic mode), ``top_p``, ``max_tokens``; ``stop`` is
rejected (GigaChat has no stop sequences). Finish reasons are reported as GigaChat gave them
(``blacklist`` becomes ``content_filter``; the raw value is in ``Completion.extra``).

Tools, structured output and embeddings: see :mod:`orchestrator_gigachat.functions` for the
wire mapping. GigaChat calls one function per answer (no parallel calls) and has no
"required" mode; ``response_format`` goes out natively (``config.structured_output``
``"native"``) or as a forced function call (``"function"``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import ssl
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AbstractContextManager, aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import anyio

from orchestrator.boundary import (
    body_excerpt,
    json_loads,
    map_transport_error,
    mapped_transport_errors,
    token_count,
)
from orchestrator.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    InvalidToolCallError,
    ProviderError,
    StreamError,
    StructuredOutputError,
)
from orchestrator.pricing import load_price_list
from orchestrator.providers.base import BaseProvider
from orchestrator.sse import release
from orchestrator.types import (
    Chunk,
    Completion,
    EmbeddingKind,
    Embeddings,
    FinishReason,
    GenerationParams,
    Message,
    ToolCall,
    Usage,
    coerce_messages,
)
from orchestrator_gigachat.auth import AccessToken, TokenManager
from orchestrator_gigachat.config import (
    DEFAULT_BASE_URL,
    EMBEDDING_DIMENSIONS,
    GigaChatConfig,
    from_environment,
)
from orchestrator_gigachat.errors import KEY_HELP, TLS_HINT, api_error, request_id_of
from orchestrator_gigachat.functions import (
    FunctionCallParts,
    answer_function_for,
    function_call_for,
    functions_for,
    message_to_wire,
    response_format_for,
    tool_call_from_wire,
)
from orchestrator_gigachat.sse import EventReader

if TYPE_CHECKING:
    import httpx

    from orchestrator.capabilities import EmbeddingSpace
    from orchestrator.config import ProviderConfig

#: What a call without params sends: one read-only instance, not a pydantic model per call.
_DEFAULT_PARAMS = GenerationParams()

__all__ = [
    "MIN_TEMPERATURE",
    "EventFields",
    "GigaChatModel",
    "GigaChatProvider",
    "TokenCount",
    "parse_completion",
    "parse_embeddings",
    "parse_event",
]

#: What ``temperature=0`` is sent as: GigaChat rejects 0 and treats (0, 0.001] as greedy.
MIN_TEMPERATURE = 0.001

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "blacklist": "content_filter",
    "function_call": "function_call",
    "error": "error",
}

USER_AGENT = "orchestrator-gigachat/0.1"


@dataclass(frozen=True, slots=True)
class GigaChatModel:
    """One entry of ``GET /models``."""

    id: str
    owned_by: str | None = None
    #: ``chat``, ``embedder``, ``aicheck`` or ``filter``.
    type: str | None = None


@dataclass(frozen=True, slots=True)
class TokenCount:
    """One entry of ``POST /tokens/count``."""

    tokens: int
    characters: int


@functools.lru_cache(maxsize=64)
def _absolute(base: str, path: str) -> httpx.URL:
    """``base`` + ``path``, parsed once: given a relative path, httpx parses and merges a
    second URL on every call (about a third of what the provider adds to a call)."""
    import httpx

    return httpx.URL(base.rstrip("/") + "/" + path.lstrip("/"))


def _finish_reason(raw: str | None) -> FinishReason:
    return _FINISH.get(raw, "stop") if raw is not None else "stop"


def _usage(raw: Any) -> Usage | None:
    """The vendor's token counts; None when absent or when a count is not a non-negative
    integer (a usage the vendor garbled is not reported, rather than reported wrong)."""
    if not isinstance(raw, dict):
        return None
    counts: dict[str, int] = {}
    for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = raw.get(field)
        count = 0 if value is None else token_count(value)
        if count is None:
            return None
        counts[field] = count
    cached = raw.get("precached_prompt_tokens")
    return Usage(**counts, cached_prompt_tokens=None if cached is None else token_count(cached))


def _text(value: Any) -> str | None:
    """``content`` as text: a string, or "" for null/absent; None for any other JSON value."""
    if value is None:
        return ""
    return value if isinstance(value, str) else None


def _reason(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError("finish_reason is not a string")
    return value


def parse_completion(
    data: Any,
    *,
    provider: str,
    model: str | None,
    request_id: str | None,
    session_id: str | None = None,
    latency: float = 0.0,
    answer_function: str | None = None,
) -> Completion:
    """The :class:`Completion` of a ``/chat/completions`` answer body (decoded JSON).

    A ``function_call`` becomes one :class:`ToolCall` (``finish_reason="tool_calls"``);
    a call of ``answer_function`` (structured output sent as a forced function call) becomes
    the answer's text, its arguments as JSON. ``finish_reason="error"`` (invalid function
    arguments) raises :class:`InvalidToolCallError` (:class:`StructuredOutputError` for
    ``answer_function``). Any other shape raises :class:`ProviderError` (never a bare
    ``TypeError``/``KeyError``).
    """
    try:
        choice = data["choices"][0]
        message = choice["message"]
        text = _text(message.get("content"))
        raw_finish = _reason(choice.get("finish_reason"))
        if text is None:
            raise TypeError("content is not a string")
        model_version = data.get("model")
        function_call = message.get("function_call")
        state_id = message.get("functions_state_id")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ProviderError(
            "GigaChat answered 200 without a text choices[0].message.content; check base_url",
            provider=provider,
            status_code=200,
            request_id=request_id,
        ) from None
    extra: dict[str, Any] = {
        "finish_reason": raw_finish,
        "model_version": model_version,
        "session_id": session_id,
    }
    if state_id is not None:
        extra["functions_state_id"] = state_id
    finish_reason = _finish_reason(raw_finish)
    text, calls, finish_reason = _function_answer(
        text,
        finish_reason,
        function_call,
        state_id,
        answer_function,
        provider=provider,
        request_id=request_id,
    )
    return Completion(
        text=text,
        provider=provider,
        model=model,
        finish_reason=finish_reason,
        usage=_usage(data.get("usage")),
        request_id=request_id,
        latency=latency,
        extra=extra,
        tool_calls=calls,
    )


def _function_answer(
    text: str,
    finish_reason: FinishReason,
    function_call: Any,
    state_id: Any,
    answer_function: str | None,
    *,
    provider: str,
    request_id: str | None,
) -> tuple[str, tuple[ToolCall, ...], FinishReason]:
    """(text, tool calls, finish reason) of an answer that may carry a function call."""
    if finish_reason == "error":
        raw = text if function_call is None else json.dumps(function_call, ensure_ascii=False)
        what = "the answer" if answer_function else "a function call"
        error = StructuredOutputError if answer_function else InvalidToolCallError
        raise error(
            f"GigaChat answered finish_reason 'error': the model produced invalid arguments "
            f"for {what}; retry, or simplify the function's parameters",
            raw_text=raw,
            provider=provider,
            status_code=200,
            request_id=request_id,
        )
    if function_call is None:
        return text, (), finish_reason
    try:
        call = tool_call_from_wire(function_call, state_id)
    except InvalidToolCallError as exc:
        exc.provider, exc.request_id = provider, request_id
        raise
    if answer_function is not None and call.name == answer_function:
        return call.arguments_json(), (), "stop"
    return text, (call,), "tool_calls"


class EventFields(NamedTuple):
    """What one SSE event of a chat stream carries (a named tuple: built once per event, it
    costs a third of a frozen dataclass)."""

    text: str
    #: GigaChat's raw finish reason (None until the last event).
    finish_reason: str | None
    usage: Usage | None
    #: ``delta.function_call`` as sent (None when absent).
    function_call: Any = None
    #: ``delta.functions_state_id`` (None when absent).
    state_id: Any = None


def parse_event(data: str) -> EventFields | None:
    """The fields of one SSE event's ``data`` (JSON), or None when it has another shape:
    ``{"choices": [null]}``, a string ``delta``, a numeric ``content``... A garbled
    ``usage`` is dropped (see :func:`_usage`), not fatal.

    Runs once per streamed chunk, so the checks are inlined (exact ``type`` tests: JSON
    gives plain ``str``)."""
    try:
        event = json_loads(data)
        choice = event["choices"][0]
        delta = choice.get("delta")
        if delta is None:
            delta = {}
        text = delta.get("content")
        finish_reason = choice.get("finish_reason")
        usage = event.get("usage")
        function_call = delta.get("function_call")
        state_id = delta.get("functions_state_id")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
        return None
    if text is None:
        text = ""
    elif type(text) is not str:
        return None
    if finish_reason is not None and type(finish_reason) is not str:
        return None
    return EventFields(
        text, finish_reason, None if usage is None else _usage(usage), function_call, state_id
    )


def parse_embeddings(
    data: Any, count: int, dimension: int
) -> tuple[list[list[float]], Usage | None] | None:
    """The vectors (in input order) and summed per-item usage of a ``/embeddings`` answer
    for ``count`` texts of ``dimension`` numbers each, or None when it has another shape."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != count:
        return None
    vectors: list[list[float] | None] = [None] * count
    tokens: int | None = 0
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            return None
        index = item.get("index", position)
        vector = item.get("embedding")
        if (
            isinstance(index, bool)
            or not isinstance(index, int)
            or not 0 <= index < count
            or vectors[index] is not None
            or not isinstance(vector, list)
            or len(vector) != dimension
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vector)
        ):
            return None
        vectors[index] = [float(x) for x in vector]
        usage = item.get("usage")
        used = token_count(usage.get("prompt_tokens")) if isinstance(usage, dict) else None
        tokens = None if used is None or tokens is None else tokens + used
    return [v for v in vectors if v is not None], (
        None if tokens is None else Usage(tokens, 0, tokens)
    )


class GigaChatProvider(BaseProvider):
    """Sber GigaChat (``name="gigachat"``): OAuth tokens, chat, streaming, models.

    ``GigaChatProvider(ProviderConfig(name="giga", api_key=KEY))`` is enough; see
    :class:`~orchestrator_gigachat.GigaChatConfig` for scope, URLs, TLS and the env vars.
    """

    config_class: ClassVar[type[ProviderConfig]] = GigaChatConfig
    supports_model_override: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = True
    supports_structured_output: ClassVar[bool] = True
    # supports_parallel_tool_calls stays False: one function call per message.
    emulator: ClassVar[str | None] = "orchestrator_gigachat.emulator:GigaChatEmulator"
    config: GigaChatConfig

    DEFAULT_BASE_URL: ClassVar[str] = DEFAULT_BASE_URL

    @classmethod
    def config_from_env(cls, name: str) -> GigaChatConfig | None:
        """A config from the official SDK's ``GIGACHAT_*`` variables, or None without
        credentials (an authorization key, an access token, or user and password).

        Raises :class:`ConfigurationError` naming a variable whose value is not valid."""
        env = os.environ
        if (
            env.get("GIGACHAT_CREDENTIALS")
            or env.get("GIGACHAT_ACCESS_TOKEN")
            or (env.get("GIGACHAT_USER") and env.get("GIGACHAT_PASSWORD"))
        ):
            return from_environment(name)
        return None

    def __init__(
        self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(config, transport=transport)
        if not self.config.base_url:
            self.config.base_url = self.DEFAULT_BASE_URL
        if not (
            self.config.api_key
            or self.config.access_token
            or (self.config.user and self.config.password)
        ):
            raise ConfigurationError(
                f"GigaChat provider {self.config.name!r} has no credentials: "
                + KEY_HELP
                + " (or set access_token / GIGACHAT_ACCESS_TOKEN, or user and password)"
            )
        self._ssl_context = self._build_ssl_context()
        self.tokens = TokenManager(self)

    # -- TLS and the HTTP client ------------------------------------------------------------

    def _build_ssl_context(self) -> ssl.SSLContext:
        """One SSL context for the API and OAuth clients of every loop (built once)."""
        config = self.config
        for field in ("ca_bundle_file", "cert_file", "key_file"):
            path = getattr(config, field)
            if path and not os.path.isfile(path):
                raise ConfigurationError(
                    f"GigaChat {field} {path!r} does not exist; give the path of a PEM file"
                )
        if bool(config.key_file) and not config.cert_file:
            raise ConfigurationError("GigaChat key_file needs cert_file (mTLS) as well")
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
        if config.ca_bundle_file:
            try:
                context.load_verify_locations(cafile=config.ca_bundle_file)
            except ssl.SSLError as exc:
                raise ConfigurationError(
                    f"GigaChat ca_bundle_file {config.ca_bundle_file!r} is not a PEM CA "
                    f"bundle: {exc}"
                ) from None
        if config.cert_file:
            try:
                context.load_cert_chain(config.cert_file, config.key_file, config.key_file_password)
            except (ssl.SSLError, OSError) as exc:
                raise ConfigurationError(
                    f"GigaChat client certificate {config.cert_file!r} could not be loaded "
                    f"({type(exc).__name__}); check cert_file, key_file and key_file_password"
                ) from None
        if not config.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self.logger.warning(
                "%s: TLS certificate verification is OFF (verify_ssl=False); use it for "
                "development only and prefer ca_bundle_file with the Russian Trusted Root CA",
                config.name,
            )
        return context

    def _create_http_client(self) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(
            base_url=self.config.base_url or self.DEFAULT_BASE_URL,
            timeout=self.config.timeout,
            verify=self._ssl_context,
            transport=self._transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    # -- requests -----------------------------------------------------------------------

    def _headers(
        self, token: AccessToken, request_id: str, session_id: str | None
    ) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {token.value}",
            "X-Request-ID": request_id,
            "Accept": "application/json",
        }
        session = session_id or self.config.session_id
        if session:
            headers["X-Session-ID"] = session
        return headers

    def _mapped(self, what: str, request_id: str) -> AbstractContextManager[None]:
        """Map ``httpx`` exceptions inside to typed errors (the core's map, GigaChat's TLS
        hint)."""
        return mapped_transport_errors(
            self.config.name, what=f"GigaChat {what}", request_id=request_id, tls_hint=TLS_HINT
        )

    async def _open(
        self,
        method: str,
        path: str,
        *,
        payload: Any = None,
        session_id: str | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send one API call and return its 200 response (streamed: still open).

        A 401 drops the token, fetches a new one and retries once.
        """
        client = self.http_client()
        url = _absolute(self.config.base_url or self.DEFAULT_BASE_URL, path)
        request_id = str(uuid.uuid4())
        for attempt in (1, 2):
            token = await self.tokens.get()
            headers = self._headers(token, request_id, session_id)
            if stream:
                headers["Accept"] = "text/event-stream"
                headers["Cache-Control"] = "no-store"
            with self._mapped(f"{method} {path} failed", request_id):
                request = client.build_request(method, url, json=payload, headers=headers)
                response = await client.send(request, stream=stream)
            if response.status_code == 200:
                return response
            try:
                with self._mapped("error body unreadable", request_id):
                    await response.aread()
            finally:
                await response.aclose()
            self.logger.debug(
                "%s: %s %s -> %d (request id %s)",
                self.config.name,
                method,
                path,
                response.status_code,
                request_id_of(response) or request_id,
            )
            if response.status_code == 401:
                self.tokens.invalidate(token)
                if attempt == 1 and self.tokens.can_refresh:
                    continue
                if token.source == "preissued":
                    raise AuthenticationError(
                        "GigaChat rejected the access token (config.access_token / "
                        "GIGACHAT_ACCESS_TOKEN): it expired or is invalid, and there is no "
                        "authorization key to get a new one; pass a fresh token, or " + KEY_HELP,
                        provider=self.config.name,
                        status_code=401,
                        request_id=request_id_of(response) or request_id,
                    )
            raise api_error(response, provider=self.config.name, request_id=request_id)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _json(
        self, method: str, path: str, payload: Any = None, session_id: str | None = None
    ) -> tuple[Any, httpx.Response]:
        response = await self._open(method, path, payload=payload, session_id=session_id)
        try:
            return json_loads(response.content), response
        except (ValueError, RecursionError):
            raise ProviderError(
                f"GigaChat answered {path} with a body that is not JSON; check base_url",
                provider=self.config.name,
                status_code=response.status_code,
                request_id=request_id_of(response),
            ) from None

    # -- parameters and messages ----------------------------------------------------------

    def validate_params(self, params: GenerationParams) -> None:
        """Reject what GigaChat cannot honour: ``stop`` sequences, parallel tool calls,
        ``tool_choice="required"`` among several tools, and (with
        ``structured_output="function"``) tools together with ``response_format``."""
        super().validate_params(params)
        name = self.config.name
        if params.stop:
            raise InvalidRequestError(
                "GigaChat has no stop sequences; remove params.stop (or post-process the answer)",
                provider=name,
            )
        if params.parallel_tool_calls:
            raise InvalidRequestError(
                "GigaChat calls one function per answer; drop parallel_tool_calls=True "
                "(or use a provider with parallel tool calls)",
                provider=name,
            )
        if params.tools is not None:
            function_call_for(params, name)  # raises for "required" with several tools
        if (
            params.response_format is not None
            and params.tools
            and self.config.structured_output == "function"
        ):
            raise InvalidRequestError(
                "GigaChat sends response_format as a forced function call here "
                "(structured_output='function'), which leaves no room for tools; drop "
                "tools or response_format, or set structured_output='native'",
                provider=name,
            )

    def _answer_function(self, params: GenerationParams | None) -> str | None:
        """The function carrying the answer when response_format goes out as a forced
        function call (``structured_output="function"``), else None."""
        if params is None or params.response_format is None:
            return None
        if self.config.structured_output != "function":
            return None
        return params.response_format.name

    def _messages(self, messages: Sequence[Message] | Any) -> list[dict[str, Any]]:
        try:
            checked = coerce_messages(messages)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(str(exc), provider=self.config.name) from None
        systems = [i for i, m in enumerate(checked) if m.role == "system"]
        if systems and systems != [0]:
            raise InvalidRequestError(
                "GigaChat accepts one system message and it must be the first message; "
                "merge the system messages and put it first",
                provider=self.config.name,
            )
        name = self.config.name
        return [
            {"role": m.role, "content": m.content}
            if m.role != "tool" and not m.tool_calls
            else message_to_wire(m, name)
            for m in checked
        ]

    def _payload(
        self, messages: Sequence[Message], params: GenerationParams | None, *, stream: bool
    ) -> dict[str, Any]:
        params = params or _DEFAULT_PARAMS
        self.validate_params(params)
        payload: dict[str, Any] = {
            "model": params.model or self.config.model,
            "messages": self._messages(messages),
            "temperature": max(params.temperature, MIN_TEMPERATURE),
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "stream": stream,
        }
        if self.config.repetition_penalty is not None:
            payload["repetition_penalty"] = self.config.repetition_penalty
        if stream and self.config.update_interval is not None:
            payload["update_interval"] = self.config.update_interval
        if params.tools is not None:
            payload["functions"] = functions_for(params.tools)
            function_call = function_call_for(params, self.config.name)
            if function_call is not None:
                payload["function_call"] = function_call
        response_format = params.response_format
        if response_format is not None:
            if self.config.structured_output == "function":
                answer = answer_function_for(response_format)
                payload["functions"] = [answer]
                payload["function_call"] = {"name": answer["name"]}
            else:
                payload["response_format"] = response_format_for(response_format)
        return payload

    # -- the contract ---------------------------------------------------------------------

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        """The answer to ``prompt`` (one user message)."""
        return (await self.chat([Message("user", prompt)], params)).text

    async def chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams | None = None,
        *,
        session_id: str | None = None,
    ) -> Completion:
        """Answer a conversation (system first, then user/assistant turns).

        ``session_id`` overrides ``config.session_id`` as ``X-Session-ID`` for this call.
        """
        payload = self._payload(messages, params, stream=False)
        answer_function = self._answer_function(params)

        async def once() -> Completion:
            started = time.monotonic()
            data, response = await self._json(
                "POST", "/chat/completions", payload, session_id=session_id
            )
            return self._completion(
                data, response, time.monotonic() - started, payload["model"], answer_function
            )

        return await self._retry_with_backoff(once)

    def _completion(
        self,
        data: Any,
        response: httpx.Response,
        latency: float,
        model: str | None,
        answer_function: str | None = None,
    ) -> Completion:
        return parse_completion(
            data,
            provider=self.config.name,
            model=model,
            request_id=request_id_of(response),
            session_id=response.headers.get("x-session-id"),
            latency=latency,
            answer_function=answer_function,
        )

    async def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams | None = None,
        *,
        session_id: str | None = None,
    ) -> AsyncIterator[Chunk]:
        """Stream the answer over SSE; the last chunk has the finish reason and usage.

        The final chunk is only yielded once ``data: [DONE]`` arrived: a stream that ends
        without it, breaks, or carries a malformed event raises :class:`StreamError`.
        """
        payload = self._payload(messages, params, stream=True)
        model = payload["model"]
        answer_function = self._answer_function(params)
        response = await self._retry_with_backoff(
            self._open,
            "POST",
            "/chat/completions",
            payload=payload,
            session_id=session_id,
            stream=True,
        )
        del payload  # sent (the request keeps its bytes): not held while the stream is open
        raw = response.aiter_raw()
        try:
            events = self._events(response, EventReader(raw), model, answer_function)
            async with aclosing(events) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            await release(response, raw)  # shielded, unless the body was read to its end

    async def _events(
        self,
        response: httpx.Response,
        reader: EventReader,
        model: str | None,
        answer_function: str | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        import httpx

        request_id = request_id_of(response)
        name = self.config.name
        final: Chunk | None = None
        events = 0
        call = FunctionCallParts()

        def broken(message: str) -> StreamError:
            return StreamError(
                f"GigaChat stream {message} after {events} event(s)",
                provider=name,
                request_id=request_id,
            )

        content_type = response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream"):
            raise broken(f"is not an event stream (Content-Type {content_type!r})")
        while True:
            try:
                data = await reader.next_data()
            except httpx.HTTPError as exc:
                mapped = map_transport_error(exc, name, tls_hint=TLS_HINT)
                if mapped is None:
                    raise
                raise broken(f"broke ({mapped.message})") from exc
            if data is None:
                raise broken("ended without data: [DONE] (truncated)")
            if data == "[DONE]":
                if final is None:
                    raise broken("sent [DONE] without a final event (finish_reason)")
                # Read to the end of the body (the server closes it after [DONE]) so the
                # connection goes back to the pool instead of being dropped. The answer is
                # complete: a connection that breaks now does not fail it.
                with anyio.move_on_after(1.0), contextlib.suppress(httpx.HTTPError):
                    while await reader.next_data() is not None:
                        pass
                if call or final.finish_reason == "error":
                    final = self._final_call(final, call, answer_function, request_id)
                yield final
                return
            events += 1
            fields = parse_event(data)
            if fields is None:
                raise broken(f"carried a malformed event {body_excerpt(data, 120)!r}")
            text, finish_reason = fields.text, fields.finish_reason
            if fields.function_call is not None or fields.state_id is not None:
                try:
                    call.add(fields.function_call, fields.state_id)
                except ValueError as exc:
                    raise broken(f"carried a malformed function call ({exc})") from None
            if finish_reason is not None or final is not None:
                # Held back until [DONE]: only then is the answer known to be complete.
                final = Chunk(
                    delta=(final.delta if final else "") + text,
                    provider=name,
                    model=model,
                    finish_reason=(
                        _finish_reason(finish_reason)
                        if finish_reason is not None or final is None
                        else final.finish_reason
                    ),
                    usage=fields.usage or (final.usage if final else None),
                    request_id=request_id,
                )
            elif text:
                yield Chunk(delta=text, provider=name, model=model, request_id=request_id)

    def _final_call(
        self,
        final: Chunk,
        call: FunctionCallParts,
        answer_function: str | None,
        request_id: str | None,
    ) -> Chunk:
        """The final chunk of a stream that carried a function call (or ended in error)."""
        text, calls, finish_reason = _function_answer(
            final.delta,
            final.finish_reason or "stop",
            call.function_call() if call else None,
            call.state_id,
            answer_function,
            provider=self.config.name,
            request_id=request_id,
        )
        if calls:
            # GigaChat puts "" in content when it calls: the call is the whole answer.
            return dataclasses.replace(final, tool_calls=calls, finish_reason=finish_reason)
        return dataclasses.replace(final, delta=text, finish_reason=finish_reason)

    # -- embeddings -------------------------------------------------------------------------

    def embedding_space(self) -> EmbeddingSpace | None:
        """``gigachat/<embedding_model>``: one space per model, whichever account serves it
        (None when the model's dimension is neither known nor configured)."""
        from orchestrator.capabilities import EmbeddingSpace

        model = self.config.embedding_model
        dimension = self.config.embedding_dimension or EMBEDDING_DIMENSIONS.get(model)
        if dimension is None:
            return None
        batch = self.config.embedding_max_batch
        return EmbeddingSpace(f"gigachat/{model}", model, dimension, batch)

    async def embed(self, texts: Sequence[str], *, kind: EmbeddingKind = "document") -> Embeddings:
        """Vectors of ``texts`` from ``config.embedding_model`` (``POST /embeddings``), in
        order. GigaChat has one model for documents and queries: ``kind`` changes nothing."""
        space = self.embedding_space()
        if space is None:
            raise ConfigurationError(
                f"GigaChat embedding model {self.config.embedding_model!r} has no known "
                "vector size: set embedding_dimension in the provider's config"
            )
        items = list(texts)
        if not all(isinstance(t, str) for t in items):
            raise InvalidRequestError(
                "embed() needs a sequence of strings", provider=self.config.name
            )
        if not items:
            return Embeddings([], self.config.name, space.model, space.dimension, space.name)
        payload = {"model": space.model, "input": items}

        async def once() -> Embeddings:
            data, response = await self._json("POST", "/embeddings", payload)
            parsed = parse_embeddings(data, len(items), space.dimension)
            if parsed is None:
                raise ProviderError(
                    f"GigaChat answered /embeddings without {len(items)} vectors of "
                    f"{space.dimension} numbers; check base_url, and embedding_dimension for "
                    f"model {space.model!r}",
                    provider=self.config.name,
                    status_code=response.status_code,
                    request_id=request_id_of(response),
                )
            vectors, usage = parsed
            return Embeddings(
                vectors, self.config.name, space.model, space.dimension, space.name, usage
            )

        return await self._retry_with_backoff(once)

    # -- other endpoints ------------------------------------------------------------------

    async def health_check(self) -> bool:
        """True if ``GET /models`` answers (free; never a completion). Never raises."""
        try:
            await self._open("GET", "/models")
        except Exception as exc:
            self.logger.info("%s: health check failed: %s", self.config.name, exc)
            return False
        return True

    async def list_models(self) -> list[GigaChatModel]:
        """The models this account can use (``GET /models``)."""

        async def once() -> list[GigaChatModel]:
            data, response = await self._json("GET", "/models")
            models = data.get("data") if isinstance(data, dict) else None
            if not isinstance(models, list):
                raise self._shape_error("/models", "a data list", response)
            return [
                GigaChatModel(
                    str(m["id"]),
                    m["owned_by"] if isinstance(m.get("owned_by"), str) else None,
                    m["type"] if isinstance(m.get("type"), str) else None,
                )
                for m in models
                if isinstance(m, dict) and "id" in m
            ]

        return await self._retry_with_backoff(once)

    async def count_tokens(
        self, texts: str | Sequence[str], model: str | None = None
    ) -> list[TokenCount]:
        """Token and character counts of each text (``POST /tokens/count``, free)."""
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items or not all(isinstance(t, str) for t in items):
            raise InvalidRequestError(
                "count_tokens needs a string or a non-empty list of strings",
                provider=self.config.name,
            )
        payload = {"model": model or self.config.model, "input": items}

        async def once() -> list[TokenCount]:
            data, response = await self._json("POST", "/tokens/count", payload)
            counts: list[TokenCount] = []
            for item in data if isinstance(data, list) else [None]:
                tokens = token_count(item.get("tokens")) if isinstance(item, dict) else None
                characters = (
                    token_count(item.get("characters", 0)) if isinstance(item, dict) else None
                )
                if tokens is None or characters is None:
                    raise self._shape_error("/tokens/count", "a list of counts", response)
                counts.append(TokenCount(tokens, characters))
            return counts

        return await self._retry_with_backoff(once)

    def _shape_error(self, path: str, expected: str, response: httpx.Response) -> ProviderError:
        return ProviderError(
            f"GigaChat answered {path} without {expected}; check base_url",
            provider=self.config.name,
            status_code=response.status_code,
            request_id=request_id_of(response),
        )


#: The vendor's list prices as data (``prices.toml`` in this package, every figure with its
#: source and date). Set here, not in the package's ``__init__``, which imports this module
#: only on first use.
GigaChatProvider.prices = load_price_list("orchestrator_gigachat")
