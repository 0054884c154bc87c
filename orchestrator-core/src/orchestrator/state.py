"""Where a router keeps the state several processes may have to agree on.

By default a router's state lives in its own objects, in memory, exactly as before this
module existed: :class:`~orchestrator.limits.LimitState` (in-flight, requests and tokens per
minute), :class:`~orchestrator.health.CircuitBreaker` and
:class:`~orchestrator.health.HealthStats` per provider, and the router's ledger (spend and
budget). ``Router(state=None)`` — the default — uses nothing else, so the hot path is the
same code as ever.

A :class:`SharedState` (for example ``orchestrator_redis.RedisState``) adds a second check
shared by every router that uses the same store. The local objects keep working under it:
they are the fast path (a request a local limit refuses never costs a round trip) and the
fallback when the store is unreachable. The router calls a shared state at four points:

- :meth:`SharedState.admit` after the local breaker and limits admitted an attempt: the
  shared breaker, Retry-After hold, budgets and per-minute limits must admit it too;
- :meth:`SharedState.released` when the attempt ends, however it ends (synchronous and
  cheap: the state buffers what must reach the store, e.g. the real token count, and
  pushes it in the background or before its next admission — never making the caller of
  a successful request wait);
- :meth:`SharedState.sync` after each failed attempt (a breaker may have opened: the others
  must know before this router's next request) and when the router is left: pushes what
  changed (breakers, spend, usage totals) and learns what the other routers spent;
- :meth:`SharedState.snapshot` in ``Router.stats()["state"]``.

A shared state is a fault domain of its own: when it fails or is slow its methods must
return within a bounded time and leave the router serving on local state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from orchestrator._routing.accounting import Ledger
    from orchestrator.errors import ProviderError
    from orchestrator.health import ProviderSlot
    from orchestrator.limits import ProviderLimits

__all__ = ["SharedState"]


class SharedState(ABC):
    """State shared by several routers (processes, replicas): limits, breakers, spend.

    One instance serves one router. Enter it (``async with state:``, or ``async with
    router:``, which enters its state) on the event loop that serves the router's requests;
    until then, and whenever the store fails, the router runs on local state only.
    """

    #: Short name shown in ``Router.stats()`` (e.g. ``"redis"``).
    name: str = "shared"
    #: The owning router's providers and ledger (set by :meth:`bind`).
    slots: Sequence[ProviderSlot] = ()
    ledger: Ledger | None = None

    def bind(self, slots: Sequence[ProviderSlot], ledger: Ledger) -> None:
        """Called once by the router that owns this state, with its providers and ledger."""
        self.slots = slots
        self.ledger = ledger

    async def __aenter__(self) -> SharedState:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    @abstractmethod
    async def admit(self, slot: ProviderSlot, estimate: int) -> ProviderError | None:
        """Whether the shared state admits one attempt on ``slot`` (already admitted
        locally, reserving ``estimate`` tokens): None, or the error to record it as skipped
        with. Must return within a bounded time; when the store fails, None."""

    @abstractmethod
    def released(self, slot: ProviderSlot, estimate: int, tokens: int | None) -> None:
        """An admitted attempt ended having used ``tokens`` (None: unknown). Synchronous and
        cheap: what must reach the store is buffered for the next :meth:`sync`."""

    @abstractmethod
    async def sync(self) -> None:
        """Push what changed locally and learn what the other routers did; bounded time."""

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """JSON-ready status: whether the store is reachable, shared totals as last seen."""

    async def acquire(self, scope: str, limits: ProviderLimits, estimate: int = 0) -> str | None:
        """Reserve one request (and ``estimate`` tokens) under per-minute ``limits`` shared
        under the name ``scope`` (e.g. a client API key); the refusing limit's name, or
        None. The default shares nothing and admits everything."""
        return None
