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
from typing import TYPE_CHECKING, Any, Literal, TypeVar

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
T = TypeVar("T")
#: An opened stream: the provider's iterator, its first text chunk, when the attempt
#: started (perf_counter), and the token estimate reserved under the provider's limits.
_Opened = tuple[AsyncIterator[Chunk], Chunk, float, int]
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


@dataclass(slots=True)
class _Call:
    """One router call: its validated input and what its attempts share."""

    messages: tuple[Message, ...]
    params: GenerationParams | None
    hooks: Any  # the lifecycle hook relay, or None when no plugin listens
    request: RequestInfo | None
    attempts: list[Attempt]


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
        call = self._start_call("chat", messages, params)
        plan = self._plan(provider)
        hooks = call.hooks
        if hooks is not None:
            await self._emit(hooks, "on_request_start", request=call.request)
        deadline = self.deadline if deadline is None else deadline
        try:
            if deadline is None:
                result = await self._chat(call, plan, None)
            else:
                with anyio.move_on_after(deadline) as scope:
                    result = await self._chat(call, plan, scope.deadline)
                if scope.cancelled_caught:
                    raise DeadlineExceededError(
                        f"Request deadline of {deadline:g}s exceeded across retries and "
                        "fallbacks; raise `deadline` or lower provider timeouts"
                    )
        except Exception as exc:
            if hooks is not None:
                await self._emit(
                    hooks, "on_request_end", request=call.request, result=None, error=exc
                )
            raise
        if hooks is not None:
            await self._emit(
                hooks, "on_request_end", request=call.request, result=result, error=None
            )
        return result

    def _start_call(
        self,
        kind: Literal["chat", "stream"],
        messages: MessagesInput,
        params: GenerationParams | Mapping[str, Any] | None,
    ) -> _Call:
        """Validate the input (before any network call) and gather what attempts share."""
        msgs = coerce_messages(messages)
        gen_params = _coerce_params(params)
        hooks = self._lifecycle()
        request = None
        if hooks is not None:
            request = RequestInfo(next(_request_ids), kind, msgs, gen_params, time.monotonic())
        return _Call(msgs, gen_params, hooks, request, [])

    async def _chat(self, call: _Call, plan: list[ProviderSlot], until: float | None) -> Completion:
        token = retries_managed_by_caller.set(True)
        try:
            won = await self._first_success(
                call, plan, until, lambda slot: self._try_provider(call, slot, until)
            )
        finally:
            retries_managed_by_caller.reset(token)
        if won is None:
            raise AllProvidersFailedError(call.attempts)
        return won[1]

    async def _first_success(
        self,
        call: _Call,
        plan: list[ProviderSlot],
        until: float | None,
        attempt: Callable[[ProviderSlot], Awaitable[T | None]],
        discard: Callable[[ProviderSlot, T], Awaitable[None]] | None = None,
    ) -> tuple[ProviderSlot, T] | None:
        """Go down ``plan`` until ``attempt`` succeeds: hedging the first two providers when
        configured, then one by one, then a provider held off by a short Retry-After."""
        if self.hedge_after is not None and len(plan) > 1:
            won = await self._hedged(plan[0], plan[1], attempt, discard)
            if won is not None:
                return won
            plan = plan[2:]
        for index, slot in enumerate(plan):
            result = await attempt(slot)
            if result is not None:
                return slot, result
            if call.hooks is not None and index + 1 < len(plan):
                await self._emit(
                    call.hooks,
                    "on_fallback",
                    request=call.request,
                    from_provider=slot.name,
                    error=call.attempts[-1].error,
                )
        held = self._held_provider({a.provider for a in call.attempts}, until)
        if held is not None:
            slot, wait = held
            logger.info("waiting %.2fs for %s's Retry-After to pass", wait, slot.name)
            await anyio.sleep(wait)
            result = await attempt(slot)
            if result is not None:
                return slot, result
        return None

    async def _hedged(
        self,
        primary: ProviderSlot,
        backup: ProviderSlot,
        attempt: Callable[[ProviderSlot], Awaitable[T | None]],
        discard: Callable[[ProviderSlot, T], Awaitable[None]] | None,
    ) -> tuple[ProviderSlot, T] | None:
        """Ask ``primary``; if it has not answered (or, for a stream, produced its first text)
        after the hedge delay, or it failed, ask ``backup`` too. The first success wins and
        the other attempt is cancelled; a success that loses the race is discarded."""
        if self.hedge_after == "p95":
            delay = primary.stats.percentile(0.95) or 1.0
        else:
            delay = float(self.hedge_after or 0)
        winner: list[tuple[ProviderSlot, T]] = []
        primary_done = anyio.Event()

        async with anyio.create_task_group() as tg:

            async def run(slot: ProviderSlot) -> None:
                result = await attempt(slot)
                if result is None:
                    return
                if winner:
                    if discard is not None:
                        await discard(slot, result)
                    return
                winner.append((slot, result))
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
        self, call: _Call, slot: ProviderSlot, until: float | None
    ) -> Completion | None:
        """Attempt one provider with retries; its Completion, or None after recording why not."""
        provider = slot.provider
        name = provider.config.name
        if not self._accepts(call, slot):
            return None
        policy = provider.retry_policy()
        estimate = _estimate_tokens(call.messages) if slot.limits is not None else 0
        attempt = 0
        while True:
            attempt += 1
            if not await self._begin_attempt(call, slot, attempt, estimate, until):
                return None
            actual_tokens: int | None = None
            started = time.perf_counter()
            try:
                if slot.timeout is None:
                    completion = await provider.chat(call.messages, call.params)
                else:
                    with anyio.move_on_after(slot.timeout) as attempt_scope:
                        completion = await provider.chat(call.messages, call.params)
                    if attempt_scope.cancelled_caught:
                        raise ProviderTimeoutError(
                            f"Attempt timeout of {slot.timeout:g}s fired; raise "
                            "add_provider(timeout=...) if the model needs longer",
                            provider=name,
                        )
            except BaseException as exc:
                error = self._as_provider_error(slot, exc)
                if error is None:
                    raise
            else:
                latency = time.perf_counter() - started
                slot.stats.record_success(latency)
                slot.breaker.on_success()
                usage = completion.usage
                actual_tokens = usage.total_tokens if usage is not None else None
                cost = self._account(slot, usage, completion.model)
                completion = replace(
                    completion,
                    provider=name,
                    latency=completion.latency or latency,
                    cost=cost if completion.cost is None else completion.cost,
                )
                if call.hooks is not None:
                    await self._emit(
                        call.hooks,
                        "on_attempt_success",
                        request=call.request,
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
                self._end_attempt(slot, estimate, actual_tokens)
            delay = await self._attempt_failed(
                call, slot, policy, attempt, error, time.perf_counter() - started, until
            )
            if delay is None:
                return None
            await anyio.sleep(delay)

    # -- what every attempt does, chat or stream -------------------------------------------

    @staticmethod
    def _accepts(call: _Call, slot: ProviderSlot) -> bool:
        """Whether the provider accepts the parameters (checked before any network call)."""
        if call.params is None:
            return True
        try:
            slot.provider.validate_params(call.params)
        except ProviderError as exc:
            call.attempts.append(Attempt(slot.name, slot.provider._stamp(exc), 0))
            return False
        return True

    async def _begin_attempt(
        self, call: _Call, slot: ProviderSlot, attempt: int, estimate: int, until: float | None
    ) -> bool:
        """Reserve room under the provider's limits and count the attempt in flight.

        False (and the refusal recorded as a RateLimitError attempt) when a limit refused.
        """
        refused = await self._acquire_limit(slot, estimate, until)
        if refused is not None:
            error = RateLimitError(f"local limit {refused} reached", provider=slot.name)
            call.attempts.append(Attempt(slot.name, error, attempt))
            return False
        if call.hooks is not None:
            await self._emit(
                call.hooks,
                "on_attempt_start",
                request=call.request,
                provider=slot.name,
                attempt=attempt,
            )
        if not slot.breaker.acquire():
            # Planned providers were admitted; one whose breaker closed in on it since (or
            # the last resort while all are open) still goes, as a probe.
            slot.breaker.force_acquire()
        slot.stats.in_flight += 1
        return True

    @staticmethod
    def _end_attempt(slot: ProviderSlot, estimate: int, actual_tokens: int | None) -> None:
        slot.stats.in_flight -= 1
        if slot.limits is not None:
            slot.limits.release(estimate, actual_tokens)

    @staticmethod
    def _as_provider_error(slot: ProviderSlot, exc: BaseException) -> ProviderError | None:
        """The typed error for a failed attempt; None for what must propagate unchanged
        (a plugin's bug, a cancellation), after telling the breaker the attempt ended."""
        if isinstance(exc, ProviderError):
            return slot.provider._stamp(exc)
        mapped = map_transport_error(exc, slot.name) if isinstance(exc, Exception) else None
        if mapped is None:
            slot.breaker.on_cancel()
            return None
        mapped.__cause__ = exc
        return mapped

    async def _attempt_failed(
        self,
        call: _Call,
        slot: ProviderSlot,
        policy: RetryPolicy,
        attempt: int,
        error: ProviderError,
        elapsed: float,
        until: float | None,
    ) -> float | None:
        """Record a failed attempt; seconds to wait before retrying it, or None to move on."""
        name = slot.name
        slot.stats.record_failure(error)
        slot.breaker.on_failure(error)
        call.attempts.append(Attempt(name, error, attempt, elapsed))
        hooks = call.hooks
        if hooks is not None:
            await self._emit(
                hooks,
                "on_attempt_error",
                request=call.request,
                provider=name,
                attempt=attempt,
                latency=elapsed,
                error=error,
            )
        delay = None
        # Retry only transient errors, and not once the breaker opened ("stop asking").
        if error.transient and slot.breaker.state != "open":
            delay = policy.delay(attempt, error.retry_after)
        if delay is None or (until is not None and anyio.current_time() + delay >= until):
            logger.info("%s failed (%s); failing over", name, error)
            return None
        logger.info("%s failed (%s); retry %d in %.2fs", name, type(error).__name__, attempt, delay)
        if hooks is not None:
            await self._emit(
                hooks,
                "on_retry",
                request=call.request,
                provider=name,
                attempt=attempt,
                delay=delay,
                error=error,
            )
        return delay

    def _held_provider(
        self, tried: set[str], until: float | None
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
                or (until is not None and anyio.current_time() + wait >= until)
            ):
                continue
            if best is None or wait < best[1]:
                best = (slot, wait)
        return best

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
        call = self._start_call("stream", messages, params)
        plan = self._plan(provider)
        hooks = call.hooks
        if hooks is not None:
            await self._emit(hooks, "on_request_start", request=call.request)
        deadline = self.deadline if deadline is None else deadline
        until = None if deadline is None else anyio.current_time() + deadline
        error_out: BaseException | None = None
        try:
            opened = await self._first_success(
                call,
                plan,
                until,
                lambda slot: self._open_stream(call, slot, until),
                self._discard_stream,
            )
            if opened is not None:
                slot, (stream, first, started, estimate) = opened
                rest = self._rest(slot, stream, first, started, until, estimate)
                async with contextlib.aclosing(rest):
                    async for chunk in rest:
                        yield chunk
                return
            if deadline is not None and any(
                isinstance(a.error, DeadlineExceededError) for a in call.attempts
            ):
                raise DeadlineExceededError(
                    f"Request deadline of {deadline:g}s exceeded before the stream started"
                )
            raise AllProvidersFailedError(call.attempts)
        except BaseException as exc:
            error_out = exc
            raise
        finally:
            if hooks is not None:
                with anyio.CancelScope(shield=True):
                    await self._emit(
                        hooks,
                        "on_request_end",
                        request=call.request,
                        result=None,
                        error=error_out if isinstance(error_out, Exception) else None,
                    )

    async def _open_stream(
        self, call: _Call, slot: ProviderSlot, until: float | None
    ) -> _Opened | None:
        """Start streams on ``slot`` (with retries) until one yields text; None if it never does."""
        if not self._accepts(call, slot):
            return None
        policy = slot.provider.retry_policy()
        estimate = _estimate_tokens(call.messages) if slot.limits is not None else 0
        attempt = 0
        while True:
            attempt += 1
            if not await self._begin_attempt(call, slot, attempt, estimate, until):
                return None
            started = time.perf_counter()
            stream = slot.provider.stream(call.messages, call.params)
            try:
                first = await self._first_text(slot, stream, until)
            except BaseException as exc:
                await self._close(slot, stream)
                self._end_attempt(slot, estimate, None)
                error = self._as_provider_error(slot, exc)
                if error is None:
                    raise
            else:
                latency = time.perf_counter() - started
                slot.stats.record_first_chunk(latency)
                if call.hooks is not None:
                    await self._emit(
                        call.hooks,
                        "on_stream_first_chunk",
                        request=call.request,
                        provider=slot.name,
                        latency=latency,
                    )
                return stream, first, started, estimate
            delay = await self._attempt_failed(
                call, slot, policy, attempt, error, time.perf_counter() - started, until
            )
            if delay is None:
                return None
            await anyio.sleep(delay)

    async def _discard_stream(self, slot: ProviderSlot, opened: _Opened) -> None:
        """Close a stream that opened but lost a hedge race."""
        stream, _, _, estimate = opened
        await self._close(slot, stream)
        self._end_attempt(slot, estimate, None)
        slot.breaker.on_cancel()

    @staticmethod
    async def _next(stream: AsyncIterator[Chunk], until: float | None, name: str) -> Chunk:
        token = retries_managed_by_caller.set(True)
        try:
            if until is None:
                return await stream.__anext__()
            with anyio.move_on_after(until - anyio.current_time()):
                return await stream.__anext__()
            raise DeadlineExceededError("Request deadline exceeded while streaming", provider=name)
        finally:
            retries_managed_by_caller.reset(token)

    async def _first_text(
        self, slot: ProviderSlot, stream: AsyncIterator[Chunk], until: float | None
    ) -> Chunk:
        """Read until the first chunk with text or a finish (empty chunks are not delivered)."""
        name = slot.name
        limit = slot.first_chunk_timeout
        first_until = until
        if limit is not None:
            first_until = anyio.current_time() + limit
            if until is not None:
                first_until = min(until, first_until)
        while True:
            try:
                chunk = await self._next(stream, first_until, name)
            except StopAsyncIteration:
                raise StreamError(
                    "Stream ended before any text or final chunk", provider=name
                ) from None
            except DeadlineExceededError:
                if first_until != until:  # the first-chunk limit fired, not the deadline
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
        until: float | None,
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
                            await self._next(stream, until, name)
                        except StopAsyncIteration:
                            break
                    break
                yield chunk
                try:
                    chunk = await self._next(stream, until, name)
                except StopAsyncIteration:
                    raise StreamInterruptedError(
                        "Stream ended without a final chunk (truncated)",
                        provider=name,
                        partial_text="".join(received),
                    ) from None
                except Exception as exc:
                    cause = exc if isinstance(exc, ProviderError) else None
                    cause = cause or map_transport_error(exc, name)
                    if cause is None:
                        raise
                    raise StreamInterruptedError(
                        f"Stream from {name} failed after text was delivered: {cause.message}",
                        provider=name,
                        request_id=cause.request_id,
                        status_code=cause.status_code,
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
            await self._close(slot, stream)
            self._end_attempt(slot, estimate, usage.total_tokens if usage else None)
        if finished:
            slot.stats.record_success(time.perf_counter() - started)
            slot.breaker.on_success()
            if self.on_usage is not None:
                await self._report_usage(
                    UsageEvent(name, model, usage, cost, chunk.request_id, "stream")
                )

    @staticmethod
    async def _close(slot: ProviderSlot, stream: AsyncIterator[Chunk]) -> None:
        """Close a provider's stream (its HTTP response), even while being cancelled."""
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await aclose()
                except Exception:  # a provider failing while closing must not mask the cause
                    logger.debug("closing %s stream failed", slot.name, exc_info=True)

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
