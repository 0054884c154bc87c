"""Built-in routing strategies, registered through the same hook third parties use.

A strategy orders the providers the router may try for one request: the first is asked
first, the rest are the fallbacks in order. It only ever sees providers whose circuit
breaker admits a request. Write your own by implementing :class:`Strategy` and registering
it from a plugin::

    @orchestrator.hookimpl
    def register_strategies(register):
        register(MyStrategy, name="my-strategy")
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

from orchestrator.hookspecs import hookimpl

if TYPE_CHECKING:
    from orchestrator.health import ProviderSlot

__all__ = [
    "FirstAvailable",
    "RandomStrategy",
    "RoundRobin",
    "Strategy",
    "Weighted",
]


class Strategy(Protocol):
    """Orders candidate providers for one request."""

    name: ClassVar[str]

    def order(self, slots: Sequence[ProviderSlot]) -> Sequence[ProviderSlot]:
        """Return ``slots`` (or a subset) in the order to try them."""
        ...


class RoundRobin:
    """Each request starts at the next provider; the others follow as fallbacks.

    Over ``k * n`` requests to ``n`` providers each one is asked first exactly ``k`` times.
    """

    name: ClassVar[str] = "round-robin"

    def __init__(self) -> None:
        self._counter = itertools.count()  # next() on a count is atomic under the GIL

    def order(self, slots: Sequence[ProviderSlot]) -> Sequence[ProviderSlot]:
        if len(slots) < 2:
            return slots
        start = next(self._counter) % len(slots)
        return [*slots[start:], *slots[:start]]


class RandomStrategy:
    """A random first choice, weighted by each provider's ``weight``; fallbacks random too."""

    name: ClassVar[str] = "random"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def order(self, slots: Sequence[ProviderSlot]) -> Sequence[ProviderSlot]:
        remaining = list(slots)
        ordered: list[ProviderSlot] = []
        while remaining:
            weights = [max(s.weight, 0.0) for s in remaining]
            if sum(weights) <= 0:
                self._rng.shuffle(remaining)
                ordered.extend(remaining)
                break
            pick = self._rng.choices(range(len(remaining)), weights=weights)[0]
            ordered.append(remaining.pop(pick))
        return ordered


class FirstAvailable:
    """Priority order: the lowest ``priority`` first (ties keep insertion order)."""

    name: ClassVar[str] = "first-available"

    def order(self, slots: Sequence[ProviderSlot]) -> Sequence[ProviderSlot]:
        return sorted(slots, key=lambda s: s.priority)


class Weighted:
    """Smooth weighted round-robin (nginx): deterministic, exact over a full cycle.

    With weights 5:1:1, every 7 requests start 5 times at the first provider, spread out
    (a a b a c a a), never in bursts.
    """

    name: ClassVar[str] = "weighted"

    def __init__(self) -> None:
        self._current: dict[str, float] = {}
        self._lock = threading.Lock()

    def order(self, slots: Sequence[ProviderSlot]) -> Sequence[ProviderSlot]:
        if len(slots) < 2:
            return slots
        with self._lock:
            total = 0.0
            best: ProviderSlot | None = None
            for slot in slots:
                weight = max(slot.weight, 0.0)
                total += weight
                current = self._current.get(slot.name, 0.0) + weight
                self._current[slot.name] = current
                if best is None or current > self._current[best.name]:
                    best = slot
            assert best is not None
            self._current[best.name] -= total
        rest = sorted((s for s in slots if s is not best), key=lambda s: -s.weight)
        return [best, *rest]


BUILTIN_STRATEGIES: tuple[type[Strategy], ...] = (
    RoundRobin,
    RandomStrategy,
    FirstAvailable,
    Weighted,
)


@hookimpl
def register_strategies(register: Callable[..., None]) -> None:
    """Register the built-in strategies."""
    for cls in BUILTIN_STRATEGIES:
        register(cls, name=cls.name)
