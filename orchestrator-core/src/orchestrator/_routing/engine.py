"""The one attempt engine: chat, streams and hedging all go through :meth:`Engine.attempt`.

For each planned provider: check the parameters (before any network call), then per try
**admit** (breaker, limits — no call ever reaches a provider whose breaker refuses it),
**run** the operation under the attempt timeout and the request deadline, **classify** what
it raised (a typed :class:`ProviderError`, or something that must propagate unchanged: a
plugin's bug, a cancellation), **account** through the :class:`~.call.Lease` (released
exactly once, whatever happens) and decide: retry, fail over, or stop because the deadline
ran out — blaming exactly the provider that was running when it did.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

import anyio

from orchestrator._routing.call import Call, Lease
from orchestrator._routing.hedge import race
from orchestrator._secrets import get_logger
from orchestrator.errors import (
    Attempt,
    DeadlineExceededError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    StructuredOutputError,
)

if TYPE_CHECKING:
    from orchestrator.health import ProviderSlot
    from orchestrator.state import SharedState
    from orchestrator.types import Message

logger = get_logger("orchestrator.router")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
#: How often a request waiting for a provider's limit (``on_limit="wait"``) re-checks it:
#: limit state is shared by every event loop and thread, so no loop-bound event can wake it.
_LIMIT_POLL = 0.005


class Operation(Protocol[T_co]):
    """What one attempt does on a provider (a chat call, or opening a stream)."""

    #: The message of the timeout error, formatted with the seconds that ran out.
    timeout_message: str

    def timeout(self, slot: ProviderSlot) -> float | None:
        """Seconds one attempt may take on ``slot`` (None: no limit of its own)."""
        ...

    def run(self, call: Call, lease: Lease) -> Awaitable[T_co]:
        """Make the attempt. On success it releases ``lease`` or hands it on with its result;
        on failure it raises and the engine releases it."""
        ...


def estimate_tokens(messages: Sequence[Message]) -> int:
    # Only for admission against tokens_per_minute; the real count replaces it afterwards.
    return sum(len(m.content) for m in messages) // 4 + 1


def contract_error(slot: ProviderSlot, what: str, got: object, expected: str) -> ProviderError:
    """A provider broke the contract (e.g. ``chat()`` returned None): a failure named after it."""
    return ProviderError(
        f"{type(slot.provider).__name__}.{what} returned {type(got).__name__}, not {expected}; "
        "this is a bug in the provider plugin",
        provider=slot.name,
        transient=False,
    )


def classify(slot: ProviderSlot, exc: BaseException) -> ProviderError | None:
    """The typed error of a failed attempt; None for what must propagate unchanged."""
    if isinstance(exc, ProviderError):
        error = exc
    elif isinstance(exc, Exception):
        # Imported here: the httpx exception map is needed only once something failed, and
        # `from orchestrator import Router` should not pay for importing it.
        from orchestrator.providers.base import map_transport_error

        mapped = map_transport_error(exc, slot.name)
        if mapped is None:
            return None  # a plugin's bug
        mapped.__cause__ = exc
        error = mapped
    else:
        return None  # cancellation, KeyboardInterrupt, SystemExit, GeneratorExit
    if error.provider is None:
        error.provider = slot.name
    return error


def refusal(slot: ProviderSlot) -> ProviderError:
    """Why ``slot``'s breaker does not admit a request now."""
    breaker = slot.breaker
    held = breaker.held_for()
    if held > 0:
        return RateLimitError(
            f"held off for {held:.1f}s more by the provider's Retry-After",
            provider=slot.name,
            retry_after=held,
        )
    if breaker.state == "open":
        return ServiceUnavailableError(
            f"circuit breaker open for {breaker.open_for():.1f}s more after repeated failures",
            provider=slot.name,
        )
    return ServiceUnavailableError(
        "circuit breaker half-open: its probe request is still in flight", provider=slot.name
    )


def _unreserve(slot: ProviderSlot, estimate: int) -> None:
    """Give back what admission reserved locally (a shared state refused the attempt)."""
    if slot.limits is not None:
        slot.limits.refund(estimate)
    slot.breaker.on_cancel()


class Engine:
    """Walks a plan of providers with one :class:`Operation` until one succeeds."""

    __slots__ = ("hedge_after", "on_invalid_output", "on_limit", "sleep", "slots", "state")

    def __init__(
        self,
        slots: Sequence[ProviderSlot],
        *,
        on_limit: Literal["failover", "wait"],
        hedge_after: float | Literal["p95"] | None,
        sleep: Callable[[float], Awaitable[None]],
        on_invalid_output: Literal["failover", "raise"] = "failover",
        state: SharedState | None = None,
    ) -> None:
        self.slots = slots  # every provider of the router (for the Retry-After hold)
        self.on_limit = on_limit
        self.on_invalid_output = on_invalid_output
        self.hedge_after = hedge_after
        self.sleep = sleep  # backoff and Retry-After waits (injectable, like the clock)
        self.state = state  # shared limits/breakers/spend on top of the local ones (or None)

    async def first_success(
        self,
        call: Call,
        plan: Sequence[ProviderSlot],
        operation: Operation[T],
        discard: Callable[[T], Awaitable[None]] | None = None,
    ) -> T | None:
        """Go down ``plan`` until an attempt succeeds: hedging the first two providers when
        configured, then one by one, then a provider held off by a short Retry-After."""
        if self.hedge_after is not None and len(plan) > 1:
            if self.hedge_after == "p95":
                delay = plan[0].stats.percentile(0.95) or 1.0
            else:
                delay = float(self.hedge_after)
            won = await race(
                lambda slot: self.attempt(call, slot, operation), plan[0], plan[1], delay, discard
            )
            if won is not None or call.deadline_hit:
                return won
            plan = plan[2:]
        for index, slot in enumerate(plan):
            result = await self.attempt(call, slot, operation)
            if result is not None or call.deadline_hit:
                return result
            if call.hooks is not None and index + 1 < len(plan) and call.request is not None:
                await call.hooks.fallback(call.request, slot.name, call.attempts[-1].error)
        held = self._held(call)
        if held is not None:
            slot, wait = held
            logger.info("waiting %.2fs for %s's Retry-After to pass", wait, slot.name)
            await self.sleep(wait)
            return await self.attempt(call, slot, operation)
        return None

    async def attempt(self, call: Call, slot: ProviderSlot, operation: Operation[T]) -> T | None:
        """Attempt ``slot`` with retries; the result, or None after recording why not."""
        provider = slot.provider
        if call.params is not None:
            try:
                provider.validate_params(call.params)
            except ProviderError as exc:
                call.skip(slot, exc)
                return None
        estimate = estimate_tokens(call.messages) if slot.limits is not None else 0
        number = 0
        while True:
            number += 1
            # Admission: the deadline and the breaker, then (when there are any) the limits
            # and the shared state, which may wait - a coroutine only when they exist.
            if not self._opens(call, slot, number):
                return None
            if (slot.limits is not None or self.state is not None) and not await self._reserve(
                call, slot, number, estimate
            ):
                return None
            slot.stats.in_flight += 1
            lease = Lease(slot, number, estimate, shared=self.state)
            try:
                if call.hooks is not None and call.request is not None:
                    await call.hooks.attempt_start(call.request, slot.name, number, slot)
                limit = operation.timeout(slot)
                if limit is None and call.until is None:
                    # Unbounded: no scope, and no frame of _run's held while it runs.
                    return await operation.run(call, lease)
                return await self._run(call, slot, operation, lease, limit)
            except BaseException as exc:
                error = classify(slot, exc)
                if error is None:
                    lease.cancelled()
                    raise
                lease.failed(error)
                if isinstance(error, StructuredOutputError) and self.on_invalid_output == "raise":
                    call.attempts.append(
                        Attempt(slot.name, error, number, time.perf_counter() - lease.started)
                    )
                    raise
            if self.state is not None:
                # Publish a failure at once (the breaker may have opened). A success is
                # published by the state before its next admission (or periodically):
                # awaiting here could drop a result that holds a lease (an open stream).
                await self.state.sync()
            delay = provider.retry_policy().delay(number, error.retry_after)
            delay = await self._failed(call, slot, lease, error, delay)
            if delay is None:
                return None
            await self.sleep(delay)

    @staticmethod
    def _opens(call: Call, slot: ProviderSlot, number: int) -> bool:
        """Whether the deadline and the breaker let attempt ``number`` start (a half-open
        breaker reserves its probe); records why not."""
        if call.until is not None and call.expired():
            return False
        if not slot.breaker.acquire():
            call.skip(slot, refusal(slot), number)
            return False
        return True

    async def _reserve(self, call: Call, slot: ProviderSlot, number: int, estimate: int) -> bool:
        """Reserve room under the provider's limits and the shared state's, after the
        breaker admitted the attempt; when refused, records why and gives back the breaker's
        admission."""
        breaker = slot.breaker
        if slot.limits is not None:
            try:
                refused = await self._acquire_limit(call, slot, estimate)
            except BaseException:
                breaker.on_cancel()
                raise
            if refused is not None:
                breaker.on_cancel()
                if not call.deadline_hit:
                    call.skip(slot, RateLimitError(f"local limit {refused} reached"), number)
                return False
        state = self.state
        if state is not None:
            try:
                error = await state.admit(slot, estimate)
            except BaseException:
                _unreserve(slot, estimate)
                raise
            if error is not None:
                _unreserve(slot, estimate)
                call.skip(slot, error, number)
                return False
        return True

    async def _acquire_limit(self, call: Call, slot: ProviderSlot, estimate: int) -> str | None:
        """Reserve room under the provider's limits; the refusing limit's name if none."""
        limits = slot.limits
        assert limits is not None
        refused = limits.try_acquire(estimate)
        if refused is None or self.on_limit == "failover":
            return refused
        while refused is not None:
            if call.until is not None and anyio.current_time() + _LIMIT_POLL >= call.until:
                call.deadline_hit = True
                return refused
            await anyio.sleep(_LIMIT_POLL)
            refused = limits.try_acquire(estimate)
        return None

    @staticmethod
    async def _run(
        call: Call, slot: ProviderSlot, operation: Operation[T], lease: Lease, limit: float | None
    ) -> T:
        """Run one attempt under the sooner of its own timeout (``limit``, seconds) and the
        request deadline, one of which is set."""
        until = call.until
        own = None if limit is None else anyio.current_time() + limit
        at = min(t for t in (own, until) if t is not None)
        with anyio.CancelScope(deadline=at) as scope:
            return await operation.run(call, lease)
        if scope.cancelled_caught and own is not None and (until is None or own < until):
            raise ProviderTimeoutError(operation.timeout_message.format(limit), provider=slot.name)
        call.deadline_hit = True
        raise DeadlineExceededError(
            f"Request deadline of {call.deadline:g}s ran out while {slot.name} was answering; "
            "raise `deadline` or lower provider timeouts",
            provider=slot.name,
        )

    async def _failed(
        self,
        call: Call,
        slot: ProviderSlot,
        lease: Lease,
        error: ProviderError,
        delay: float | None,
    ) -> float | None:
        """Record a failed attempt; seconds to wait before retrying it, or None to move on."""
        elapsed = time.perf_counter() - lease.started
        call.attempts.append(Attempt(slot.name, error, lease.attempt, elapsed))
        hooks, request = call.hooks, call.request
        if hooks is not None and request is not None:
            await hooks.attempt_error(request, slot.name, lease.attempt, elapsed, error)
        # Retry only transient errors, not once the breaker opened ("stop asking"), and not
        # past the deadline.
        if (
            call.deadline_hit
            or not error.transient
            or delay is None
            or slot.breaker.state == "open"
            or (call.until is not None and anyio.current_time() + delay >= call.until)
        ):
            logger.info("%s failed (%s); failing over", slot.name, error)
            return None
        logger.info(
            "%s failed (%s); retry %d in %.2fs",
            slot.name,
            type(error).__name__,
            lease.attempt,
            delay,
        )
        if hooks is not None and request is not None:
            await hooks.retry(request, slot.name, lease.attempt, delay, error)
        return delay

    def _held(self, call: Call) -> tuple[ProviderSlot, float] | None:
        """After every planned provider failed: one that was not asked only because of a
        ``Retry-After`` hold short enough to wait for (within its ``backoff_max`` and the
        deadline), with the seconds to wait."""
        asked = {a.provider for a in call.attempts if not a.skipped}
        best: tuple[ProviderSlot, float] | None = None
        for slot in self.slots:
            wait = slot.breaker.held_for()
            if (
                slot.name in asked
                or wait <= 0
                or slot.breaker.state == "open"
                or slot.over_budget()
                or wait > slot.provider.config.backoff_max
                or (call.until is not None and anyio.current_time() + wait >= call.until)
            ):
                continue
            if best is None or wait < best[1]:
                best = (slot, wait)
        return best
