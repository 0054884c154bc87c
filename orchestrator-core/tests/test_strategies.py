"""Strategy invariants."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.health import ProviderSlot
from orchestrator.providers import MockProvider, ProviderConfig
from orchestrator.strategies import FirstAvailable, RandomStrategy, RoundRobin, Weighted


def slots(n: int, weights: list[float] | None = None) -> list[ProviderSlot]:
    return [
        ProviderSlot(
            MockProvider(ProviderConfig(name=f"p{i}")),
            weight=(weights[i] if weights else 1.0),
            priority=n - i,
        )
        for i in range(n)
    ]


@given(n=st.integers(1, 12), k=st.integers(1, 20))
def test_round_robin_is_exactly_fair(n: int, k: int) -> None:
    strategy = RoundRobin()
    candidates = slots(n)
    firsts = Counter(strategy.order(candidates)[0].name for _ in range(k * n))
    assert all(firsts[s.name] == k for s in candidates)


@given(n=st.integers(1, 8))
def test_every_order_is_a_permutation(n: int) -> None:
    candidates = slots(n)
    for strategy in (RoundRobin(), RandomStrategy(random.Random(1)), FirstAvailable(), Weighted()):
        order = strategy.order(candidates)
        assert sorted(s.name for s in order) == sorted(s.name for s in candidates)


@given(weights=st.lists(st.integers(0, 9), min_size=1, max_size=6).filter(lambda w: sum(w) > 0))
def test_weighted_is_exact_over_a_full_cycle(weights: list[int]) -> None:
    strategy = Weighted()
    candidates = slots(len(weights), [float(w) for w in weights])
    cycle = sum(weights)
    firsts = Counter(strategy.order(candidates)[0].name for _ in range(cycle * 3))
    for slot, weight in zip(candidates, weights, strict=True):
        assert firsts[slot.name] == 3 * weight


def test_weighted_is_smooth() -> None:
    strategy = Weighted()
    candidates = slots(3, [5, 1, 1])
    sequence = "".join(strategy.order(candidates)[0].name[-1] for _ in range(7))
    assert sequence == "0010200"


def test_first_available_uses_priority() -> None:
    candidates = slots(3)
    assert [s.name for s in FirstAvailable().order(candidates)] == ["p2", "p1", "p0"]


def test_random_respects_weights() -> None:
    strategy = RandomStrategy(random.Random(7))
    candidates = slots(2, [9, 1])
    firsts = Counter(strategy.order(candidates)[0].name for _ in range(2000))
    assert firsts["p0"] > firsts["p1"] * 4
    zero = slots(2, [0, 0])
    assert len(strategy.order(zero)) == 2
