"""One router request (:class:`Call`) and one reserved attempt of it (:class:`Lease`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio

from orchestrator.errors import Attempt

if TYPE_CHECKING:
    from orchestrator._routing.hooks import LifecycleHooks
    from orchestrator.capabilities import Capability
    from orchestrator.errors import ProviderError
    from orchestrator.events import RequestInfo
    from orchestrator.health import ProviderSlot
    from orchestrator.state import SharedState
    from orchestrator.types import GenerationParams, Message


@dataclass(slots=True, eq=False)
class Call:
    """One router call: its validated input, its deadline and every attempt's record."""

    kind: Literal["chat", "stream", "embed"]
    messages: tuple[Message, ...]
    params: GenerationParams | None
    hooks: LifecycleHooks | None
    request: RequestInfo | None
    #: The request's deadline in seconds (for messages) and as an anyio clock time.
    deadline: float | None
    until: float | None
    attempts: list[Attempt] = field(default_factory=list)
    #: Set once the deadline ran out: no further attempt is made or blamed.
    deadline_hit: bool = False
    #: Capabilities the request needs beyond plain chat (tools, structured output, ...);
    #: when it needs any, the answer is checked before it counts as a success.
    needs: tuple[Capability, ...] = ()

    def expired(self) -> bool:
        if self.until is not None and anyio.current_time() >= self.until:
            self.deadline_hit = True
        return self.deadline_hit

    def skip(self, slot: ProviderSlot, error: ProviderError, attempt: int = 0) -> None:
        """Record that ``slot`` was not asked, and why."""
        if error.provider is None:
            error.provider = slot.name
        self.attempts.append(Attempt(slot.name, error, attempt, skipped=True))


@dataclass(slots=True, eq=False)
class Lease:
    """One admitted attempt: it holds an in-flight count, a limit reservation and (for a
    half-open breaker) a probe, and gives them back exactly once with its verdict."""

    slot: ProviderSlot
    attempt: int
    estimate: int
    started: float = field(default_factory=time.perf_counter)
    held: bool = True
    #: The router's shared state, told when the attempt ends (None: local state only).
    shared: SharedState | None = None

    def _release(self, tokens: int | None) -> bool:
        if not self.held:
            return False
        self.held = False
        self.slot.stats.in_flight -= 1
        self._give_back(tokens)
        return True

    def _give_back(self, tokens: int | None) -> None:
        """Return the limit reservation (and tell the shared state), when there is one."""
        slot = self.slot
        if slot.limits is not None:
            slot.limits.release(self.estimate, tokens)
        if self.shared is not None:
            self.shared.released(slot, self.estimate, tokens)

    def succeeded(self, tokens: int | None = None) -> float:
        """The attempt succeeded; returns its latency in seconds."""
        latency = time.perf_counter() - self.started
        if self.held:  # _release, inline: this runs on every successful call
            self.held = False
            slot = self.slot
            slot.stats.in_flight -= 1
            if slot.limits is not None or self.shared is not None:
                self._give_back(tokens)
            slot.stats.record_success(latency)
            slot.breaker.on_success()
        return latency

    def failed(self, error: ProviderError, tokens: int | None = None) -> None:
        """The attempt failed because of the provider (or the caller's invalid request)."""
        if self._release(tokens):
            self.slot.stats.record_failure(error)
            self.slot.breaker.on_failure(error)

    def cancelled(self, tokens: int | None = None) -> None:
        """The attempt ended without a verdict (cancelled, abandoned, or a plugin's bug)."""
        if self._release(tokens):
            self.slot.breaker.on_cancel()
