"""The router: choose a provider, attempt, retry or fail over, return the result.

Promises (each has a test):

- transient errors (rate limit, timeout, 5xx, connection) are retried on the same provider
  with jittered exponential backoff that honours ``Retry-After``; then any
  :class:`~orchestrator.errors.ProviderError` moves on to the next provider;
- an exception that is not a ``ProviderError`` (a bug in a plugin) propagates unchanged;
- a stream fails over only before its first text reaches the caller; after that a failure
  raises :class:`~orchestrator.errors.StreamInterruptedError` with the partial text, and a
  stream that ends without its final chunk is never a success;
- ``deadline`` bounds a whole request across retries and fallbacks; per-provider
  ``timeout`` bounds one attempt; ``first_chunk_timeout`` bounds a stream's first text;
- cancelling the caller cancels the HTTP request and releases its connection;
- a router can be used from several event loops (``asyncio.run`` per call, threads, trio):
  it holds no loop-bound state, and providers keep one HTTP client per loop.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
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
    ProviderTimeoutError,
    RateLimitError,
    StreamError,
    StreamInterruptedError,
)
from orchestrator.health import BreakerConfig, CircuitBreaker, HealthStats, ProviderSlot
from orchestrator.limits import LimitState, ProviderLimits
from orchestrator.pricing import PriceTable, cost_of, find_price
from orchestrator.providers.base import BaseProvider, map_transport_error
from orchestrator.retry import RetryPolicy, retries_managed_by_caller
from orchestrator.types import Chunk, Completion, GenerationParams, Message, Usage, coerce_messages

if TYPE_CHECKING:
    from orchestrator.plugins import PluginRegistry
    from orchestrator.strategies import Strategy

__all__ = ["RequestInfo", "Router", "UsageEvent"]

logger = get_logger("orchestrator.router")
_request_ids = itertools.count(1)

MessagesInput = str | Iterable[Message | Mapping[str, Any]]
LIFECYCLE_HOOKS = (
    "on_request_start",
    "on_attempt_start",
    "on_attempt_success",
    "on_attempt_error",
    "on_retry",
    "on_fallback",
    "on_stream_first_chunk",
    "on_request_end",
)
#: How often a request waiting for a provider's limit re-checks it.
_LIMIT_POLL = 0.005


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What lifecycle hooks learn about a request."""

    id: int
    kind: Literal["chat", "stream"]
    messages: tuple[Message, ...]
    params: GenerationParams | None
    started: float


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """Tokens one provider consumed for one attempt, as the vendor reported them.

    ``complete`` is False for a stream that failed or was cancelled: ``usage`` is then
    whatever the vendor reported before the end (often None: vendors report usage last).
    """

    provider: str
    model: str | None
    usage: Usage | None
    cost: Decimal | None
    request_id: str | None
    kind: Literal["chat", "stream"]
    complete: bool = True


UsageCallback = Callable[[UsageEvent], Awaitable[None] | None]


def _coerce_params(
    params: GenerationParams | Mapping[str, Any] | None,
) -> GenerationParams | None:
    if params is None or isinstance(params, GenerationParams):
        return params
    return GenerationParams(**params)


def _estimate_tokens(messages: tuple[Message, ...]) -> int:
    # Only for admission against tokens_per_minute; the real count replaces it afterwards.
    return sum(len(m.content) for m in messages) // 4 + 1


class Router:
    """Routes requests over providers with retries, failover and circuit breaking.

    ``strategy``: a registered strategy name (``round-robin``, ``weighted``, ``random``,
    ``first-available``, ``best-available``, ``least-busy``, ``lowest-cost``, ``latency``, or
    one from a plugin) or a strategy object.
    ``deadline``: seconds bounding every request across retries and fallbacks.
    ``first_chunk_timeout``: seconds a stream may wait for its first text before failing over.
    ``hedge_after``: seconds (or ``"p95"`` of the first provider's latency) after which an
    unanswered request is also sent to the next provider; the first answer wins.
    ``on_limit``: ``"failover"`` (default) sends a request that would exceed a provider's
    limits elsewhere; ``"wait"`` waits for capacity up to the deadline.
    ``prices``: ``{provider name: {model: Price}}`` overriding providers' own price tables.
    ``budget``: roubles the whole router may spend; ``on_usage``: called after every attempt
    that consumed tokens (sync or async; a failing callback is logged, never raised).
    """

    def __init__(
        self,
        strategy: str | Strategy = "round-robin",
        *,
        deadline: float | None = None,
        first_chunk_timeout: float | None = None,
        hedge_after: float | Literal["p95"] | None = None,
        on_limit: Literal["failover", "wait"] = "failover",
        prices: Mapping[str, PriceTable] | None = None,
        budget: Decimal | float | str | None = None,
        on_usage: UsageCallback | None = None,
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
        for label, value in (("deadline", deadline), ("first_chunk_timeout", first_chunk_timeout)):
            if value is not None and value <= 0:
                raise ValueError(f"{label} must be a positive number of seconds")
        if hedge_after is not None and hedge_after != "p95" and not hedge_after >= 0:
            raise ValueError("hedge_after must be >= 0 seconds or 'p95'")
        if on_limit not in ("failover", "wait"):
            raise ValueError("on_limit must be 'failover' or 'wait'")
        self.deadline = deadline
        self.first_chunk_timeout = first_chunk_timeout
        self.hedge_after = hedge_after
        self.on_limit = on_limit
        self.prices = dict(prices or {})
        self.budget = None if budget is None else Decimal(str(budget))
        self.on_usage = on_usage
        self.breaker_config = breaker or BreakerConfig()
        self.clock = clock
        self._slots: list[ProviderSlot] = []
        self._by_name: dict[str, ProviderSlot] = {}
        self._spent = Decimal(0)
        self._hooks_version = -1
        self._hooks: Any = None  # pluggy HookRelay when some plugin implements lifecycle hooks

    # -- providers ----------------------------------------------------------------------

    def add_provider(
        self,
        provider: BaseProvider,
        *,
        weight: float = 1.0,
        priority: int | None = None,
        timeout: float | None = None,
        first_chunk_timeout: float | None = None,
        limits: ProviderLimits | None = None,
        prices: PriceTable | None = None,
        budget: Decimal | float | str | None = None,
    ) -> None:
        """Add ``provider``; its ``config.name`` must be unique in this router.

        ``weight`` feeds ``weighted``/``random``; ``priority`` (lower first; default
        insertion order) feeds ``first-available``; ``timeout`` bounds one attempt;
        ``first_chunk_timeout`` overrides the router's for this provider; ``limits`` caps
        in-flight requests and per-minute requests/tokens; ``prices`` overrides the
        provider's price table; ``budget`` (roubles) stops traffic once spent.
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
        for label, value in (("timeout", timeout), ("first_chunk_timeout", first_chunk_timeout)):
            if value is not None and value <= 0:
                raise ValueError(f"{label} must be a positive number of seconds")
        table = prices if prices is not None else self.prices.get(name, provider.prices)
        slot = ProviderSlot(
            provider,
            weight=weight,
            priority=len(self._slots) if priority is None else priority,
            breaker=CircuitBreaker(self.breaker_config, self.clock),
            stats=HealthStats(self.breaker_config.window, self.clock),
            timeout=timeout,
            first_chunk_timeout=first_chunk_timeout or self.first_chunk_timeout,
            limits=LimitState(limits, self.clock) if limits is not None else None,
            prices=table or None,
            budget=None if budget is None else Decimal(str(budget)),
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
        if self.budget is not None and self._spent >= self.budget:
            raise NoProvidersError(
                f"The router's budget of {self.budget} RUB is spent ({self._spent} RUB); "
                "raise Router(budget=...) to continue"
            )
        funded = [slot for slot in self._slots if not slot.over_budget()]
        if not funded:
            raise NoProvidersError(
                "Every provider has spent its budget; raise add_provider(budget=...)"
            )
        admitted = [slot for slot in funded if slot.breaker.admits()]
        if not admitted:
            # Every breaker is open: try the provider that failed longest ago rather than
            # failing without asking anyone.
            return [min(funded, key=lambda s: s.last_failure_at)]
        return list(self.strategy.order(admitted))

    # -- lifecycle hooks ----------------------------------------------------------------

    def _lifecycle(self) -> Any:
        """The hook relay when a plugin implements lifecycle hooks, else None (zero cost)."""
        registry = self.registry
        if registry.version != self._hooks_version:
            hook = registry.plugin_manager.hook
            active = any(getattr(hook, name).get_hookimpls() for name in LIFECYCLE_HOOKS)
            self._hooks = hook if active else None
            self._hooks_version = registry.version
        return self._hooks

    @staticmethod
    async def _emit(hooks: Any, name: str, **kwargs: Any) -> None:
        try:
            for result in getattr(hooks, name)(**kwargs):
                if inspect.isawaitable(result):
                    await result
        except Exception:
            logger.warning("lifecycle hook %s failed", name, exc_info=True)

    async def _report_usage(self, event: UsageEvent) -> None:
        if self.on_usage is None:
            return
        try:
            result = self.on_usage(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.warning("on_usage callback failed", exc_info=True)

    def _account(
        self, slot: ProviderSlot, usage: Usage | None, model: str | None
    ) -> Decimal | None:
        cost = cost_of(usage, find_price(slot.prices, model or slot.provider.config.model))
        slot.stats.record_usage(usage, cost)
        if cost is not None:
            self._spent += cost
        return cost

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
        hooks = self._lifecycle()
        request = None
        if hooks is not None:
            request = RequestInfo(next(_request_ids), "chat", msgs, gen_params, time.monotonic())
            await self._emit(hooks, "on_request_start", request=request)
        deadline = self.deadline if deadline is None else deadline
        try:
            if deadline is None:
                result = await self._chat(plan, msgs, gen_params, None, hooks, request)
            else:
                with anyio.move_on_after(deadline) as scope:
                    result = await self._chat(plan, msgs, gen_params, scope, hooks, request)
                if scope.cancelled_caught:
                    raise DeadlineExceededError(
                        f"Request deadline of {deadline:g}s exceeded across retries and "
                        "fallbacks; raise `deadline` or lower provider timeouts"
                    )
        except Exception as exc:
            if hooks is not None:
                await self._emit(hooks, "on_request_end", request=request, result=None, error=exc)
            raise
        if hooks is not None:
            await self._emit(hooks, "on_request_end", request=request, result=result, error=None)
        return result

    async def _chat(
        self,
        plan: list[ProviderSlot],
        msgs: tuple[Message, ...],
        params: GenerationParams | None,
        scope: anyio.CancelScope | None,
        hooks: Any,
        request: RequestInfo | None,
    ) -> Completion:
        attempts: list[Attempt] = []
        token = retries_managed_by_caller.set(True)
        try:
            if self.hedge_after is not None and len(plan) > 1:
                result = await self._hedged(plan[:2], msgs, params, scope, hooks, request, attempts)
                if result is not None:
                    return result
                plan = plan[2:]
            for index, slot in enumerate(plan):
                result = await self._try_provider(
                    slot, msgs, params, scope, hooks, request, attempts
                )
                if result is not None:
                    return result
                if hooks is not None and index + 1 < len(plan):
                    await self._emit(
                        hooks,
                        "on_fallback",
                        request=request,
                        from_provider=slot.name,
                        error=attempts[-1].error,
                    )
            held = self._held_provider({a.provider for a in attempts}, scope)
            if held is not None:
                slot, wait = held
                logger.info("waiting %.2fs for %s's Retry-After to pass", wait, slot.name)
                await anyio.sleep(wait)
                result = await self._try_provider(
                    slot, msgs, params, scope, hooks, request, attempts
                )
                if result is not None:
                    return result
        finally:
            retries_managed_by_caller.reset(token)
        raise AllProvidersFailedError(attempts)

    async def _hedged(
        self,
        pair: list[ProviderSlot],
        msgs: tuple[Message, ...],
        params: GenerationParams | None,
        scope: anyio.CancelScope | None,
        hooks: Any,
        request: RequestInfo | None,
        attempts: list[Attempt],
    ) -> Completion | None:
        """Ask ``pair[0]``; if it has not answered after the hedge delay (or failed), ask
        ``pair[1]`` too. The first answer wins and the other call is cancelled."""
        primary, backup = pair
        if self.hedge_after == "p95":
            delay = primary.stats.percentile(0.95) or 1.0
        else:
            delay = float(self.hedge_after or 0)
        winner: list[Completion] = []
        primary_done = anyio.Event()

        async with anyio.create_task_group() as tg:

            async def run(slot: ProviderSlot) -> None:
                result = await self._try_provider(
                    slot, msgs, params, scope, hooks, request, attempts
                )
                if result is not None and not winner:
                    winner.append(result)
                    tg.cancel_scope.cancel()

            async def run_primary() -> None:
                try:
                    await run(primary)
                finally:
                    primary_done.set()

            async def run_backup() -> None:
                with anyio.move_on_after(delay):
                    await primary_done.wait()
                if not winner:
                    await run(backup)

            tg.start_soon(run_primary)
            tg.start_soon(run_backup)
        return winner[0] if winner else None

    async def _acquire_limit(
        self, slot: ProviderSlot, estimate: int, until: float | None
    ) -> str | None:
        """Reserve room under the provider's limits; the refusing limit's name if none."""
        limits = slot.limits
        if limits is None:
            return None
        refused = limits.try_acquire(estimate)
        if refused is None or self.on_limit == "failover":
            return refused
        while refused is not None:
            if until is not None and anyio.current_time() + _LIMIT_POLL >= until:
                return refused
            await anyio.sleep(_LIMIT_POLL)
            refused = limits.try_acquire(estimate)
        return None

    async def _try_provider(
        self,
        slot: ProviderSlot,
        msgs: tuple[Message, ...],
        params: GenerationParams | None,
        scope: anyio.CancelScope | None,
        hooks: Any,
        request: RequestInfo | None,
        attempts: list[Attempt],
    ) -> Completion | None:
        """Attempt one provider with retries; its Completion, or None after recording why not."""
        provider = slot.provider
        name = provider.config.name
        if params is not None:
            try:
                provider.validate_params(params)
            except ProviderError as exc:
                attempts.append(Attempt(name, provider._stamp(exc), 0))
                return None
        policy = provider.retry_policy()
        estimate = _estimate_tokens(msgs) if slot.limits is not None else 0
        attempt = 0
        while True:
            attempt += 1
            refused = await self._acquire_limit(
                slot, estimate, None if scope is None else scope.deadline
            )
            if refused is not None:
                attempts.append(
                    Attempt(
                        name,
                        RateLimitError(f"local limit {refused} reached", provider=name),
                        attempt,
                    )
                )
                return None
            if hooks is not None:
                await self._emit(
                    hooks, "on_attempt_start", request=request, provider=name, attempt=attempt
                )
            self._admit(slot)
            stats = slot.stats
            stats.in_flight += 1
            actual_tokens: int | None = None
            started = time.perf_counter()
            try:
                if slot.timeout is None:
                    completion = await provider.chat(msgs, params)
                else:
                    with anyio.move_on_after(slot.timeout) as attempt_scope:
                        completion = await provider.chat(msgs, params)
                    if attempt_scope.cancelled_caught:
                        raise ProviderTimeoutError(
                            f"Attempt timeout of {slot.timeout:g}s fired; raise "
                            "add_provider(timeout=...) if the model needs longer",
                            provider=name,
                        )
            except ProviderError as exc:
                error: ProviderError = provider._stamp(exc)
            except Exception as exc:
                mapped = map_transport_error(exc, name)
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
                usage = completion.usage
                actual_tokens = usage.total_tokens if usage is not None else None
                cost = (
                    self._account(slot, usage, completion.model)
                    if (slot.prices is not None or usage is not None)
                    else None
                )
                completion = replace(
                    completion,
                    provider=name,
                    latency=completion.latency or latency,
                    cost=cost if completion.cost is None else completion.cost,
                )
                if hooks is not None:
                    await self._emit(
                        hooks,
                        "on_attempt_success",
                        request=request,
                        provider=name,
                        attempt=attempt,
                        latency=latency,
                    )
                if self.on_usage is not None:
                    await self._report_usage(
                        UsageEvent(
                            name,
                            completion.model,
                            usage,
                            completion.cost,
                            completion.request_id,
                            "chat",
                        )
                    )
                return completion
            finally:
                stats.in_flight -= 1
                if slot.limits is not None:
                    slot.limits.release(estimate, actual_tokens)
            elapsed = time.perf_counter() - started
            stats.record_failure(error)
            slot.breaker.on_failure(error)
            attempts.append(Attempt(name, error, attempt, elapsed))
            if hooks is not None:
                await self._emit(
                    hooks,
                    "on_attempt_error",
                    request=request,
                    provider=name,
                    attempt=attempt,
                    latency=elapsed,
                    error=error,
                )
            delay = self._retry_delay(slot, policy, attempt, error)
            if delay is None or not self._fits(scope, delay):
                logger.info("%s failed (%s); failing over", name, error)
                return None
            logger.info(
                "%s failed (%s); retry %d in %.2fs", name, type(error).__name__, attempt, delay
            )
            if hooks is not None:
                await self._emit(
                    hooks,
                    "on_retry",
                    request=request,
                    provider=name,
                    attempt=attempt,
                    delay=delay,
                    error=error,
                )
            await anyio.sleep(delay)

    def _held_provider(
        self, tried: set[str], scope: anyio.CancelScope | None
    ) -> tuple[ProviderSlot, float] | None:
        """After every planned provider failed: one that was skipped only because of a
        ``Retry-After`` hold short enough to wait for (within its ``backoff_max`` and the
        deadline), with the seconds to wait."""
        best: tuple[ProviderSlot, float] | None = None
        for slot in self._slots:
            wait = slot.breaker.held_for()
            if (
                slot.name in tried
                or wait <= 0
                or slot.breaker.state == "open"
                or slot.over_budget()
                or wait > slot.provider.config.backoff_max
                or not self._fits(scope, wait)
            ):
                continue
            if best is None or wait < best[1]:
                best = (slot, wait)
        return best

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
        # A breaker that just opened means "stop asking this provider".
        if delay is None or slot.breaker.state == "open":
            return None
        return delay

    @staticmethod
    def _fits(scope: anyio.CancelScope | None, delay: float) -> bool:
        return scope is None or anyio.current_time() + delay < scope.deadline

    # -- streaming ------------------------------------------------------------------------

    async def route_stream(
        self,
        prompt: str,
        params: GenerationParams | Mapping[str, Any] | None = None,
        *,
        deadline: float | None = None,
        provider: str | None = None,
    ) -> AsyncGenerator[str, None]:
        """Stream the answer to ``prompt`` as text deltas."""
        chunks = self.chat_stream(prompt, params, deadline=deadline, provider=provider)
        async with contextlib.aclosing(chunks):  # closing us closes the provider's stream now
            async for chunk in chunks:
                if chunk.delta:
                    yield chunk.delta

    async def chat_stream(
        self,
        messages: MessagesInput,
        params: GenerationParams | Mapping[str, Any] | None = None,
        *,
        deadline: float | None = None,
        provider: str | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        """Stream an answer as :class:`Chunk`\\ s; the last one has ``finish_reason``.

        Fails over only before the first text is yielded. Close it early with
        ``contextlib.aclosing`` so the connection is released at once.
        """
        msgs = coerce_messages(messages)
        gen_params = _coerce_params(params)
        plan = self._plan(provider)
        hooks = self._lifecycle()
        request = None
        if hooks is not None:
            request = RequestInfo(next(_request_ids), "stream", msgs, gen_params, time.monotonic())
            await self._emit(hooks, "on_request_start", request=request)
        deadline = self.deadline if deadline is None else deadline
        ends_at = None if deadline is None else anyio.current_time() + deadline
        attempts: list[Attempt] = []
        error_out: BaseException | None = None
        try:
            for index, slot in enumerate(plan):
                committed = await self._open_stream(
                    slot, msgs, gen_params, ends_at, hooks, request, attempts
                )
                if committed is not None:
                    stream, first, started, estimate = committed
                    rest = self._rest(slot, stream, first, started, ends_at, estimate)
                    async with contextlib.aclosing(rest):
                        async for chunk in rest:
                            yield chunk
                    return
                if hooks is not None and index + 1 < len(plan):
                    await self._emit(
                        hooks,
                        "on_fallback",
                        request=request,
                        from_provider=slot.name,
                        error=attempts[-1].error,
                    )
            if deadline is not None and any(
                isinstance(a.error, DeadlineExceededError) for a in attempts
            ):
                raise DeadlineExceededError(
                    f"Request deadline of {deadline:g}s exceeded before the stream started"
                )
            raise AllProvidersFailedError(attempts)
        except BaseException as exc:
            error_out = exc
            raise
        finally:
            if hooks is not None:
                with anyio.CancelScope(shield=True):
                    await self._emit(
                        hooks,
                        "on_request_end",
                        request=request,
                        result=None,
                        error=error_out if isinstance(error_out, Exception) else None,
                    )

    async def _open_stream(
        self,
        slot: ProviderSlot,
        msgs: tuple[Message, ...],
        params: GenerationParams | None,
        ends_at: float | None,
        hooks: Any,
        request: RequestInfo | None,
        attempts: list[Attempt],
    ) -> tuple[AsyncIterator[Chunk], Chunk, float, int] | None:
        """Start streams on ``slot`` (with retries) until one yields text; None if it never does."""
        prov = slot.provider
        name = prov.config.name
        if params is not None:
            try:
                prov.validate_params(params)
            except ProviderError as exc:
                attempts.append(Attempt(name, prov._stamp(exc), 0))
                return None
        policy = prov.retry_policy()
        estimate = _estimate_tokens(msgs) if slot.limits is not None else 0
        attempt = 0
        while True:
            attempt += 1
            refused = await self._acquire_limit(slot, estimate, ends_at)
            if refused is not None:
                attempts.append(
                    Attempt(
                        name,
                        RateLimitError(f"local limit {refused} reached", provider=name),
                        attempt,
                    )
                )
                return None
            if hooks is not None:
                await self._emit(
                    hooks, "on_attempt_start", request=request, provider=name, attempt=attempt
                )
            self._admit(slot)
            slot.stats.in_flight += 1
            started = time.perf_counter()
            stream = prov.stream(msgs, params)
            try:
                first = await self._first_text(slot, stream, ends_at)
            except ProviderError as exc:
                error: ProviderError = prov._stamp(exc)
            except Exception as exc:
                mapped = map_transport_error(exc, name)
                if mapped is None:
                    await self._release(slot, stream, estimate)
                    raise
                mapped.__cause__ = exc
                error = mapped
            except BaseException:
                await self._release(slot, stream, estimate)
                raise
            else:
                latency = time.perf_counter() - started
                slot.stats.record_first_chunk(latency)
                if hooks is not None:
                    await self._emit(
                        hooks,
                        "on_stream_first_chunk",
                        request=request,
                        provider=name,
                        latency=latency,
                    )
                return stream, first, started, estimate
            await self._release(slot, stream, estimate)
            elapsed = time.perf_counter() - started
            slot.stats.record_failure(error)
            slot.breaker.on_failure(error)
            attempts.append(Attempt(name, error, attempt, elapsed))
            if hooks is not None:
                await self._emit(
                    hooks,
                    "on_attempt_error",
                    request=request,
                    provider=name,
                    attempt=attempt,
                    latency=elapsed,
                    error=error,
                )
            delay = self._retry_delay(slot, policy, attempt, error)
            if delay is None or (ends_at is not None and anyio.current_time() + delay >= ends_at):
                return None
            if hooks is not None:
                await self._emit(
                    hooks,
                    "on_retry",
                    request=request,
                    provider=name,
                    attempt=attempt,
                    delay=delay,
                    error=error,
                )
            await anyio.sleep(delay)

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
        self, slot: ProviderSlot, stream: AsyncIterator[Chunk], ends_at: float | None
    ) -> Chunk:
        """Read until the first chunk with text or a finish (empty chunks are not delivered)."""
        name = slot.name
        limit = slot.first_chunk_timeout
        until = ends_at
        if limit is not None:
            first_deadline = anyio.current_time() + limit
            until = first_deadline if until is None else min(until, first_deadline)
        while True:
            try:
                chunk = await self._next(stream, until, name)
            except StopAsyncIteration:
                raise StreamError(
                    "Stream ended before any text or final chunk", provider=name
                ) from None
            except DeadlineExceededError:
                if limit is not None and (
                    ends_at is None or (until is not None and until < ends_at)
                ):
                    raise ProviderTimeoutError(
                        f"First-chunk timeout of {limit:g}s fired: no text yet; "
                        "raise first_chunk_timeout if this model thinks long",
                        provider=name,
                    ) from None
                raise
            if chunk.delta or chunk.finish_reason is not None:
                return chunk

    async def _rest(
        self,
        slot: ProviderSlot,
        stream: AsyncIterator[Chunk],
        first: Chunk,
        started: float,
        ends_at: float | None,
        estimate: int,
    ) -> AsyncGenerator[Chunk, None]:
        name = slot.provider.config.name
        received: list[str] = []
        chunk = first
        usage: Usage | None = None
        model: str | None = None
        finished = False
        cost: Decimal | None = None
        try:
            while True:
                if chunk.provider != name:
                    chunk = replace(chunk, provider=name)
                received.append(chunk.delta)
                usage = chunk.usage or usage
                model = chunk.model or model
                if chunk.finish_reason is not None:
                    finished = True
                    cost = self._account(slot, usage, model)
                    if cost is not None:
                        chunk = replace(chunk, cost=cost)
                    yield chunk
                    # Drain so the provider can close its response cleanly.
                    while True:
                        try:
                            await self._next(stream, ends_at, name)
                        except StopAsyncIteration:
                            break
                    break
                yield chunk
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
            if not finished:
                # Whatever the vendor reported before the end is still consumed.
                self._account(slot, usage, model)
                if self.on_usage is not None:
                    with anyio.CancelScope(shield=True):
                        await self._report_usage(
                            UsageEvent(name, model, usage, None, chunk.request_id, "stream", False)
                        )
            raise
        finally:
            await self._release(slot, stream, estimate, usage.total_tokens if usage else None)
        if finished:
            slot.stats.record_success(time.perf_counter() - started)
            slot.breaker.on_success()
            if self.on_usage is not None:
                await self._report_usage(
                    UsageEvent(name, model, usage, cost, chunk.request_id, "stream")
                )

    @staticmethod
    async def _release(
        slot: ProviderSlot,
        stream: AsyncIterator[Chunk],
        estimate: int,
        actual_tokens: int | None = None,
    ) -> None:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await aclose()
                except Exception:  # a provider failing while closing must not mask the cause
                    logger.debug("closing %s stream failed", slot.name, exc_info=True)
        slot.stats.in_flight -= 1
        if slot.limits is not None:
            slot.limits.release(estimate, actual_tokens)

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

    async def run_health_checks(self, interval: float = 30.0) -> None:
        """Actively check every provider each ``interval`` seconds, forever.

        Uses each provider's ``health_check()`` (a free call such as listing models, never a
        billable completion). A failed check counts as a failure for the breaker; a passing
        check lets a half-open breaker close. Run it in a task group; cancel it to stop.
        """
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        probe_error = ProviderError("active health check failed", transient=True)
        while True:
            for name, healthy in (await self.health_check()).items():
                slot = self._by_name.get(name)
                if slot is None:
                    continue
                if healthy:
                    if slot.breaker.state != "closed" and slot.breaker.acquire():
                        slot.breaker.on_success()
                else:
                    slot.breaker.on_failure(probe_error)
            await anyio.sleep(interval)

    def stats(self) -> dict[str, Any]:
        """Per-provider health, breaker state, counts, latency, usage and cost (JSON-ready)."""
        return {
            "strategy": self.strategy_name,
            "spent": str(self._spent),
            "budget": None if self.budget is None else str(self.budget),
            "providers": {
                slot.name: {
                    "breaker": slot.breaker.snapshot(),
                    **slot.stats.snapshot(),
                    "budget": None if slot.budget is None else str(slot.budget),
                    "limits": None
                    if slot.limits is None
                    else {"in_flight": slot.limits.in_flight, "peak": slot.limits.peak_in_flight},
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
