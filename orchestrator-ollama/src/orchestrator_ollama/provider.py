"""The Ollama provider: ``/api/chat`` plain and NDJSON-streamed with tools and ``format``,
``/api/embed``, ``/api/tags``, health check.

Wire facts follow ``shared/specs/openai-and-ollama-api.md``. ``GenerationParams`` go into
``options``: ``temperature``, ``top_p``, ``num_predict`` (``max_tokens``), ``stop``; the config
adds ``seed``, ``num_ctx`` and ``keep_alive``. Usage comes from ``prompt_eval_count`` and
``eval_count``, the finish reason from ``done_reason``; durations (nanoseconds) are kept in
``Completion.extra``.

Tools go out as ``tools``; the model's calls come back in ``message.tool_calls`` with their
arguments as objects (a stream carries them whole on a ``done: false`` line: they are held and
given out on the final chunk). Results go back as ``tool`` messages with ``tool_name``.
Ollama has no ``tool_choice``: ``none`` sends no tools, and a request that must force a call
(``required`` or a tool's name) is refused before any call. ``response_format`` goes out as
``format`` (the JSON Schema, or ``"json"``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from orchestrator.boundary import json_loads
from orchestrator.capabilities import EmbeddingSpace
from orchestrator.errors import (
    InvalidRequestError,
    InvalidToolCallError,
    ModelNotFoundError,
    ProviderError,
    StreamError,
)
from orchestrator.providers.base import BaseProvider, map_transport_error
from orchestrator.sse import release
from orchestrator.tools import new_call_id, parse_arguments
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
from orchestrator_ollama.config import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    OllamaConfig,
    known_dimension,
)
from orchestrator_ollama.errors import api_error, pull_hint
from orchestrator_ollama.lines import LineReader

if TYPE_CHECKING:
    import httpx

    from orchestrator.config import ProviderConfig

#: What a call without params sends: one read-only instance, not a pydantic model per call.
_DEFAULT_PARAMS = GenerationParams()

__all__ = ["OllamaModel", "OllamaProvider"]

USER_AGENT = "orchestrator-ollama/0.1"
_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
_DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


@dataclass(frozen=True, slots=True)
class OllamaModel:
    """One entry of ``GET /api/tags`` (a model pulled onto the server)."""

    name: str
    size: int | None = None
    digest: str | None = None
    modified_at: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _finish_reason(raw: Any) -> FinishReason:
    return _FINISH.get(str(raw), "stop")


def _usage(data: dict[str, Any]) -> Usage | None:
    prompt, completion = data.get("prompt_eval_count"), data.get("eval_count")
    if prompt is None and completion is None:
        return None
    prompt, completion = int(prompt or 0), int(completion or 0)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _extra(data: dict[str, Any]) -> dict[str, Any]:
    extra = {"done_reason": data.get("done_reason"), "created_at": data.get("created_at")}
    extra.update({key: data[key] for key in _DURATIONS if key in data})
    return extra


def _wire_message(message: Message) -> dict[str, Any]:
    """One message in Ollama's shape: tool calls with object arguments, results with
    ``tool_name``."""
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.id,
                "function": {"index": index, "name": call.name, "arguments": dict(call.arguments)},
            }
            for index, call in enumerate(message.tool_calls)
        ]
    if message.role == "tool":
        wire["tool_name"] = message.name
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _tool_calls(raw: Any, provider: str) -> list[ToolCall]:
    """``message.tool_calls`` of one answer line as ToolCalls (arguments decoded)."""
    if not raw:
        return []
    if not isinstance(raw, list):
        raise ProviderError(
            f"Ollama's tool_calls is not a list: {json.dumps(raw)[:200]}", provider=provider
        )
    calls = []
    for item in raw:
        function = item.get("function") if isinstance(item, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(function, dict) or not isinstance(name, str) or not name:
            raise InvalidToolCallError(
                "the model answered with a tool call that names no function",
                raw_text=json.dumps(item)[:2000],
                provider=provider,
            )
        try:
            arguments = parse_arguments(function.get("arguments"), name)
        except InvalidToolCallError as exc:
            exc.provider = provider
            raise
        call_id = item.get("id")
        calls.append(
            ToolCall(
                call_id if isinstance(call_id, str) and call_id else new_call_id(), name, arguments
            )
        )
    return calls


def _unique(calls: list[ToolCall]) -> tuple[ToolCall, ...]:
    seen: set[str] = set()
    unique = []
    for call in calls:
        if call.id in seen:
            call = ToolCall(new_call_id(), call.name, call.arguments)
        seen.add(call.id)
        unique.append(call)
    return tuple(unique)


class OllamaProvider(BaseProvider):
    """Ollama's native API (``name="ollama"``), local or ollama.com.

    ``OllamaProvider(OllamaConfig(model="llama3.2"))`` talks to ``http://127.0.0.1:11434``
    (or ``OLLAMA_HOST``).
    """

    config_class: ClassVar[type[ProviderConfig]] = OllamaConfig
    supports_model_override: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = True
    supports_parallel_tool_calls: ClassVar[bool] = True
    supports_structured_output: ClassVar[bool] = True
    emulator: ClassVar[str | None] = "orchestrator_ollama.emulator:OllamaEmulator"
    config: OllamaConfig

    @classmethod
    def config_from_env(cls, name: str) -> OllamaConfig | None:
        """A config when ``OLLAMA_HOST`` or ``OLLAMA_API_KEY`` is set (Ollama needs no
        credentials, so only an explicit host says the environment means to use it)."""
        if os.environ.get("OLLAMA_HOST") or os.environ.get("OLLAMA_API_KEY"):
            return OllamaConfig.model_validate({"name": name})
        return None

    def __init__(
        self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(config, transport=transport)
        if not self.config.base_url:
            self.config.base_url = DEFAULT_BASE_URL
        if not self.config.model:
            self.config.model = DEFAULT_MODEL
        self._ssl_context = self.ssl_context(self.config.ca_bundle_file)

    # -- TLS and the HTTP client ---------------------------------------------------------------

    def _create_http_client(self) -> httpx.AsyncClient:
        import httpx

        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return httpx.AsyncClient(
            base_url=self.config.base_url or DEFAULT_BASE_URL,
            timeout=self.config.timeout,
            verify=self._ssl_context,
            transport=self._transport,
            follow_redirects=False,
            headers=headers,
        )

    # -- requests ------------------------------------------------------------------------------

    async def _open(
        self, method: str, path: str, *, payload: Any = None, stream: bool = False
    ) -> httpx.Response:
        """Send one call and return its 2xx response (streamed: still open)."""
        client = self.http_client()
        request = client.build_request(method, path, json=payload)
        try:
            response = await client.send(request, stream=stream)
        except Exception as exc:
            mapped = map_transport_error(exc, self.config.name)
            if mapped is None:
                raise
            mapped.message = (
                f"Ollama {method} {path} failed: {mapped.message}; is `ollama serve` running "
                f"at {self.config.base_url}?"
            )
            raise mapped from exc
        if response.is_success:
            return response
        try:
            await response.aread()
        except Exception as exc:
            mapped = map_transport_error(exc, self.config.name)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            await response.aclose()
        self.logger.debug("%s: %s %s -> %d", self.config.name, method, path, response.status_code)
        raise api_error(response, provider=self.config.name)

    async def _json(self, method: str, path: str, payload: Any = None) -> Any:
        response = await self._open(method, path, payload=payload)
        try:
            return json_loads(response.content)
        except ValueError:
            raise ProviderError(
                f"Ollama {method} {path} answered {response.status_code} with a body that is "
                f"not JSON: {response.text[:120]!r}; is base_url an Ollama server?",
                provider=self.config.name,
                status_code=response.status_code,
                transient=True,
            ) from None

    def _payload(
        self, messages: Sequence[Message], params: GenerationParams | None, *, stream: bool
    ) -> dict[str, Any]:
        params = params or _DEFAULT_PARAMS
        self.validate_params(params)
        config = self.config
        options: dict[str, Any] = {
            "temperature": params.temperature,
            "top_p": params.top_p,
            "num_predict": params.max_tokens,
        }
        if params.stop:
            options["stop"] = list(params.stop)
        if config.seed is not None:
            options["seed"] = config.seed
        if config.num_ctx is not None:
            options["num_ctx"] = config.num_ctx
        if any(m.tool_calls or m.role == "tool" for m in messages):
            wire = [_wire_message(m) for m in messages]
        else:
            wire = [{"role": m.role, "content": m.content} for m in messages]
        payload: dict[str, Any] = {
            "model": params.model or config.model,
            "messages": wire,
            "stream": stream,  # Ollama streams unless told otherwise
            "options": options,
        }
        if params.tools and params.tool_choice != "none":
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
        if params.response_format is not None:
            schema = params.response_format.schema
            payload["format"] = "json" if schema is None else dict(schema)
        if config.keep_alive is not None:
            payload["keep_alive"] = config.keep_alive
        return payload

    def validate_params(self, params: GenerationParams) -> None:
        """Besides the default checks: Ollama cannot force a tool call (it has no
        ``tool_choice``) nor keep a model to one call (``parallel_tool_calls=False``)."""
        super().validate_params(params)
        if params.tool_choice not in (None, "auto", "none"):
            raise InvalidRequestError(
                f"Ollama has no tool_choice: it cannot force a tool call "
                f"(tool_choice={params.tool_choice!r}); use 'auto' and let the model choose",
                provider=self.config.name,
            )
        if params.parallel_tool_calls is False:
            raise InvalidRequestError(
                "Ollama cannot keep a model to one tool call per answer "
                "(parallel_tool_calls=False); leave parallel_tool_calls unset",
                provider=self.config.name,
            )

    def _not_json(self, what: str, data: Any) -> ProviderError:
        return ProviderError(
            f"Ollama's {what} has no message: {json.dumps(data)[:200]}",
            provider=self.config.name,
        )

    # -- the contract --------------------------------------------------------------------------

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        completion = await self.chat([Message("user", prompt)], params)
        return completion.text

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        """One answer (``stream: false``), with usage, finish reason and durations."""
        payload = self._payload(coerce_messages(messages), params, stream=False)

        async def once() -> tuple[Any, float]:
            started = time.monotonic()
            data = await self._json("POST", "/api/chat", payload)
            return data, time.monotonic() - started

        data, latency = await self._retry_with_backoff(once)
        message = data.get("message") if isinstance(data, dict) else None
        if not isinstance(message, dict):
            raise self._not_json("chat answer", data)
        calls = _unique(_tool_calls(message.get("tool_calls"), self.config.name))
        return Completion(
            text=str(message.get("content") or ""),
            provider=self.config.name,
            model=payload["model"],
            # Ollama says done_reason "stop" after tool calls too.
            finish_reason="tool_calls" if calls else _finish_reason(data.get("done_reason")),
            usage=_usage(data),
            latency=latency,
            extra=_extra(data),
            tool_calls=calls,
        )

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        """Stream the answer (NDJSON); the last chunk has the finish reason and usage.

        A stream that ends without its ``"done": true`` line, breaks, carries a line that is
        not JSON or an ``{"error": ...}`` line raises :class:`StreamError`.
        """
        payload = self._payload(coerce_messages(messages), params, stream=True)

        async def start() -> httpx.Response:
            return await self._open("POST", "/api/chat", payload=payload, stream=True)

        response = await self._retry_with_backoff(start)
        raw = response.aiter_bytes()
        try:
            async with aclosing(self._lines(LineReader(raw), payload["model"])) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            await release(response, raw)  # shielded, unless the body was read to its end

    async def _lines(self, reader: LineReader, model: str | None) -> AsyncGenerator[Chunk, None]:
        import httpx

        name = self.config.name
        lines = 0
        calls: list[ToolCall] = []  # whole calls, given out on the final chunk

        def broken(message: str) -> StreamError:
            return StreamError(f"Ollama stream {message} after {lines} line(s)", provider=name)

        while True:
            try:
                line = await reader.next_line()
            except httpx.TransportError as exc:
                mapped = map_transport_error(exc, name)
                detail = mapped.message if mapped is not None else str(exc)
                raise broken(f"broke ({detail})") from exc
            if line is None:
                raise broken('ended without its "done": true line (truncated)')
            lines += 1
            try:
                data = json_loads(line)
            except ValueError:
                raise broken(f"carried a line that is not JSON {line[:120]!r}") from None
            if not isinstance(data, dict):
                raise broken(f"carried a line that is not an object {line[:120]!r}")
            if data.get("error"):
                error = str(data["error"])
                if "not found" in error and "model" in error:
                    raise ModelNotFoundError(
                        f"Ollama: {error} ({pull_hint(str(model))})", provider=name
                    )
                raise broken(f"reported an error: {error}")
            message = data.get("message")
            text = str(message.get("content") or "") if isinstance(message, dict) else ""
            if isinstance(message, dict) and message.get("tool_calls"):
                calls.extend(_tool_calls(message["tool_calls"], name))
            if data.get("done"):
                # Read to the end of the body so the connection goes back to the pool.
                with anyio.move_on_after(1.0):
                    while await reader.next_line() is not None:
                        pass
                yield Chunk(
                    delta=text,
                    provider=name,
                    model=model,
                    finish_reason="tool_calls"
                    if calls
                    else _finish_reason(data.get("done_reason")),
                    usage=_usage(data),
                    tool_calls=_unique(calls),
                )
                return
            if text:
                yield Chunk(delta=text, provider=name, model=model)

    # -- embeddings ----------------------------------------------------------------------------

    def embedding_space(self) -> EmbeddingSpace:
        """``ollama/<model:tag>`` (the same model on two Ollama servers is one space), or
        ``config.embedding_space``; ``@<dimension>`` when vectors are shortened."""
        config = self.config
        model = config.embedding_model
        tagged = model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"
        native = known_dimension(model)
        dimension = config.embedding_dimension or native or 1
        name = config.embedding_space or f"ollama/{tagged}"
        if config.embedding_space is None and native is not None and dimension != native:
            name = f"{name}@{dimension}"
        return EmbeddingSpace(name, model, dimension, config.embedding_max_batch)

    async def embed(self, texts: Sequence[str], *, kind: EmbeddingKind = "document") -> Embeddings:
        """Vectors for ``texts`` from ``POST /api/embed`` (one request, ``input`` a list), in
        order. ``kind`` makes no difference: Ollama's models embed queries and documents
        alike."""
        space = self.embedding_space()
        model = self.config.embedding_model
        if not texts:
            return Embeddings([], self.config.name, model, space.dimension, space.name)
        payload: dict[str, Any] = {"model": model, "input": list(texts)}
        native = known_dimension(model)
        if native is not None and space.dimension != native:
            payload["dimensions"] = space.dimension
        if self.config.keep_alive is not None:
            payload["keep_alive"] = self.config.keep_alive

        async def once() -> Any:
            try:
                return await self._json("POST", "/api/embed", payload)
            except ModelNotFoundError as exc:
                exc.message = f"{exc.message} (embedding_model {model!r})"
                raise

        data = await self._retry_with_backoff(once)
        vectors = data.get("embeddings") if isinstance(data, dict) else None
        if (
            not isinstance(vectors, list)
            or len(vectors) != len(texts)
            or not all(
                isinstance(v, list)
                and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
                for v in vectors
            )
        ):
            raise ProviderError(
                f"Ollama's /api/embed answer has no list of {len(texts)} vectors: "
                f"{json.dumps(data)[:200]}",
                provider=self.config.name,
                transient=True,
            )
        tokens = data.get("prompt_eval_count")
        usage = Usage(int(tokens), 0, int(tokens)) if isinstance(tokens, int) else None
        return Embeddings(
            [[float(x) for x in v] for v in vectors],
            self.config.name,
            str(data.get("model") or model),
            space.dimension,
            space.name,
            usage,
        )

    # -- other endpoints -----------------------------------------------------------------------

    async def health_check(self) -> bool:
        """True if ``GET /api/tags`` answers (free; loads no model). Never raises."""
        try:
            await self._open("GET", "/api/tags")
        except Exception as exc:
            self.logger.warning("%s: health check failed: %s", self.config.name, exc)
            return False
        return True

    async def list_models(self) -> list[OllamaModel]:
        """The models pulled onto the server (``GET /api/tags``)."""

        async def once() -> list[OllamaModel]:
            data = await self._json("GET", "/api/tags")
            items = data.get("models", []) if isinstance(data, dict) else []
            return [
                OllamaModel(
                    str(m.get("name") or m["model"]),
                    m.get("size"),
                    m.get("digest"),
                    m.get("modified_at"),
                    dict(m.get("details") or {}),
                )
                for m in items
                if isinstance(m, dict) and (m.get("name") or m.get("model"))
            ]

        return await self._retry_with_backoff(once)
