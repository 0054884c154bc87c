"""Hook specifications. Implement them with ``@orchestrator.hookimpl``.

An implementation may take any subset of a hook's parameters (pluggy passes them by name),
so hooks grow by adding parameters. Lifecycle hooks (``on_*``) may be ``async def``; the
router awaits them, logs and swallows their errors, and costs nothing when no plugin
implements one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

if TYPE_CHECKING:
    from orchestrator.events import Outcome, RequestInfo
    from orchestrator.health import ProviderSlot
    from orchestrator.types import Completion

_F = TypeVar("_F", bound=Callable[..., Any])
_spec = pluggy.HookspecMarker("orchestrator")
hookimpl = pluggy.HookimplMarker("orchestrator")


def hookspec(func: _F) -> _F:
    """Mark a hook specification, keeping its signature for type checkers."""
    return _spec(func)


@hookspec
def register_providers(register: Callable[..., None]) -> None:
    """Register provider classes: ``register(ProviderClass, name="gigachat", aliases=())``,
    or name one to import on first use: ``register("package.module:ProviderClass",
    name="gigachat", emulator="package.emulator:App")``."""


@hookspec
def register_strategies(register: Callable[..., None]) -> None:
    """Register routing strategies: ``register(StrategyClass, name="round-robin")``."""


@hookspec
def on_request_start(request: RequestInfo) -> None:
    """A router call started; every start is followed by exactly one ``on_request_end``."""


@hookspec
def on_attempt_start(request: RequestInfo, provider: str, attempt: int, slot: ProviderSlot) -> None:
    """The router is about to call ``provider`` (``attempt`` counts from 1 per provider);
    ``slot`` is its :class:`~orchestrator.health.ProviderSlot` (read it, don't write)."""


@hookspec
def on_attempt_success(
    request: RequestInfo, provider: str, attempt: int, latency: float, result: Completion
) -> None:
    """The call to ``provider`` answered (a stream: its final chunk arrived) after
    ``latency`` seconds; ``result`` is its Completion (a stream's: assembled from its chunks)."""


@hookspec
def on_attempt_error(
    request: RequestInfo, provider: str, attempt: int, latency: float, error: BaseException
) -> None:
    """The call to ``provider`` failed with ``error``."""


@hookspec
def on_retry(
    request: RequestInfo, provider: str, attempt: int, delay: float, error: BaseException
) -> None:
    """The router will retry ``provider`` after ``delay`` seconds because of ``error``."""


@hookspec
def on_fallback(request: RequestInfo, from_provider: str, error: BaseException) -> None:
    """The router gave up on ``from_provider`` and moves to the next provider."""


@hookspec
def on_stream_first_chunk(request: RequestInfo, provider: str, latency: float) -> None:
    """A stream's first text reached the caller ``latency`` seconds after the attempt began."""


@hookspec
def on_request_end(
    request: RequestInfo,
    result: Completion | None,
    error: BaseException | None,
    outcome: Outcome,
) -> None:
    """A router call ended: ``outcome`` is ``"ok"`` (``result`` is the Completion; for a
    stream, assembled from its chunks), ``"error"`` (``error`` says why) or
    ``"cancelled"`` (the caller was cancelled or closed the stream before its end)."""
