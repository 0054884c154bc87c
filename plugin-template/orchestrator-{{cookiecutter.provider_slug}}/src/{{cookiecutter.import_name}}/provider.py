"""The {{ cookiecutter.provider_name }} provider for the Multi-LLM Orchestrator.

It speaks an OpenAI-compatible chat API: ``POST {base_url}/chat/completions`` (JSON, or
server-sent events when streaming) and ``GET {base_url}/models`` for health checks. If your
API differs, change ``_payload`` (the request), ``chat``/``stream`` (the answer) and
``_error`` (the failures); the contract tests in ``tests/test_contract.py`` tell you when
something is off.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import httpx
from orchestrator.errors import (
    AuthenticationError,
    ContextLengthError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
)
from orchestrator.providers.base import BaseProvider, map_transport_error
from orchestrator.types import Chunk, Completion, FinishReason, GenerationParams, Message, Usage

__all__ = ["{{ cookiecutter.class_name }}"]

#: How the vendor is named in error messages.
VENDOR = "{{ cookiecutter.provider_name }}"

#: HTTP status -> (error class, how to fix it). Any other status >= 500 maps to
#: ServiceUnavailableError (transient), any other >= 400 to InvalidRequestError.
_ERRORS: dict[int, tuple[type[ProviderError], str]] = {
    400: (InvalidRequestError, "check the messages and parameters"),
    401: (AuthenticationError, "check ProviderConfig.api_key"),
    402: (QuotaExceededError, "top up the account"),
    403: (PermissionDeniedError, "the key lacks access to this model or resource"),
    404: (ModelNotFoundError, "check ProviderConfig.model and base_url"),
    408: (ProviderTimeoutError, "retry later or raise the timeout"),
    413: (ContextLengthError, "shorten the conversation"),
    422: (InvalidRequestError, "check the messages and parameters"),
    429: (RateLimitError, "slow down or raise the account's limits"),
}
_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "function_call",
}


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (an HTTP date is ignored)."""
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(header)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def _usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        total_tokens=int(data.get("total_tokens") or 0),
    )


async def _finish(lines: AsyncIterator[str]) -> None:
    """Run httpx's nested line/text/byte generators to their end after the response is
    closed: abandoned half-read async generators make trio warn when they are collected."""
    with contextlib.suppress(Exception):
        async for _ in lines:
            pass


class {{ cookiecutter.class_name }}(BaseProvider):
    """Chat models of the vendor named in ``VENDOR``, over its OpenAI-compatible API."""

    DEFAULT_BASE_URL: str = "{{ cookiecutter.default_base_url }}"
    DEFAULT_MODEL: str = "{{ cookiecutter.default_model }}"

    supports_chat = True
    supports_streaming = True

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
            verify=self.config.verify_ssl,
            transport=self._transport,  # tests may inject one
            follow_redirects=False,
        )

    def _error(self, response: httpx.Response) -> ProviderError:
        """The typed error for a failed response (the body is already read)."""
        status = response.status_code
        try:
            detail = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            detail = response.text[:200] or response.reason_phrase
        fallback = (
            (ServiceUnavailableError, "retry later")
            if status >= 500
            else (InvalidRequestError, "check the request")
        )
        cls, fix = _ERRORS.get(status, fallback)
        return cls(
            f"{VENDOR} API returned HTTP {status}: {detail}; {fix}",
            provider=self.config.name,
            status_code=status,
            request_id=response.headers.get("x-request-id"),
            retry_after=_retry_after(response),
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
                data = response.json()
                choice = data["choices"][0]
                text = choice["message"].get("content") or ""
            except (ValueError, LookupError, TypeError, AttributeError) as exc:
                raise ProviderError(
                    f"{VENDOR} API sent an answer without choices[0].message: "
                    f"{response.text[:200]!r}; is base_url an OpenAI-compatible API?",
                    provider=self.config.name,
                    status_code=response.status_code,
                    request_id=request_id,
                ) from exc
            return Completion(
                text=text,
                provider=self.config.name,
                model=data.get("model") or payload["model"],
                finish_reason=_FINISH_REASONS.get(choice.get("finish_reason") or "", "stop"),
                usage=_usage(data.get("usage")),
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
        finish: FinishReason | None = None
        usage: Usage | None = None
        lines = response.aiter_lines()
        try:
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    yield Chunk(
                        delta="",
                        provider=self.config.name,
                        model=payload["model"],
                        finish_reason=finish or "stop",
                        usage=usage,
                        request_id=request_id,
                    )
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    raise StreamError(
                        f"{VENDOR} stream sent an event that is not JSON: {data[:200]!r}",
                        provider=self.config.name,
                        request_id=request_id,
                    ) from None
                if not isinstance(event, dict):
                    continue
                if "error" in event:
                    raise StreamError(
                        f"{VENDOR} stream failed: {event['error']}",
                        provider=self.config.name,
                        request_id=request_id,
                    )
                usage = _usage(event.get("usage")) or usage
                for choice in event.get("choices") or []:
                    reason = choice.get("finish_reason")
                    if reason:
                        finish = _FINISH_REASONS.get(reason, "stop")
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield Chunk(
                            delta=text,
                            provider=self.config.name,
                            model=payload["model"],
                            request_id=request_id,
                        )
        except httpx.TransportError as exc:
            mapped = map_transport_error(exc, self.config.name)
            raise (mapped or StreamError(str(exc), provider=self.config.name)) from exc
        finally:
            # Shielded so a cancelled caller still closes the response and frees the socket.
            with anyio.CancelScope(shield=True):
                await response.aclose()
                await _finish(lines)
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
