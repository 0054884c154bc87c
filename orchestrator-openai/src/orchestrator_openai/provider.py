"""The OpenAI-compatible provider: chat, SSE streaming with usage, tools, structured output,
embeddings, models, health check.

Wire facts follow ``shared/specs/openai-and-ollama-api.md``: ``POST {base_url}/chat/completions``
(JSON, or SSE ending ``data: [DONE]``; with ``stream_options.include_usage`` a last chunk
with ``choices: []`` carries the usage), ``POST {base_url}/embeddings``,
``GET {base_url}/models``, errors ``{"error": {...}}``. Parameters keep their names
(``max_tokens`` may be sent as ``max_completion_tokens``, see
:class:`~orchestrator_openai.OpenAIConfig`).

Tools go out as ``tools`` / ``tool_choice`` / ``parallel_tool_calls``; the model's calls come
back with their arguments as JSON strings, decoded here (streamed ones reassembled from their
deltas by :class:`~orchestrator.tools.ToolCallAssembler`: a stream's caller sees whole calls on
the final chunk only). ``response_format`` goes out as ``json_schema`` (or ``json_object``);
the router validates the answer.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import time
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from orchestrator.boundary import json_loads
from orchestrator.capabilities import EmbeddingSpace
from orchestrator.errors import (
    ConfigurationError,
    InvalidRequestError,
    InvalidToolCallError,
    ModelNotFoundError,
    ProviderError,
    StreamError,
)
from orchestrator.providers.base import BaseProvider, map_transport_error
from orchestrator.sse import EventReader, release
from orchestrator.tools import ResponseFormat, ToolCallAssembler, new_call_id, parse_arguments
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
from orchestrator_openai.config import (
    DEFAULT_BASE_URL,
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_MODEL,
    EMBEDDING_DIMENSIONS,
    OpenAIConfig,
    known_dimension,
)
from orchestrator_openai.errors import api_error, request_id_of

if TYPE_CHECKING:
    import httpx

    from orchestrator.config import ProviderConfig

#: What a call without params sends: one read-only instance, not a pydantic model per call.
_DEFAULT_PARAMS = GenerationParams()

__all__ = ["OpenAIModel", "OpenAIProvider", "decode_embedding", "strict_compatible"]

USER_AGENT = "orchestrator-openai/0.1"
#: Put first when JSON mode (``response_format`` without a schema) is asked for and no message
#: mentions JSON: OpenAI answers 400 to JSON mode otherwise.
JSON_MODE_HINT = "Respond with a JSON object."

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "function_call",
}


@dataclass(frozen=True, slots=True)
class OpenAIModel:
    """One entry of ``GET /models``."""

    id: str
    owned_by: str | None = None
    created: int | None = None


def _finish_reason(raw: Any) -> FinishReason:
    return _FINISH.get(str(raw), "stop") if raw is not None else "stop"


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens_details")
    completion = raw.get("completion_tokens_details")
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        total_tokens=int(raw.get("total_tokens") or 0),
        cached_prompt_tokens=prompt.get("cached_tokens") if isinstance(prompt, dict) else None,
        reasoning_tokens=(
            completion.get("reasoning_tokens") if isinstance(completion, dict) else None
        ),
    )


def strict_compatible(schema: Any) -> bool:
    """Whether ``schema`` meets OpenAI's strict structured-output rules: every object lists
    its properties, all of them required, and ``additionalProperties: false``."""
    if isinstance(schema, list):
        return all(strict_compatible(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required") or ()) != set(properties):
            return False
    return all(
        strict_compatible(value)
        for key, value in schema.items()
        if key not in ("required", "enum", "const", "default", "examples")
    )


def decode_embedding(raw: Any) -> list[float]:
    """One vector as sent: a list of numbers, or base64 of packed little-endian float32."""
    if isinstance(raw, str):
        packed = base64.b64decode(raw, validate=True)
        if len(packed) % 4:
            raise ValueError(f"{len(packed)} bytes is not a whole number of float32 values")
        return list(struct.unpack(f"<{len(packed) // 4}f", packed))
    if isinstance(raw, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in raw
    ):
        return [float(x) for x in raw]
    raise ValueError(f"an embedding must be a list of numbers or a base64 string, not {raw!r:.60}")


def _wire_message(message: Message, ids_are_names: bool) -> dict[str, Any]:
    """One message in the chat-completions shape (tool calls with JSON-string arguments)."""
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.name if ids_are_names else message.tool_call_id,
            "content": message.content,
        }
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["content"] = message.content or None
        wire["tool_calls"] = [
            {
                "id": call.name if ids_are_names else call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for call in message.tool_calls
        ]
    return wire


def _unique_ids(calls: list[ToolCall]) -> tuple[ToolCall, ...]:
    """The calls with distinct ids: Yandex gives every call the function's name as its id,
    so two calls of one function would share it (the second becomes ``<id>_2``)."""
    seen: set[str] = set()
    unique = []
    for call in calls:
        call_id, n = call.id, 1
        while call_id in seen:
            n += 1
            call_id = f"{call.id}_{n}"
        seen.add(call_id)
        unique.append(call if call_id == call.id else ToolCall(call_id, call.name, call.arguments))
    return tuple(unique)


class OpenAIProvider(BaseProvider):
    """OpenAI or any OpenAI-compatible server (``name="openai"``).

    ``OpenAIProvider(ProviderConfig(name="openai", api_key=KEY))`` talks to OpenAI;
    ``base_url="http://localhost:8000/v1"`` to vLLM, llama.cpp, LM Studio, Ollama's ``/v1``;
    ``OpenAIConfig.yandex(folder_id, key)`` to Yandex's OpenAI-compatible endpoint.
    """

    config_class: ClassVar[type[ProviderConfig]] = OpenAIConfig
    supports_model_override: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = True
    supports_parallel_tool_calls: ClassVar[bool] = True
    supports_structured_output: ClassVar[bool] = True
    emulator: ClassVar[str | None] = "orchestrator_openai.emulator:OpenAIEmulator"
    config: OpenAIConfig

    @classmethod
    def config_from_env(cls, name: str) -> OpenAIConfig | None:
        """A config from the SDK's ``OPENAI_*`` variables, or None without
        ``OPENAI_API_KEY``."""
        if os.environ.get("OPENAI_API_KEY"):
            return OpenAIConfig.model_validate({"name": name})
        return None

    def __init__(
        self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(config, transport=transport)
        config = self.config
        if not config.base_url:
            config.base_url = DEFAULT_BASE_URL
        if not config.model:
            config.model = DEFAULT_MODEL
        if not config.api_key and config.base_url == DEFAULT_BASE_URL:
            raise ConfigurationError(
                f"OpenAI provider {config.name!r} has no API key: create one at "
                "https://platform.openai.com/api-keys and pass it as api_key or set "
                "OPENAI_API_KEY (a local OpenAI-compatible server needs only base_url)"
            )
        self._ssl_context = self.ssl_context(self.config.ca_bundle_file)
        self._headers = self._static_headers()

    # -- TLS, headers, the HTTP client -------------------------------------------------------

    def _static_headers(self) -> dict[str, str]:
        config = self.config
        headers = {"User-Agent": USER_AGENT, **config.extra_headers}
        if config.api_key:
            headers["Authorization"] = f"{config.auth_scheme} {config.api_key}"
        if config.organization:
            headers["OpenAI-Organization"] = config.organization
        if config.project:
            headers["OpenAI-Project"] = config.project
        return headers

    def _create_http_client(self) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(
            base_url=self.config.base_url or DEFAULT_BASE_URL,
            timeout=self.config.timeout,
            verify=self._ssl_context,
            transport=self._transport,
            follow_redirects=False,
            headers=self._headers,
        )

    # -- requests ------------------------------------------------------------------------------

    def _transport_error(self, exc: Exception, what: str) -> ProviderError:
        mapped = map_transport_error(exc, self.config.name)
        if mapped is None:
            raise exc
        mapped.message = f"{what}: {mapped.message}"
        return mapped

    async def _open(
        self, method: str, path: str, *, payload: Any = None, stream: bool = False
    ) -> httpx.Response:
        """Send one call and return its 2xx response (streamed: still open)."""
        client = self.http_client()
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        request = client.build_request(method, path, json=payload, headers=headers)
        try:
            response = await client.send(request, stream=stream)
        except Exception as exc:
            raise self._transport_error(exc, f"{method} {path} failed") from exc
        if response.is_success:
            return response
        try:
            await response.aread()
        except Exception as exc:
            raise self._transport_error(exc, "error body unreadable") from exc
        finally:
            await response.aclose()
        self.logger.debug(
            "%s: %s %s -> %d (request id %s)",
            self.config.name,
            method,
            path,
            response.status_code,
            request_id_of(response),
        )
        raise api_error(response, provider=self.config.name)

    async def _json(
        self, method: str, path: str, payload: Any = None
    ) -> tuple[Any, httpx.Response]:
        response = await self._open(method, path, payload=payload)
        try:
            return json_loads(response.content), response
        except ValueError:
            raise ProviderError(
                f"{method} {path} answered {response.status_code} with a body that is not "
                f"JSON: {response.text[:120]!r}; is base_url an OpenAI-compatible API (…/v1)?",
                provider=self.config.name,
                status_code=response.status_code,
                request_id=request_id_of(response),
                transient=True,
            ) from None

    def _payload(
        self, messages: Sequence[Message], params: GenerationParams | None, *, stream: bool
    ) -> dict[str, Any]:
        params = params or _DEFAULT_PARAMS
        self.validate_params(params)
        config = self.config
        ids_are_names = config.preset == "yandex"
        if ids_are_names or any(m.tool_calls or m.role == "tool" for m in messages):
            wire = [_wire_message(m, ids_are_names) for m in messages]
        else:
            wire = [{"role": m.role, "content": m.content} for m in messages]
        payload: dict[str, Any] = {
            "model": params.model or config.model,
            "messages": wire,
            "temperature": params.temperature,
            "top_p": params.top_p,
            config.max_tokens_param: params.max_tokens,
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        if params.tools:
            payload["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": dict(tool.parameters),
                    },
                }
                for tool in params.tools
            ]
            choice = params.tool_choice
            if choice in ("auto", "none", "required"):
                payload["tool_choice"] = choice
            elif choice is not None:
                payload["tool_choice"] = {"type": "function", "function": {"name": choice}}
            if params.parallel_tool_calls is not None:
                # OpenAI refuses parallel_tool_calls in a request without tools.
                payload["parallel_tool_calls"] = params.parallel_tool_calls
        if params.response_format is not None:
            payload["response_format"] = self._response_format(params.response_format)
            said = any("json" in m.content.lower() for m in messages)
            if payload["response_format"]["type"] == "json_object" and not said:
                # OpenAI refuses JSON mode unless the messages mention JSON.
                wire.insert(0, {"role": "system", "content": JSON_MODE_HINT})
        if stream:
            payload["stream"] = True
            if config.stream_usage:
                payload["stream_options"] = {"include_usage": True}
        return payload

    def _response_format(self, response_format: ResponseFormat) -> dict[str, Any]:
        schema = response_format.schema
        if schema is None:
            return {"type": "json_object"}
        strict = self.config.strict_schemas
        if strict is None:
            strict = strict_compatible(schema)
        return {
            "type": "json_schema",
            "json_schema": {"name": response_format.name, "schema": dict(schema), "strict": strict},
        }

    def validate_params(self, params: GenerationParams) -> None:
        """Besides the default checks, the Yandex preset refuses what Yandex's endpoint does
        not honour: ``tool_choice`` other than ``auto``/``none`` (its documented values) and
        ``parallel_tool_calls=False`` (it was seen returning two calls all the same)."""
        super().validate_params(params)
        if self.config.preset != "yandex":
            return
        if params.tool_choice not in (None, "auto", "none"):
            raise InvalidRequestError(
                f"Yandex's OpenAI-compatible API takes tool_choice 'auto' or 'none' only, got "
                f"{params.tool_choice!r}; leave tool_choice unset or use the native yandexgpt "
                "provider, which can force a tool",
                provider=self.config.name,
            )
        if params.parallel_tool_calls is False:
            raise InvalidRequestError(
                "Yandex's OpenAI-compatible API ignores parallel_tool_calls=false (it may "
                "still answer with several calls); leave parallel_tool_calls unset",
                provider=self.config.name,
            )

    def _tool_calls(self, raw: Any, request_id: str | None) -> tuple[ToolCall, ...]:
        """The calls of a non-streamed answer (arguments decoded, ids made unique)."""
        if not raw:
            return ()
        if not isinstance(raw, list):
            raise ProviderError(
                f"the answer's tool_calls is not a list: {json.dumps(raw)[:200]}",
                provider=self.config.name,
                request_id=request_id,
            )
        calls: list[ToolCall] = []
        for item in raw:
            function = item.get("function") if isinstance(item, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(function, dict) or not isinstance(name, str) or not name:
                raise InvalidToolCallError(
                    "the model answered with a tool call that names no function",
                    raw_text=json.dumps(item)[:2000],
                    provider=self.config.name,
                    request_id=request_id,
                )
            try:
                arguments = parse_arguments(function.get("arguments"), name)
            except InvalidToolCallError as exc:
                exc.provider, exc.request_id = self.config.name, request_id
                raise
            call_id = item.get("id")
            calls.append(
                ToolCall(
                    call_id if isinstance(call_id, str) and call_id else new_call_id(),
                    name,
                    arguments,
                )
            )
        return _unique_ids(calls)

    # -- the contract --------------------------------------------------------------------------

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        completion = await self.chat([Message("user", prompt)], params)
        return completion.text

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        """One chat completion, with usage, finish reason and the server's request id."""
        payload = self._payload(coerce_messages(messages), params, stream=False)

        async def once() -> tuple[Any, httpx.Response, float]:
            started = time.monotonic()
            data, response = await self._json("POST", "/chat/completions", payload)
            return data, response, time.monotonic() - started

        data, response, latency = await self._retry_with_backoff(once)
        request_id = request_id_of(response)
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (KeyError, IndexError, TypeError):
            raise ProviderError(
                f"the chat answer has no choices[0]: {json.dumps(data)[:200]}",
                provider=self.config.name,
                request_id=request_id,
            ) from None
        text = message.get("content") or ""
        raw_finish = choice.get("finish_reason")
        extra: dict[str, Any] = {
            "finish_reason": raw_finish,
            "id": data.get("id"),
            "model": data.get("model"),
        }
        for key in ("system_fingerprint", "service_tier"):
            if data.get(key) is not None:
                extra[key] = data[key]
        if message.get("refusal"):
            extra["refusal"] = message["refusal"]
        calls = self._tool_calls(message.get("tool_calls"), request_id)
        return Completion(
            text=str(text),
            provider=self.config.name,
            model=payload["model"],
            finish_reason="content_filter"
            if message.get("refusal")
            else "tool_calls"
            if calls
            else _finish_reason(raw_finish),
            usage=_usage(data.get("usage")),
            request_id=request_id,
            latency=latency,
            extra=extra,
            tool_calls=calls,
        )

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        """Stream the answer over SSE; the last chunk has the finish reason and usage.

        The final chunk is yielded only once ``data: [DONE]`` arrived: a stream that ends
        without it, breaks, or carries a malformed or error event raises :class:`StreamError`.
        """
        payload = self._payload(coerce_messages(messages), params, stream=True)

        async def start() -> httpx.Response:
            return await self._open("POST", "/chat/completions", payload=payload, stream=True)

        response = await self._retry_with_backoff(start)
        raw = response.aiter_bytes()
        try:
            events = self._events(response, EventReader(raw), payload["model"])
            async with aclosing(events) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            await release(response, raw)  # shielded, unless the body was read to its end

    async def _events(
        self, response: httpx.Response, reader: EventReader, model: str | None
    ) -> AsyncGenerator[Chunk, None]:
        import httpx

        request_id = request_id_of(response)
        name = self.config.name
        finish_reason: FinishReason | None = None
        usage: Usage | None = None
        held = ""  # text that arrived with or after the finish reason
        events = 0
        assembler = ToolCallAssembler()  # tool-call deltas, given out whole at the end

        def broken(message: str) -> StreamError:
            return StreamError(
                f"OpenAI-compatible stream {message} after {events} event(s)",
                provider=name,
                request_id=request_id,
            )

        content_type = response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream"):
            raise broken(f"is not an event stream (Content-Type {content_type!r})")
        while True:
            try:
                data = await reader.next_data()
            except httpx.TransportError as exc:
                mapped = map_transport_error(exc, name)
                detail = mapped.message if mapped is not None else str(exc)
                raise broken(f"broke ({detail})") from exc
            if data is None:
                raise broken("ended without data: [DONE] (truncated)")
            if data.startswith("[DONE]"):
                if finish_reason is None:
                    # [DONE] is the end marker: the answer is complete even if the server
                    # sent no finish_reason before it.
                    finish_reason = "stop"
                # Read to the end of the body so the connection goes back to the pool.
                with anyio.move_on_after(1.0):
                    while await reader.next_line() is not None:
                        pass
                calls: tuple[ToolCall, ...] = ()
                if assembler:
                    try:
                        calls = _unique_ids(list(assembler.calls()))
                    except InvalidToolCallError as exc:
                        exc.provider, exc.request_id = name, request_id
                        raise
                    finish_reason = "tool_calls"
                yield Chunk(
                    delta=held,
                    provider=name,
                    model=model,
                    finish_reason=finish_reason,
                    usage=usage,
                    request_id=request_id,
                    tool_calls=calls,
                )
                return
            events += 1
            try:
                event = json_loads(data)
            except ValueError:
                raise broken(f"carried a malformed event {data[:120]!r}") from None
            if not isinstance(event, dict):
                raise broken(f"carried a malformed event {data[:120]!r}")
            if event.get("error"):
                error = event["error"]
                message = error.get("message") if isinstance(error, dict) else error
                raise broken(f"reported an error: {message}")
            usage = _usage(event.get("usage")) or usage
            choices = event.get("choices")
            if not isinstance(choices, list):
                raise broken(f"carried an event without choices {data[:120]!r}")
            for choice in choices:
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                text = (delta.get("content") or "") if isinstance(delta, dict) else ""
                deltas = delta.get("tool_calls") if isinstance(delta, dict) else None
                if deltas:
                    if not isinstance(deltas, list) or not all(isinstance(d, dict) for d in deltas):
                        raise broken(f"carried malformed tool_calls {data[:120]!r}")
                    assembler.add(deltas)
                raw_finish = choice.get("finish_reason")
                if raw_finish is not None or finish_reason is not None:
                    # Held back until [DONE]: only then is the answer known to be complete.
                    held += text
                    if raw_finish is not None:
                        finish_reason = _finish_reason(raw_finish)
                elif text:
                    yield Chunk(delta=text, provider=name, model=model, request_id=request_id)

    # -- embeddings ----------------------------------------------------------------------------

    def _embedding_model(self, kind: EmbeddingKind = "document") -> str:
        config = self.config
        if kind == "query" and config.embedding_query_model:
            return config.embedding_query_model
        return config.embedding_model or DEFAULT_EMBEDDING_MODEL

    def _embedding_dimension(self) -> int:
        config = self.config
        if config.embedding_dimension is not None:
            return config.embedding_dimension
        # The config checked that a model without a known size has embedding_dimension.
        return (
            known_dimension(self._embedding_model())
            or EMBEDDING_DIMENSIONS[DEFAULT_EMBEDDING_MODEL]
        )

    def embedding_space(self) -> EmbeddingSpace | None:
        """None (no embeddings) on a server other than OpenAI's or Yandex's with no
        ``embedding_model`` configured: a chat-only vLLM must not claim a model it lacks.
        Otherwise the space of :meth:`embed`'s vectors: ``config.embedding_space`` when set, else
        ``openai/<model>`` on api.openai.com, ``yandexgpt/text-search`` for Yandex's
        ``text-search-doc``/``-query`` (the space of the native ``yandexgpt`` provider too:
        the same model), ``<host:port>/<model>`` on any other server; ``@<dimension>`` is
        added when the vectors are shortened below the model's own size."""
        config = self.config
        host = urllib.parse.urlsplit(config.base_url or DEFAULT_BASE_URL).netloc.lower()
        if (
            config.embedding_model is None
            and host != "api.openai.com"
            and config.preset != "yandex"
            and not host.endswith(".cloud.yandex.net")
        ):
            return None
        model = self._embedding_model()
        dimension = self._embedding_dimension()
        name = config.embedding_space
        if name is None:
            if model.startswith("emb://") and "/text-search-" in model:
                name = "yandexgpt/text-search"
            elif host == "api.openai.com":
                name = f"openai/{model}"
            elif config.preset == "yandex" or host.endswith(".cloud.yandex.net"):
                name = f"yandexgpt/{model.removeprefix('emb://').partition('/')[2] or model}"
            else:
                name = f"{host}/{model}"
            if dimension != known_dimension(model) and known_dimension(model) is not None:
                name = f"{name}@{dimension}"
        return EmbeddingSpace(name, model, dimension, config.embedding_max_batch)

    async def embed(self, texts: Sequence[str], *, kind: EmbeddingKind = "document") -> Embeddings:
        """Vectors for ``texts`` from ``POST /embeddings``, in order (at most
        ``embedding_max_batch`` texts). base64 answers are unpacked as little-endian float32;
        ``dimensions`` is sent when ``embedding_dimension`` shortens a text-embedding-3 model."""
        space = self.embedding_space()
        if space is None:
            raise ConfigurationError(
                f"{self.config.name}: set embedding_model (and embedding_dimension) to embed "
                "on this server; it is not OpenAI's, so its embedding model is not known"
            )
        model = self._embedding_model(kind)
        if not texts:
            return Embeddings([], self.config.name, model, space.dimension, space.name)
        payload: dict[str, Any] = {
            "model": model,
            "input": list(texts),
            "encoding_format": self.config.embedding_encoding,
        }
        native = known_dimension(model)
        if (
            native is not None
            and space.dimension != native
            and model.startswith("text-embedding-3")
        ):
            payload["dimensions"] = space.dimension

        async def once() -> tuple[Any, httpx.Response]:
            try:
                return await self._json("POST", "/embeddings", payload)
            except ModelNotFoundError as exc:
                exc.message = (
                    f"{exc.message} (embedding model {model!r}: set embedding_model and "
                    "embedding_dimension in the config to a model this server has)"
                )
                raise

        data, response = await self._retry_with_backoff(once)
        request_id = request_id_of(response)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(texts):
            raise ProviderError(
                f"the embeddings answer has {len(items) if isinstance(items, list) else 'no'} "
                f"vectors for {len(texts)} texts: {json.dumps(data)[:200]}",
                provider=self.config.name,
                request_id=request_id,
                transient=True,
            )
        try:
            ordered = sorted(items, key=lambda item: int(item.get("index", 0)))
            vectors = [decode_embedding(item.get("embedding")) for item in ordered]
        except (ValueError, TypeError, AttributeError) as exc:
            raise ProviderError(
                f"the embeddings answer is malformed ({exc}); is base_url an OpenAI-compatible "
                "API? A server without base64 support needs embedding_encoding='float'",
                provider=self.config.name,
                request_id=request_id,
                transient=True,
            ) from None
        usage = _usage(data.get("usage"))
        if usage is not None and not usage.total_tokens:
            usage = Usage(usage.prompt_tokens, 0, usage.prompt_tokens)
        return Embeddings(
            vectors,
            self.config.name,
            str(data.get("model") or model),
            space.dimension,
            space.name,
            usage,
        )

    # -- other endpoints -----------------------------------------------------------------------

    async def health_check(self) -> bool:
        """True if ``GET /models`` answers (free; never a completion). Never raises."""
        try:
            await self._open("GET", "/models")
        except Exception as exc:
            self.logger.warning("%s: health check failed: %s", self.config.name, exc)
            return False
        return True

    async def list_models(self) -> list[OpenAIModel]:
        """The models the server offers (``GET /models``)."""

        async def once() -> list[OpenAIModel]:
            data, _ = await self._json("GET", "/models")
            items = data.get("data", []) if isinstance(data, dict) else []
            return [
                OpenAIModel(str(m["id"]), m.get("owned_by"), m.get("created"))
                for m in items
                if isinstance(m, dict) and "id" in m
            ]

        return await self._retry_with_backoff(once)
