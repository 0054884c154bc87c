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
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar, Protocol

from orchestrator.hookspecs import hookimpl

if TYPE_CHECKING:
    from orchestrator.health import ProviderSlot

__all__ = [
    "BestAvailable",
    "FirstAvailable",
    "LatencyStrategy",
    "LeastBusy",
    "LowestCost",
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


class BestAvailable:
    """The healthiest provider first (success rate in the window, then EWMA latency).

    With probability ``explore`` (default 10%) — and always for a provider with no data
    yet — a request goes first to the least-recently-tried provider instead, so a new or
    recovered provider gets traffic and its numbers stay current.
    """

    name: ClassVar[str] = "best-available"

    def __init__(self, explore: float = 0.1, rng: random.Random | None = None) -> None:
        if not 0 <= explore <= 1:
            raise ValueError("explore must be in [0, 1]")
        self.explore = explore
        self._rng = rng or random.Random()
        self._last_tried: dict[str, int] = {}
        self._tick = itertools.count()

    @staticmethod
    def _score(slot: ProviderSlot) -> tuple[float, float]:
        ok, bad = slot.stats.window_counts()
        rate = ok / (ok + bad) if ok + bad else 1.0
        latency = slot.stats.latency_ewma
        return (-rate, latency if latency is not None else 0.0)

    def order(self, slots: Sequence[ProviderSlot]) -> Sequence[ProviderSlot]:
        if not slots:
            return slots
        untried = [s for s in slots if s.name not in self._last_tried]
        if untried:
            first = untried[0]
        elif len(slots) > 1 and self._rng.random() < self.explore:
            first = min(slots, key=lambda s: self._last_tried.get(s.name, -1))
        else:
            first = min(slots, key=self._score)
        self._last_tried[first.name] = next(self._tick)
        rest = sorted((s for s in slots if s is not first), key=self._score)
        return [first, *rest]


class LeastBusy:
    """The provider with the fewest requests in flight first (ties: insertion order)."""

    name: ClassVar[str] = "least-busy"

    def order(self, slots: Sequence[ProviderSlot]) -> Sequence[ProviderSlot]:
        return sorted(slots, key=lambda s: s.stats.in_flight)


class LowestCost:
    """The cheapest provider first, by its price table for its configured model.

    Providers without a known price come last (an unknown cost is not a zero cost).
    """

    name: ClassVar[str] = "lowest-cost"

    @staticmethod
    def _price(slot: ProviderSlot) -> tuple[int, Decimal]:
        from orchestrator.pricing import find_price

        price = find_price(slot.prices, slot.provider.config.model)
        if price is None:
            return (1, Decimal(0))
        return (0, price.prompt + price.completion)

    def order(self, slots: Sequence[ProviderSlot]) -> Sequence[ProviderSlot]:
        return sorted(slots, key=self._price)


class LatencyStrategy:
    """Power of two choices over EWMA latency: sample two, ask the faster first.

    Cheaper than sorting everyone, and it avoids herding all traffic onto the single
    fastest provider. A provider without latency data counts as fastest, so it gets measured.
    """

    name: ClassVar[str] = "latency"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    @staticmethod
    def _latency(slot: ProviderSlot) -> float:
        value = slot.stats.latency_ewma
        return 0.0 if value is None else value

    def order(self, slots: Sequence[ProviderSlot]) -> Sequence[ProviderSlot]:
        if len(slots) < 2:
            return slots
        a, b = self._rng.sample(list(slots), 2)
        first = a if self._latency(a) <= self._latency(b) else b
        rest = sorted((s for s in slots if s is not first), key=self._latency)
        return [first, *rest]


BUILTIN_STRATEGIES: tuple[type[Strategy], ...] = (
    RoundRobin,
    RandomStrategy,
    FirstAvailable,
    Weighted,
    BestAvailable,
    LeastBusy,
    LowestCost,
    LatencyStrategy,
)


@hookimpl
def register_strategies(register: Callable[..., None]) -> None:
    """Register the built-in strategies."""
    for cls in BUILTIN_STRATEGIES:
        register(cls, name=cls.name)
