"""Hook specifications. Implement them with ``@orchestrator.hookimpl``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("orchestrator")
hookimpl = pluggy.HookimplMarker("orchestrator")


@hookspec
def register_providers(register: Callable[..., None]) -> None:
    """Register provider classes: ``register(ProviderClass, name="gigachat", aliases=())``."""


@hookspec
def register_strategies(register: Callable[..., None]) -> None:
    """Register routing strategies: ``register(StrategyClass, name="round-robin")``."""


@hookspec
def on_request_start(request: Any) -> None:
    """A router call started; ``request`` is a :class:`orchestrator.events.RequestInfo`."""


@hookspec
def on_attempt_start(request: Any, provider: str, attempt: int) -> None:
    """The router is about to call ``provider`` (``attempt`` counts from 1 per provider)."""


@hookspec
def on_attempt_success(request: Any, provider: str, attempt: int, latency: float) -> None:
    """The call to ``provider`` answered after ``latency`` seconds."""


@hookspec
def on_attempt_error(
    request: Any, provider: str, attempt: int, latency: float, error: BaseException
) -> None:
    """The call to ``provider`` failed with ``error``."""


@hookspec
def on_retry(request: Any, provider: str, attempt: int, delay: float, error: BaseException) -> None:
    """The router will retry ``provider`` after ``delay`` seconds because of ``error``."""


@hookspec
def on_fallback(request: Any, from_provider: str, error: BaseException) -> None:
    """The router gave up on ``from_provider`` and moves to the next provider."""


@hookspec
def on_stream_first_chunk(request: Any, provider: str, latency: float) -> None:
    """A stream's first text reached the caller ``latency`` seconds after the attempt began."""


@hookspec
def on_request_end(request: Any, result: Any, error: BaseException | None) -> None:
    """A router call ended with ``result`` (a Completion, or None) or ``error``."""
