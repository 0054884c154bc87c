"""The router: choose a provider, attempt, retry or fail over, return the result.

Promises (each has a test):

- transient errors (rate limit, timeout, 5xx, connection) are retried on the same provider
  with jittered exponential backoff that honours ``Retry-After``; then any
  :class:`~orchestrator.errors.ProviderError` moves on to the next provider;
- an exception that is not a ``ProviderError`` (a bug in a plugin) propagates unchanged;
- a stream fails over only before its first text reaches the caller; after that a failure
  raises :class:`~orchestrator.errors.StreamInterruptedError` with the partial text, and a
  stream that ends without its final chunk is never a success;
- ``deadline`` bounds a whole request across retries and fallbacks;
- cancelling the caller cancels the HTTP request and releases its connection;
- a router can be used from several event loops (``asyncio.run`` per call, threads, trio):
  it holds no loop-bound state, and providers keep one HTTP client per loop.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import anyio

from orchestrator._secrets import get_logger
from orchestrator.errors import (
    AllProvidersFailedError,
    Attempt,
    ConfigurationError,
    DeadlineExceededError,
    NoProvidersError,
    ProviderError,
    StreamError,
    StreamInterruptedError,
)
from orchestrator.health import BreakerConfig, CircuitBreaker, HealthStats, ProviderSlot
from orchestrator.providers.base import BaseProvider, map_transport_error
from orchestrator.retry import RetryPolicy, retries_managed_by_caller
from orchestrator.types import (
    Chunk,
    Completion,
    GenerationParams,
    Message,
    coerce_messages,
)

if TYPE_CHECKING:
    from orchestrator.plugins import PluginRegistry
    from orchestrator.strategies import Strategy

__all__ = ["RequestInfo", "Router"]

logger = get_logger("orchestrator.router")
_request_ids = itertools.count(1)

MessagesInput = str | Iterable[Message | Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What lifecycle hooks learn about a request."""

    id: int
    kind: Literal["chat", "stream"]
    messages: tuple[Message, ...]
    params: GenerationParams | None
    started: float


def _coerce_params(params: GenerationParams | Mapping[str, Any] | None) -> GenerationParams | None:
    if params is None or isinstance(params, GenerationParams):
        return params
    return GenerationParams(**params)


class Router:
    """Routes requests over providers with retries, failover and circuit breaking.

    ``strategy`` is a registered strategy name (``round-robin``, ``random``,
    ``first-available``, ``weighted``, or one from a plugin) or a strategy object.
    ``deadline`` (seconds) bounds every request across retries and fallbacks unless a call
    passes its own. ``registry`` defaults to the process-wide plugin registry.
    """

    def __init__(
        self,
        strategy: str | Strategy = "round-robin",
        *,
        deadline: float | None = None,
        breaker: BreakerConfig | None = None,
        registry: PluginRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if registry is None:
            from orchestrator.plugins import default_registry

            registry = default_registry()
        self.registry = registry
        if isinstance(strategy, str):
            self.strategy: Strategy = registry.strategy_class(strategy)()
            self.strategy_name = strategy
        else:
            self.strategy = strategy
            self.strategy_name = getattr(strategy, "name", type(strategy).__name__)
        if deadline is not None and deadline <= 0:
            raise ValueError("deadline must be a positive number of seconds")
        self.deadline = deadline
        self.breaker_config = breaker or BreakerConfig()
        self.clock = clock
        self._slots: list[ProviderSlot] = []
        self._by_name: dict[str, ProviderSlot] = {}

    # -- providers ----------------------------------------------------------------------

    def add_provider(
        self,
        provider: BaseProvider,
        *,
        weight: float = 1.0,
        priority: int | None = None,
    ) -> None:
        """Add ``provider``; its ``config.name`` must be unique in this router.

        ``weight`` feeds the ``weighted`` and ``random`` strategies; ``priority`` (lower
        first, default: insertion order) feeds ``first-available``.
        """
        if not isinstance(provider, BaseProvider):
            raise TypeError(f"add_provider() needs a BaseProvider, got {type(provider).__name__}")
        name = provider.config.name
        if name in self._by_name:
            raise ValueError(
                f"A provider named {name!r} is already in this router; "
                "give each provider a unique ProviderConfig.name"
            )
        if weight < 0:
            raise ValueError("weight must be >= 0")
        slot = ProviderSlot(
            provider,
            weight=weight,
            priority=len(self._slots) if priority is None else priority,
            breaker=CircuitBreaker(self.breaker_config, self.clock),
            stats=HealthStats(self.breaker_config.window, self.clock),
        )
        self._slots.append(slot)
        self._by_name[name] = slot

    def remove_provider(self, name: str) -> BaseProvider:
        """Remove and return the provider called ``name`` (KeyError if absent)."""
        slot = self._by_name.pop(name, None)
        if slot is None:
            raise KeyError(f"No provider named {name!r}; have: {', '.join(self._by_name)}")
        self._slots.remove(slot)
        return slot.provider

    @property
    def providers(self) -> list[BaseProvider]:
        """The providers in insertion order."""
        return [slot.provider for slot in self._slots]

    def get_provider(self, name: str) -> BaseProvider:
        """The provider called ``name``."""
        return self._by_name[name].provider

    # -- planning -----------------------------------------------------------------------

    def _plan(self, only: str | None) -> list[ProviderSlot]:
        if not self._slots:
            raise NoProvidersError(
                "The router has no providers; add one with router.add_provider(...)"
            )
        if only is not None:
            slot = self._by_name.get(only)
            if slot is None:
                raise ConfigurationError(
                    f"No provider named {only!r} in this router; have: {', '.join(self._by_name)}"
                )
            return [slot]
        admitted = [slot for slot in self._slots if slot.breaker.admits()]
        if not admitted:
            # Every breaker is open: try the provider that failed longest ago rather than
            # failing without asking anyone.
            return [min(self._slots, key=lambda s: s.last_failure_at)]
        return list(self.strategy.order(admitted))

    # -- calls ----------------------------------------------------------------------------

    async def route(
        self,
        prompt: str,
        params: GenerationParams | Mapping[str, Any] | None = None,
        *,
        deadline: float | None = None,
        provider: str | None = None,
    ) -> str:
        """Answer ``prompt`` and return the text."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be str, got {type(prompt).__name__}")
        completion = await self.chat(prompt, params, deadline=deadline, provider=provider)
        return completion.text

    async def chat(
        self,
        messages: MessagesInput,
        params: GenerationParams | Mapping[str, Any] | None = None,
        *,
        deadline: float | None = None,
        provider: str | None = None,
    ) -> Completion:
        """Answer a conversation (``Message``\\ s or role/content dicts, or a prompt string).

        ``provider`` pins the request to one provider (no failover).
        """
        msgs = coerce_messages(messages)
        gen_params = _coerce_params(params)
        plan = self._plan(provider)
        deadline = self.deadline if deadline is None else deadline
        if deadline is None:
            return await self._chat(plan, msgs, gen_params, None)
        with anyio.move_on_after(deadline) as scope:
            return await self._chat(plan, msgs, gen_params, scope)
        raise DeadlineExceededError(
            f"Request deadline of {deadline:g}s exceeded across retries and fallbacks; "
            "raise `deadline` or lower provider timeouts"
        )

    async def _chat(
        self,
        plan: list[ProviderSlot],
        msgs: tuple[Message, ...],
        params: GenerationParams | None,
        scope: anyio.CancelScope | None,
    ) -> Completion:
        attempts: list[Attempt] = []
        token = retries_managed_by_caller.set(True)
        try:
            for slot in plan:
                provider = slot.provider
                if params is not None:
                    try:
                        provider.validate_params(params)
                    except ProviderError as exc:
                        provider._stamp(exc)
                        attempts.append(Attempt(provider.config.name, exc, 0))
                        continue
                policy = provider.retry_policy()
                attempt = 0
                while True:
                    attempt += 1
                    stats = slot.stats
                    self._admit(slot)
                    stats.in_flight += 1
                    started = time.perf_counter()
                    try:
                        completion = await provider.chat(msgs, params)
                    except ProviderError as exc:
                        error: ProviderError = provider._stamp(exc)
                    except Exception as exc:
                        mapped = map_transport_error(exc, provider.config.name)
                        if mapped is None:
                            slot.breaker.on_cancel()
                            raise
                        mapped.__cause__ = exc
                        error = mapped
                    except BaseException:
                        slot.breaker.on_cancel()
                        raise
                    else:
                        latency = time.perf_counter() - started
                        stats.record_success(latency)
                        slot.breaker.on_success()
                        if completion.provider != provider.config.name or not completion.latency:
                            completion = replace(
                                completion, provider=provider.config.name, latency=latency
                            )
                        stats.record_usage(completion.usage, completion.cost)
                        return completion
                    finally:
                        stats.in_flight -= 1
                    elapsed = time.perf_counter() - started
                    stats.record_failure(error)
                    slot.breaker.on_failure(error)
                    attempts.append(Attempt(provider.config.name, error, attempt, elapsed))
                    delay = self._retry_delay(slot, policy, attempt, error)
                    if delay is None or not self._fits(scope, delay):
                        logger.info("%s failed (%s); failing over", provider.config.name, error)
                        break
                    logger.info(
                        "%s failed (%s); retry %d in %.2fs",
                        provider.config.name,
                        type(error).__name__,
                        attempt,
                        delay,
                    )
                    await anyio.sleep(delay)
        finally:
            retries_managed_by_caller.reset(token)
        raise AllProvidersFailedError(attempts)

    @staticmethod
    def _admit(slot: ProviderSlot) -> None:
        # Planned providers were admitted; if a breaker closed in on it since (or it is the
        # last resort while all are open), the request still goes as a probe.
        if not slot.breaker.acquire():
            slot.breaker.force_acquire()

    @staticmethod
    def _retry_delay(
        slot: ProviderSlot, policy: RetryPolicy, attempt: int, error: ProviderError
    ) -> float | None:
        """Seconds before retrying the same provider, or None to fail over now."""
        if not error.transient:
            return None
        delay = policy.delay(attempt, error.retry_after)
        if delay is None:
            return None
        # A breaker that just opened means "stop asking"; a Retry-After hold is honoured by
        # waiting exactly that long, which is what ``delay`` already is.
        if slot.breaker.state == "open":
            return None
        return delay

    @staticmethod
    def _fits(scope: anyio.CancelScope | None, delay: float) -> bool:
        return scope is None or anyio.current_time() + delay < scope.deadline

    async def route_stream(
        self,
        prompt: str,
        params: GenerationParams | Mapping[str, Any] | None = None,
        *,
        deadline: float | None = None,
        provider: str | None = None,
    ) -> AsyncIterator[str]:
        """Stream the answer to ``prompt`` as text deltas."""
        async for chunk in self.chat_stream(prompt, params, deadline=deadline, provider=provider):
            if chunk.delta:
                yield chunk.delta

    async def chat_stream(
        self,
        messages: MessagesInput,
        params: GenerationParams | Mapping[str, Any] | None = None,
        *,
        deadline: float | None = None,
        provider: str | None = None,
    ) -> AsyncIterator[Chunk]:
        """Stream an answer as :class:`Chunk`\\ s; the last one has ``finish_reason``.

        Fails over only before the first text is yielded. Close it early with
        ``contextlib.aclosing`` so the connection is released at once.
        """
        msgs = coerce_messages(messages)
        gen_params = _coerce_params(params)
        plan = self._plan(provider)
        deadline = self.deadline if deadline is None else deadline
        ends_at = None if deadline is None else anyio.current_time() + deadline
        attempts: list[Attempt] = []
        for slot in plan:
            prov = slot.provider
            name = prov.config.name
            if gen_params is not None:
                try:
                    prov.validate_params(gen_params)
                except ProviderError as exc:
                    attempts.append(Attempt(name, prov._stamp(exc), 0))
                    continue
            policy = prov.retry_policy()
            attempt = 0
            while True:
                attempt += 1
                self._admit(slot)
                slot.stats.in_flight += 1
                started = time.perf_counter()
                stream = prov.stream(msgs, gen_params)
                pending: list[Chunk] = []
                error: ProviderError | None = None
                try:
                    first = await self._first_text(stream, pending, ends_at, name)
                except ProviderError as exc:
                    error = prov._stamp(exc)
                except Exception as exc:
                    mapped = map_transport_error(exc, name)
                    if mapped is None:
                        await self._release(slot, stream)
                        raise
                    mapped.__cause__ = exc
                    error = mapped
                except BaseException:
                    await self._release(slot, stream)
                    raise
                if error is not None:
                    await self._release(slot, stream)
                    slot.stats.record_failure(error)
                    slot.breaker.on_failure(error)
                    attempts.append(Attempt(name, error, attempt, time.perf_counter() - started))
                    delay = self._retry_delay(slot, policy, attempt, error)
                    if delay is None or (
                        ends_at is not None and anyio.current_time() + delay >= ends_at
                    ):
                        break
                    await anyio.sleep(delay)
                    continue
                # Committed to this provider: from here on, no failover.
                slot.stats.record_first_chunk(time.perf_counter() - started)
                async for chunk in self._rest(slot, stream, first, started, ends_at):
                    yield chunk
                return
        if any(isinstance(a.error, DeadlineExceededError) for a in attempts):
            raise DeadlineExceededError(
                f"Request deadline of {deadline:g}s exceeded before the stream started"
            )
        raise AllProvidersFailedError(attempts)

    @staticmethod
    async def _next(stream: AsyncIterator[Chunk], ends_at: float | None, name: str) -> Chunk:
        token = retries_managed_by_caller.set(True)
        try:
            if ends_at is None:
                return await stream.__anext__()
            with anyio.move_on_after(ends_at - anyio.current_time()):
                return await stream.__anext__()
            raise DeadlineExceededError("Request deadline exceeded while streaming", provider=name)
        finally:
            retries_managed_by_caller.reset(token)

    async def _first_text(
        self,
        stream: AsyncIterator[Chunk],
        pending: list[Chunk],
        ends_at: float | None,
        name: str,
    ) -> Chunk:
        """Read until the first chunk with text or a finish; earlier empty chunks are held."""
        while True:
            try:
                chunk = await self._next(stream, ends_at, name)
            except StopAsyncIteration:
                raise StreamError(
                    "Stream ended before any text or final chunk", provider=name
                ) from None
            if chunk.delta or chunk.finish_reason is not None:
                return chunk
            pending.append(chunk)

    async def _rest(
        self,
        slot: ProviderSlot,
        stream: AsyncIterator[Chunk],
        first: Chunk,
        started: float,
        ends_at: float | None,
    ) -> AsyncIterator[Chunk]:
        name = slot.provider.config.name
        received: list[str] = []
        chunk = first
        finished = False
        try:
            while True:
                if chunk.provider != name:
                    chunk = replace(chunk, provider=name)
                received.append(chunk.delta)
                yield chunk
                if chunk.finish_reason is not None:
                    finished = True
                    slot.stats.record_usage(chunk.usage, None)
                    # Drain so the provider can close its response cleanly.
                    async for _ in _aiter(stream):
                        pass
                    break
                try:
                    chunk = await self._next(stream, ends_at, name)
                except StopAsyncIteration:
                    raise StreamInterruptedError(
                        "Stream ended without a final chunk (truncated)",
                        provider=name,
                        partial_text="".join(received),
                    ) from None
                except ProviderError as exc:
                    raise StreamInterruptedError(
                        f"Stream from {name} failed after text was delivered: {exc.message}",
                        provider=name,
                        request_id=exc.request_id,
                        status_code=exc.status_code,
                        partial_text="".join(received),
                    ) from exc
                except Exception as exc:
                    mapped = map_transport_error(exc, name)
                    if mapped is None:
                        raise
                    raise StreamInterruptedError(
                        f"Stream from {name} failed after text was delivered: {mapped.message}",
                        provider=name,
                        partial_text="".join(received),
                    ) from exc
        except BaseException as exc:
            if isinstance(exc, StreamInterruptedError):
                slot.stats.record_failure(exc)
                slot.breaker.on_failure(exc)
            else:
                slot.breaker.on_cancel()
            raise
        finally:
            await self._release(slot, stream, count=False)
            slot.stats.in_flight -= 1
        if finished:
            slot.stats.record_success(time.perf_counter() - started)
            slot.breaker.on_success()

    @staticmethod
    async def _release(
        slot: ProviderSlot, stream: AsyncIterator[Chunk], count: bool = True
    ) -> None:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await aclose()
                except Exception:  # a provider failing while closing must not mask the cause
                    logger.debug("closing %s stream failed", slot.name, exc_info=True)
        if count:
            slot.stats.in_flight -= 1

    # -- construction from settings ----------------------------------------------------

    @classmethod
    def from_config(cls, source: Any) -> Router:
        """Build a router from a TOML file path or a dict (see docs/configuration.md)."""
        from orchestrator.settings import router_from_config

        return router_from_config(source)

    @classmethod
    def from_env(cls, **options: Any) -> Router:
        """Build a router from every installed provider that has credentials in the env."""
        from orchestrator.settings import router_from_env

        return router_from_env(**options)

    # -- health and lifecycle -----------------------------------------------------------

    async def health_check(self) -> dict[str, bool]:
        """Run every provider's ``health_check()`` concurrently; a raise counts as False."""
        results: dict[str, bool] = {}

        async def check(slot: ProviderSlot) -> None:
            try:
                results[slot.name] = bool(await slot.provider.health_check())
            except Exception as exc:
                logger.warning("%s health check raised %s", slot.name, type(exc).__name__)
                results[slot.name] = False

        async with anyio.create_task_group() as tg:
            for slot in self._slots:
                tg.start_soon(check, slot)
        return {slot.name: results[slot.name] for slot in self._slots}

    def stats(self) -> dict[str, Any]:
        """Per-provider health, breaker state, counts, latency, usage and cost (JSON-ready)."""
        return {
            "strategy": self.strategy_name,
            "providers": {
                slot.name: {
                    "breaker": slot.breaker.snapshot(),
                    **slot.stats.snapshot(),
                }
                for slot in self._slots
            },
        }

    async def aclose(self) -> None:
        """Close every provider's HTTP client on the running loop."""
        for slot in self._slots:
            try:
                await slot.provider.aclose()
            except Exception:
                logger.warning("closing %s failed", slot.name, exc_info=True)

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def _aiter(stream: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    while True:
        try:
            yield await stream.__anext__()
        except StopAsyncIteration:
            return
