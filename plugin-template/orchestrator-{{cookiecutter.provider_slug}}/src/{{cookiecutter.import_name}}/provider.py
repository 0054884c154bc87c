"""The {{ cookiecutter.provider_name }} provider for the Multi-LLM Orchestrator.

It speaks an OpenAI-compatible chat API: ``POST {base_url}/chat/completions`` (JSON, or
server-sent events when streaming) and ``GET {base_url}/models`` for health checks. If your
API differs, change ``_payload`` (the request), ``_completion``/``_event`` (the answer's
shape) and ``_error_fields``/``_error`` (the failures); the contract tests in
``tests/test_contract.py`` tell you when something is off.

Statuses, ``Retry-After`` and ``httpx`` exceptions are mapped by the core
(``orchestrator.boundary``), server-sent events are read by the core (``orchestrator.sse``);
this file adds only the vendor's hints (``_HINTS``), error codes and body shapes. Any body
the API (or a proxy) sends ends as a ``Completion``/``Chunk`` or a typed
``ProviderError``/``StreamError``, never an ``AttributeError``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import anyio
import httpx
from orchestrator.boundary import (
    body_excerpt,
    error_for_status,
    json_loads,
    mapped_transport_errors,
    token_count,
)
from orchestrator.capabilities import required_capabilities
from orchestrator.config import ProviderConfig
from orchestrator.errors import (
    AuthenticationError,
    ContextLengthError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderError,
    QuotaExceededError,
    StreamError,
)
from orchestrator.providers.base import BaseProvider
from orchestrator.sse import EventReader, release
from orchestrator.types import Chunk, Completion, FinishReason, GenerationParams, Message, Usage

__all__ = ["{{ cookiecutter.class_name }}"]

#: How the vendor is named in error messages.
VENDOR = "{{ cookiecutter.provider_name }}"
#: The environment variables ``Router.from_env()`` builds a config from (``config_from_env``).
API_KEY_ENV = "{{ cookiecutter.provider_slug.upper().replace('-', '_') }}_API_KEY"
BASE_URL_ENV = "{{ cookiecutter.provider_slug.upper().replace('-', '_') }}_BASE_URL"

#: How to fix each error class, in this vendor's terms (the core's table picks the class from
#: the status: 401 AuthenticationError, 429 RateLimitError with retry_after, 5xx transient...).
_HINTS: dict[type[ProviderError], str] = {
    AuthenticationError: "check ProviderConfig.api_key",
    ModelNotFoundError: "check ProviderConfig.model and base_url",
    QuotaExceededError: "top up the account",
}
#: Error ``code`` values (OpenAI's) that say more than the status: a 429 with
#: ``insufficient_quota`` is an empty account, not a rate limit, and waiting will not help.
_CODE_ERRORS: dict[str, type[ProviderError]] = {
    "context_length_exceeded": ContextLengthError,
    "insufficient_quota": QuotaExceededError,
    "model_not_found": ModelNotFoundError,
}
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "function_call",
}


def _usage(data: Any) -> Usage | None:
    """Token counts as the vendor reported them; None when absent or garbled ("n/a")."""
    if not isinstance(data, dict):
        return None
    counts = [0 if data.get(key) is None else token_count(data[key]) for key in _USAGE_KEYS]
    prompt, completion, total = counts
    if prompt is None or completion is None or total is None:
        return None
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def _finish_reason(raw: Any) -> FinishReason:
    return _FINISH_REASONS.get(raw, "stop") if isinstance(raw, str) else "stop"


def _completion(data: Any) -> tuple[str, Any, Any, Any] | None:
    """(text, finish reason, usage, model) of a chat answer, or None for another shape."""
    try:
        choice = data["choices"][0]
        content = choice["message"].get("content")
        answer = (content or "", choice.get("finish_reason"), data.get("usage"), data.get("model"))
    except (LookupError, TypeError, AttributeError):
        return None
    return answer if isinstance(content, str | None) else None


def _event(event: Any) -> tuple[list[str], Any, Any] | None:
    """(texts, finish reason, usage) of one stream event, or None for another shape."""
    if not isinstance(event, dict) or not isinstance(event.get("choices"), list | None):
        return None
    texts: list[str] = []
    finish: Any = None
    for choice in event.get("choices") or []:
        if not isinstance(choice, dict) or not isinstance(choice.get("delta"), dict | None):
            return None
        text = (choice.get("delta") or {}).get("content")
        if not isinstance(text, str | None):
            return None
        texts.append(text or "")
        finish = choice.get("finish_reason") or finish
    return texts, finish, event.get("usage")


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None]:
    """(message, code) of an error body: OpenAI's ``{"error": {"message", "code"}}``, or
    ``{"error": "..."}``, ``{"message": ...}`` or ``{"detail": "..."}`` as other servers and
    proxies send them; None for what is not there (the raw body is quoted instead)."""
    try:
        data = json_loads(response.content)
    except (ValueError, RecursionError):
        return None, None
    error = data.get("error", data) if isinstance(data, dict) else None
    if isinstance(error, str):
        return error or None, None
    if not isinstance(error, dict):
        return None, None
    message = error.get("message") or error.get("detail")
    code = error.get("code")
    return (
        message if isinstance(message, str) and message else None,
        code if isinstance(code, str) else None,
    )


def _transient(status: int, headers: Mapping[str, str]) -> bool | None:
    """Whether retrying can help, where the OpenAI SDK's rules differ from the core's table:
    ``x-should-retry: true|false`` (OpenAI's header; the SDK obeys it over the status) and
    409 (a lock held by a concurrent request: retried). None: the error class decides (408,
    429 and 5xx are transient)."""
    verdict = headers.get("x-should-retry")
    if verdict in ("true", "false"):
        return verdict == "true"
    return True if status == 409 else None


class {{ cookiecutter.class_name }}(BaseProvider):
    """Chat models of the vendor named in ``VENDOR``, over its OpenAI-compatible API."""

    DEFAULT_BASE_URL: str = "{{ cookiecutter.default_base_url }}"
    DEFAULT_MODEL: str = "{{ cookiecutter.default_model }}"

    # Capabilities beyond plain chat and streaming, all off: the router sends this provider
    # no request that needs one, and ``validate_params`` refuses one made directly (this
    # ``_payload`` would drop it). Each one you switch on must be on the wire (``_payload``)
    # and in the answer (``_completion``, ``_event``), and adds the contract kit's standard
    # test of it to your test suite: tools (``params.tools``/``tool_choice``, ``tool``
    # messages -> ``Completion.tool_calls``; whole calls, never fragments, on stream chunks),
    # several tool calls in one answer, and ``params.response_format`` (the router parses
    # and validates the answer). Embeddings: override ``embed()`` and ``embedding_space()``.
    supports_tools = False
    supports_parallel_tool_calls = False
    supports_structured_output = False

    def __init__(
        self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(config, transport=transport)  # tests may inject a transport
        # One TLS context for every per-loop client, built once: certifi's roots (a warning
        # when config.verify_ssl is False). Add ssl_context(ca_bundle_file=...) for a private CA.
        self._ssl = self.ssl_context()

    @classmethod
    def config_from_env(cls, name: str) -> ProviderConfig | None:
        """A config from ``API_KEY_ENV`` (and ``BASE_URL_ENV``), for ``Router.from_env()``;
        None when the key is not set."""
        api_key = os.environ.get(API_KEY_ENV)
        if not api_key:
            return None
        base_url = os.environ.get(BASE_URL_ENV) or None
        return ProviderConfig(name=name, api_key=api_key, base_url=base_url)

    # -- HTTP -----------------------------------------------------------------------------

    def _create_http_client(self) -> httpx.AsyncClient:
        # BaseProvider calls this once per running event loop and reuses the client for
        # every call on that loop (self.http_client()). A client created in __init__ would be
        # bound to the first loop that used it and fail with "Event loop is closed" when an
        # application calls asyncio.run() per request; this one is created lazily instead.
        headers = {"Accept": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return httpx.AsyncClient(
            base_url=self.config.base_url or self.DEFAULT_BASE_URL,
            headers=headers,
            timeout=self.config.timeout,
            verify=self._ssl,
            transport=self._transport,
            follow_redirects=False,
        )

    def _error(self, response: httpx.Response) -> ProviderError:
        """The typed error for a failed response (the body is already read)."""
        status = response.status_code
        message, code = _error_fields(response)
        return error_for_status(  # the core's status table, Retry-After and redaction
            status,
            f"{VENDOR} API returned HTTP {status}",
            provider=self.config.name,
            request_id=response.headers.get("x-request-id"),
            headers=response.headers,
            body=message or response.text or response.reason_phrase,
            error_class=_CODE_ERRORS.get(code or "") if status < 500 else None,
            hints=_HINTS,
            transient=_transient(status, response.headers),
        )

    def validate_params(self, params: GenerationParams) -> None:
        """The default checks, and no tools or ``response_format`` while their switch above
        is off: dropped from the request, they would be answered as plain chat."""
        super().validate_params(params)
        capabilities = self.capabilities()
        for need in required_capabilities((), params):
            if not capabilities.has(need):
                raise InvalidRequestError(
                    f"{type(self).__name__} does not support {need.replace('_', ' ')} "
                    f"(supports_{need} is off); drop it from the params, or route the "
                    "request through a Router with a provider that supports it",
                    provider=self.config.name,
                )

    def _payload(
        self, messages: Sequence[Message], params: GenerationParams | None, *, stream: bool
    ) -> dict[str, Any]:
        if not self.config.api_key:
            raise AuthenticationError(
                "No API key: set ProviderConfig(api_key=...)", provider=self.config.name
            )
        payload: dict[str, Any] = {
            "model": self.config.model or self.DEFAULT_MODEL,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": stream,
        }
        if stream:
            # Usage then comes in one more event, with "choices": [], before [DONE]. A
            # server that refuses unknown fields with a 400 needs this line removed.
            payload["stream_options"] = {"include_usage": True}
        if params is not None:
            self.validate_params(params)  # the router checks too; a direct call must as well
            payload["temperature"] = params.temperature
            payload["max_tokens"] = params.max_tokens
            payload["top_p"] = params.top_p
            if params.stop:
                payload["stop"] = params.stop
        return payload

    # -- the contract -------------------------------------------------------------------

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        """Answer a single prompt."""
        completion = await self.chat([Message("user", prompt)], params)
        return completion.text

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        """Answer a conversation; transient failures are retried with backoff."""
        payload = self._payload(messages, params, stream=False)

        async def call() -> Completion:
            response = await self.http_client().post("/chat/completions", json=payload)
            if response.status_code != 200:
                raise self._error(response)
            request_id = response.headers.get("x-request-id")
            try:
                answer = _completion(json_loads(response.content))
            except (ValueError, RecursionError):
                answer = None
            if answer is None:
                raise ProviderError(
                    f"{VENDOR} API sent an answer without choices[0].message.content: "
                    f"{body_excerpt(response.text)!r}; is base_url an OpenAI-compatible API?",
                    provider=self.config.name,
                    status_code=response.status_code,
                    request_id=request_id,
                )
            text, finish, usage, model = answer
            return Completion(
                text=text,
                provider=self.config.name,
                model=model if isinstance(model, str) and model else payload["model"],
                finish_reason=_finish_reason(finish),
                usage=_usage(usage),
                request_id=request_id,
            )

        return await self._retry_with_backoff(call)

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        """Stream an answer (server-sent events); the last chunk carries the finish reason."""
        payload = self._payload(messages, params, stream=True)
        client = self.http_client()

        async def open_stream() -> httpx.Response:
            request = client.build_request("POST", "/chat/completions", json=payload)
            response = await client.send(request, stream=True)
            if response.status_code != 200:
                await response.aread()
                await response.aclose()
                raise self._error(response)
            return response

        # Retries happen only before the first chunk: after that, text reached the caller.
        response = await self._retry_with_backoff(open_stream)
        request_id = response.headers.get("x-request-id")
        finish: Any = None
        usage: Usage | None = None
        # The core's SSE reader, not httpx's aiter_lines(): that one also splits lines at
        # U+2028, U+0085 and other Unicode line breaks, which servers send raw inside JSON.
        raw = response.aiter_bytes()
        reader = EventReader(raw)
        try:
            content_type = response.headers.get("content-type", "")
            if not content_type.startswith("text/event-stream"):
                raise StreamError(
                    f"{VENDOR} API answered a stream request with {content_type or 'no'} "
                    "content, not server-sent events; is base_url an OpenAI-compatible API?",
                    provider=self.config.name,
                    request_id=request_id,
                )
            # httpx exceptions while reading become typed errors (the core's map).
            with mapped_transport_errors(self.config.name, what=f"{VENDOR} stream broke"):
                while (data := await reader.next_data()) is not None:
                    if data.strip() == "[DONE]":
                        # Read the rest of the body (normally nothing), so the connection
                        # goes back to the pool instead of being closed.
                        with anyio.move_on_after(1.0), contextlib.suppress(httpx.HTTPError):
                            while await reader.next_line() is not None:
                                pass
                        yield Chunk(
                            delta="",
                            provider=self.config.name,
                            model=payload["model"],
                            finish_reason=_finish_reason(finish),
                            usage=usage,
                            request_id=request_id,
                        )
                        return
                    try:
                        event = json_loads(data)
                    except (ValueError, RecursionError):
                        event = None
                    if isinstance(event, dict) and event.get("error"):
                        error = event["error"]
                        detail = error.get("message") if isinstance(error, dict) else None
                        raise StreamError(
                            f"{VENDOR} stream failed: {body_excerpt(str(detail or error))}",
                            provider=self.config.name,
                            request_id=request_id,
                        )
                    fields = _event(event)
                    if fields is None:
                        raise StreamError(
                            f"{VENDOR} stream sent a malformed event: {body_excerpt(data)!r}",
                            provider=self.config.name,
                            request_id=request_id,
                        )
                    texts, reason, event_usage = fields
                    finish = reason or finish
                    usage = _usage(event_usage) or usage
                    for text in texts:
                        if text:
                            yield Chunk(
                                delta=text,
                                provider=self.config.name,
                                model=payload["model"],
                                request_id=request_id,
                            )
        finally:
            # Closes the response and runs httpx's generators to their end (trio warns
            # otherwise), shielded so a cancelled caller still frees the socket.
            await release(response, raw)
        raise StreamError(
            f"{VENDOR} stream ended without its final event (data: [DONE]); "
            "the answer is truncated",
            provider=self.config.name,
            request_id=request_id,
        )

    async def health_check(self) -> bool:
        """True if ``GET /models`` answers 200; never raises."""
        try:
            response = await self.http_client().get("/models", timeout=5.0)
        except Exception as exc:  # health checks report, they never raise
            self.logger.warning("health check failed: %s", type(exc).__name__)
            return False
        return response.status_code == 200
