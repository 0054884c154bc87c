"""A provider that needs no network: for demos and for your own tests.

``mode`` picks the behaviour: ``success`` answers ``"Mock response to: <prompt>"``;
``timeout``, ``rate_limit``, ``auth_error``, ``invalid_request`` and ``server_error`` raise
the matching typed error; ``stream_failure`` streams ``fail_after_chunks`` chunks then breaks.
``latency`` adds a delay to every call, ``fail_times`` makes only the first N calls fail
(then it succeeds), ``retry_after`` is put on rate-limit errors.

    router.add_provider(MockProvider(MockConfig(name="m", mode="rate_limit", fail_times=1)))
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Literal

import anyio
from pydantic import Field

from orchestrator.config import ProviderConfig
from orchestrator.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
)
from orchestrator.hookspecs import hookimpl
from orchestrator.providers.base import BaseProvider, render_transcript
from orchestrator.types import Chunk, Completion, GenerationParams, Message, Usage

__all__ = ["MockConfig", "MockProvider"]

MockMode = Literal[
    "success",
    "timeout",
    "rate_limit",
    "auth_error",
    "invalid_request",
    "server_error",
    "stream_failure",
]


class MockConfig(ProviderConfig):
    """Settings of :class:`MockProvider`."""

    model: str | None = "mock-1"
    mode: MockMode = Field(default="success", description="What every call does.")
    latency: float = Field(default=0.0, ge=0, le=60, description="Seconds added to every call.")
    response: str | None = Field(default=None, description="Fixed answer instead of the echo.")
    fail_times: int | None = Field(
        default=None, ge=0, description="Fail only the first N calls, then succeed."
    )
    fail_after_chunks: int = Field(
        default=2, ge=0, description="stream_failure: chunks delivered before the stream breaks."
    )
    retry_after: float | None = Field(
        default=None, ge=0, description="Retry-After seconds on rate-limit errors."
    )


_ERRORS: dict[str, Callable[[str], ProviderError]] = {
    "timeout": lambda n: ProviderTimeoutError("mock timeout", provider=n),
    "auth_error": lambda n: AuthenticationError(
        "mock authentication failed", provider=n, status_code=401
    ),
    "invalid_request": lambda n: InvalidRequestError(
        "mock invalid request", provider=n, status_code=400
    ),
    "server_error": lambda n: ServiceUnavailableError(
        "mock server error", provider=n, status_code=503
    ),
}


class MockProvider(BaseProvider):
    """In-memory provider with scriptable failures."""

    config_class = MockConfig
    config: MockConfig

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._calls = itertools.count(1)
        self.calls = 0

    def _answer(self, messages: Sequence[Message]) -> str:
        if self.config.response is not None:
            return self.config.response
        return f"Mock response to: {render_transcript(messages)}"

    async def _begin(self) -> bool:
        """Count the call, apply latency; True when this call should fail."""
        self.calls = next(self._calls)
        if self.config.latency:
            await anyio.sleep(self.config.latency)
        if self.config.mode == "success":
            return False
        return self.config.fail_times is None or self.calls <= self.config.fail_times

    def _error(self) -> ProviderError:
        name, mode = self.config.name, self.config.mode
        if mode == "rate_limit":
            return RateLimitError(
                "mock rate limit",
                provider=name,
                status_code=429,
                retry_after=self.config.retry_after,
            )
        return _ERRORS[mode](name)

    @staticmethod
    def _usage(messages: Sequence[Message], text: str) -> Usage:
        prompt = sum(len(m.content.split()) for m in messages)
        completion = len(text.split())
        return Usage(prompt, completion, prompt + completion)

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        return (await self.chat([Message("user", prompt)], params)).text

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        if await self._begin() and self.config.mode != "stream_failure":
            raise self._error()
        text = self._answer(messages)
        finish: Literal["stop", "length"] = "stop"
        if params is not None and len(text.split()) > params.max_tokens:
            text, finish = " ".join(text.split()[: params.max_tokens]), "length"
        return Completion(
            text=text,
            provider=self.config.name,
            model=self.config.model,
            finish_reason=finish,
            usage=self._usage(messages, text),
            request_id=f"mock-{self.calls}",
        )

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        failing = await self._begin()
        if failing and self.config.mode != "stream_failure":
            raise self._error()
        text = self._answer(messages)
        words = text.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        meta = {"provider": self.config.name, "model": self.config.model}
        for index, piece in enumerate(pieces):
            if failing and index >= self.config.fail_after_chunks:
                raise StreamError(
                    "mock stream cut", provider=self.config.name, request_id=f"mock-{self.calls}"
                )
            yield Chunk(delta=piece, **meta)  # type: ignore[arg-type]
            await anyio.lowlevel.checkpoint()
        yield Chunk(
            delta="",
            finish_reason="stop",
            usage=self._usage(messages, text),
            request_id=f"mock-{self.calls}",
            **meta,  # type: ignore[arg-type]
        )

    async def health_check(self) -> bool:
        healthy = self.config.mode in ("success", "stream_failure") or (
            self.config.fail_times is not None and self.calls >= self.config.fail_times
        )
        if not healthy:
            self.logger.info(
                "%s: health check failed: mode = %r answers every call with an error",
                self.config.name,
                self.config.mode,
            )
        return healthy


@hookimpl
def register_providers(register: Callable[..., None]) -> None:
    """Register the built-in mock provider."""
    register(MockProvider, name="mock")
