"""The lifecycle hook relay: one typed method per ``on_*`` hook of :mod:`orchestrator.hookspecs`."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from orchestrator import hookspecs
from orchestrator._secrets import get_logger

if TYPE_CHECKING:
    from orchestrator.events import Outcome, RequestInfo
    from orchestrator.health import ProviderSlot
    from orchestrator.types import Completion

logger = get_logger("orchestrator.router")

#: Every lifecycle hook, derived from the specifications.
LIFECYCLE_HOOKS = tuple(name for name in vars(hookspecs) if name.startswith("on_"))


async def _call(hook: Any, **kwargs: Any) -> None:
    """Call one pluggy ``HookCaller``, awaiting what async implementations return; None
    is a hook no plugin implements."""
    if hook is None:
        return
    try:
        for result in hook(**kwargs):
            if inspect.isawaitable(result):
                await result
    except Exception:
        logger.warning("lifecycle hook %s failed", hook.name, exc_info=True)


class LifecycleHooks:
    """Calls the plugins' lifecycle hooks, awaiting async ones; a failing hook is logged and
    never breaks a request."""

    __slots__ = ("_relay",)

    def __init__(self, relay: Any) -> None:
        # pluggy's hook callers, None for each hook no plugin implements: a plugin that
        # watches one hook does not make every request pay a pluggy call for all eight.
        # (The router builds a new relay whenever plugins are registered or removed.)
        self._relay = SimpleNamespace(
            **{
                name: caller if caller.get_hookimpls() else None
                for name in LIFECYCLE_HOOKS
                for caller in (getattr(relay, name),)
            }
        )

    async def request_start(self, request: RequestInfo) -> None:
        await _call(self._relay.on_request_start, request=request)

    async def attempt_start(
        self, request: RequestInfo, provider: str, attempt: int, slot: ProviderSlot
    ) -> None:
        await _call(
            self._relay.on_attempt_start,
            request=request,
            provider=provider,
            attempt=attempt,
            slot=slot,
        )

    async def attempt_success(
        self, request: RequestInfo, provider: str, attempt: int, latency: float, result: Completion
    ) -> None:
        await _call(
            self._relay.on_attempt_success,
            request=request,
            provider=provider,
            attempt=attempt,
            latency=latency,
            result=result,
        )

    async def attempt_error(
        self,
        request: RequestInfo,
        provider: str,
        attempt: int,
        latency: float,
        error: BaseException,
    ) -> None:
        await _call(
            self._relay.on_attempt_error,
            request=request,
            provider=provider,
            attempt=attempt,
            latency=latency,
            error=error,
        )

    async def retry(
        self, request: RequestInfo, provider: str, attempt: int, delay: float, error: BaseException
    ) -> None:
        await _call(
            self._relay.on_retry,
            request=request,
            provider=provider,
            attempt=attempt,
            delay=delay,
            error=error,
        )

    async def fallback(
        self, request: RequestInfo, from_provider: str, error: BaseException
    ) -> None:
        await _call(
            self._relay.on_fallback, request=request, from_provider=from_provider, error=error
        )

    async def stream_first_chunk(self, request: RequestInfo, provider: str, latency: float) -> None:
        await _call(
            self._relay.on_stream_first_chunk, request=request, provider=provider, latency=latency
        )

    async def request_end(
        self,
        request: RequestInfo,
        result: Completion | None,
        error: BaseException | None,
        outcome: Outcome,
    ) -> None:
        await _call(
            self._relay.on_request_end,
            request=request,
            result=result,
            error=error,
            outcome=outcome,
        )
