"""The OpenAI-compatible provider: chat, SSE streaming with usage, models, health check.

Wire facts follow ``shared/specs/openai-and-ollama-api.md``: ``POST {base_url}/chat/completions``
(JSON, or SSE ending ``data: [DONE]``; with ``stream_options.include_usage`` a last chunk
with ``choices: []`` carries the usage), ``GET {base_url}/models``, errors
``{"error": {...}}``. Parameters keep their names (``max_tokens`` may be sent as
``max_completion_tokens``, see :class:`~orchestrator_openai.OpenAIConfig`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from orchestrator.errors import ConfigurationError, ProviderError, StreamError
from orchestrator.providers.base import BaseProvider, map_transport_error
from orchestrator.types import (
    Chunk,
    Completion,
    FinishReason,
    GenerationParams,
    Message,
    Usage,
    coerce_messages,
)
from orchestrator_openai.config import DEFAULT_BASE_URL, DEFAULT_MODEL, OpenAIConfig
from orchestrator_openai.errors import api_error, request_id_of
from orchestrator_openai.lines import EventReader, finish

if TYPE_CHECKING:
    import httpx

    from orchestrator.config import ProviderConfig

__all__ = ["OpenAIModel", "OpenAIProvider"]

USER_AGENT = "orchestrator-openai/0.1"

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


class OpenAIProvider(BaseProvider):
    """OpenAI or any OpenAI-compatible server (``name="openai"``).

    ``OpenAIProvider(ProviderConfig(name="openai", api_key=KEY))`` talks to OpenAI;
    ``base_url="http://localhost:8000/v1"`` to vLLM, llama.cpp, LM Studio, Ollama's ``/v1``;
    ``OpenAIConfig.yandex(folder_id, key)`` to Yandex's OpenAI-compatible endpoint.
    """

    config_class: ClassVar[type[ProviderConfig]] = OpenAIConfig
    supports_model_override: ClassVar[bool] = True
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
            return response.json(), response
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
        params = params or GenerationParams()
        self.validate_params(params)
        config = self.config
        payload: dict[str, Any] = {
            "model": params.model or config.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": params.temperature,
            "top_p": params.top_p,
            config.max_tokens_param: params.max_tokens,
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        if stream:
            payload["stream"] = True
            if config.stream_usage:
                payload["stream_options"] = {"include_usage": True}
        return payload

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
        return Completion(
            text=str(text),
            provider=self.config.name,
            model=payload["model"],
            finish_reason="content_filter"
            if message.get("refusal")
            else _finish_reason(raw_finish),
            usage=_usage(data.get("usage")),
            request_id=request_id,
            latency=latency,
            extra=extra,
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
            # Shielded: a cancelled or abandoned stream must still release the connection.
            with anyio.CancelScope(shield=True):
                await response.aclose()
                await finish(raw)

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
                yield Chunk(
                    delta=held,
                    provider=name,
                    model=model,
                    finish_reason=finish_reason,
                    usage=usage,
                    request_id=request_id,
                )
                return
            events += 1
            try:
                event = json.loads(data)
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
                raw_finish = choice.get("finish_reason")
                if raw_finish is not None or finish_reason is not None:
                    # Held back until [DONE]: only then is the answer known to be complete.
                    held += text
                    if raw_finish is not None:
                        finish_reason = _finish_reason(raw_finish)
                elif text:
                    yield Chunk(delta=text, provider=name, model=model, request_id=request_id)

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
