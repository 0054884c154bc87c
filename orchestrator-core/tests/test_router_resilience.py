"""Router intelligence: hooks, usage and cost, budgets, limits, hedging, timeouts, strategies."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import orchestrator
from orchestrator import Router
from orchestrator.errors import (
    AllProvidersFailedError,
    NoProvidersError,
    ProviderTimeoutError,
    RateLimitError,
)
from orchestrator.health import BreakerConfig, ProviderSlot
from orchestrator.limits import LimitState, ProviderLimits
from orchestrator.plugins import PluginRegistry
from orchestrator.pricing import Price, cost_of, find_price
from orchestrator.providers import MockConfig, MockProvider
from orchestrator.router import UsageEvent
from orchestrator.strategies import BestAvailable, LatencyStrategy, LeastBusy, LowestCost
from orchestrator.types import Usage

pytestmark = pytest.mark.anyio


def mock(name: str, **settings: Any) -> MockProvider:
    settings.setdefault("backoff_base", 0.001)
    settings.setdefault("backoff_max", 0.01)
    return MockProvider(MockConfig(name=name, **settings))


# -- lifecycle hooks ---------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @orchestrator.hookimpl
    def on_request_start(self, request: Any) -> None:
        self.events.append(("start", request.kind))

    @orchestrator.hookimpl
    async def on_attempt_start(self, provider: str, attempt: int) -> None:
        await anyio.lowlevel.checkpoint()
        self.events.append(("attempt", (provider, attempt)))

    @orchestrator.hookimpl
    def on_attempt_error(self, provider: str, error: BaseException) -> None:
        self.events.append(("error", (provider, type(error).__name__)))

    @orchestrator.hookimpl
    def on_retry(self, provider: str, delay: float) -> None:
        self.events.append(("retry", provider))

    @orchestrator.hookimpl
    def on_fallback(self, from_provider: str) -> None:
        self.events.append(("fallback", from_provider))

    @orchestrator.hookimpl
    def on_attempt_success(self, provider: str, latency: float) -> None:
        assert latency >= 0
        self.events.append(("success", provider))

    @orchestrator.hookimpl
    def on_stream_first_chunk(self, provider: str) -> None:
        self.events.append(("first-chunk", provider))

    @orchestrator.hookimpl
    def on_request_end(self, result: Any, error: BaseException | None) -> None:
        self.events.append(("end", error is None))


async def test_lifecycle_hooks_fire_in_order(registry: PluginRegistry) -> None:
    recorder = Recorder()
    registry.register_plugin(recorder, "recorder")
    router = Router(strategy="first-available", registry=registry)
    router.add_provider(mock("a", mode="server_error", max_retries=1))
    router.add_provider(mock("b"))
    await router.route("x")
    assert recorder.events == [
        ("start", "chat"),
        ("attempt", ("a", 1)),
        ("error", ("a", "ServiceUnavailableError")),
        ("retry", "a"),
        ("attempt", ("a", 2)),
        ("error", ("a", "ServiceUnavailableError")),
        ("fallback", "a"),
        ("attempt", ("b", 1)),
        ("success", "b"),
        ("end", True),
    ]
    recorder.events.clear()
    assert [c async for c in router.route_stream("y")]
    assert ("first-chunk", "b") in recorder.events
    assert recorder.events[0] == ("start", "stream") and recorder.events[-1] == ("end", True)


async def test_failing_hook_never_breaks_a_request(
    registry: PluginRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        @orchestrator.hookimpl
        def on_request_start(self, request: Any) -> None:
            raise RuntimeError("metrics backend down")

    registry.register_plugin(Broken(), "broken")
    router = Router(registry=registry)
    router.add_provider(mock("a"))
    assert await router.route("x") == "Mock response to: x"
    assert "on_request_start failed" in caplog.text


async def test_no_hooks_means_no_relay(registry: PluginRegistry) -> None:
    router = Router(registry=registry)
    router.add_provider(mock("a"))
    await router.route("x")
    assert router._hooks is None


# -- usage, cost, budgets ----------------------------------------------------------------


def test_cost_arithmetic_and_price_lookup() -> None:
    price = Price("1.5", "3")
    assert cost_of(Usage(1000, 2000, 3000), price) == Decimal("7.5")
    assert cost_of(None, price) is None
    table = {"GigaChat": price, "*": Price(0, 0)}
    assert find_price(table, "GigaChat:2.0.28.2") is price
    assert find_price(table, "other") == Price(0, 0)
    assert find_price({}, "x") is None
    with pytest.raises(ValueError, match=">= 0"):
        Price(-1, 0)


async def test_cost_on_completion_stream_and_stats() -> None:
    events: list[UsageEvent] = []

    async def on_usage(event: UsageEvent) -> None:
        events.append(event)

    router = Router(on_usage=on_usage, prices={"a": {"*": Price(1000, 1000)}})
    router.add_provider(mock("a"))
    completion = await router.chat("one two three")
    assert completion.usage is not None
    # 3 prompt tokens + 6 completion tokens at 1000 RUB per 1K = 9 RUB
    assert completion.cost == Decimal(9)
    chunks = [c async for c in router.chat_stream("one two three")]
    assert chunks[-1].cost == Decimal(9)
    stats = router.stats()
    assert stats["providers"]["a"]["cost"] == "18"
    assert stats["spent"] == "18"
    assert [(e.kind, e.complete, e.cost) for e in events] == [
        ("chat", True, Decimal(9)),
        ("stream", True, Decimal(9)),
    ]
    json.dumps(stats)  # plain data


async def test_failed_stream_still_reports_usage_event() -> None:
    events: list[UsageEvent] = []
    router = Router(on_usage=events.append)
    router.add_provider(mock("cut", mode="stream_failure"))
    with pytest.raises(orchestrator.StreamInterruptedError):
        async for _ in router.route_stream("a b c d"):
            pass
    assert [(e.provider, e.complete) for e in events] == [("cut", False)]


async def test_failing_usage_callback_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def explode(event: UsageEvent) -> None:
        raise ValueError("nope")

    router = Router(on_usage=explode)
    router.add_provider(mock("a"))
    assert await router.route("x")
    assert "on_usage callback failed" in caplog.text


async def test_provider_budget_stops_routing_to_it() -> None:
    router = Router(strategy="first-available")
    router.add_provider(mock("paid"), prices={"*": Price(1000, 1000)}, budget="5")
    router.add_provider(mock("free"))
    assert (await router.chat("one two three")).provider == "paid"  # costs 9 > budget
    assert (await router.chat("again")).provider == "free"


async def test_router_budget() -> None:
    router = Router(budget=1, prices={"a": {"*": Price(1000, 1000)}})
    router.add_provider(mock("a"))
    await router.route("x")
    with pytest.raises(NoProvidersError, match="budget"):
        await router.route("x")


# -- limits -------------------------------------------------------------------------------


async def test_max_in_flight_never_exceeded_under_hundreds_of_calls() -> None:
    router = Router(on_limit="wait", deadline=30)
    slow = mock("slow", latency=0.01)
    router.add_provider(slow, limits=ProviderLimits(max_in_flight=7))
    async with anyio.create_task_group() as tg:
        for i in range(300):
            tg.start_soon(router.route, f"q{i}")
    limits = router.stats()["providers"]["slow"]["limits"]
    assert limits == {"in_flight": 0, "peak": 7}
    assert slow.calls == 300


async def test_limit_failover_sends_excess_elsewhere() -> None:
    router = Router(strategy="first-available")
    router.add_provider(mock("small", latency=0.05), limits=ProviderLimits(max_in_flight=2))
    router.add_provider(mock("big", latency=0.05))
    results: list[str] = []

    async def call() -> None:
        results.append((await router.chat("x")).provider)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(call)
    assert results.count("small") == 2 and results.count("big") == 8


async def test_limit_refusal_is_a_typed_attempt() -> None:
    router = Router()
    router.add_provider(mock("tiny"), limits=ProviderLimits(requests_per_minute=1))
    await router.route("1")
    with pytest.raises(AllProvidersFailedError) as info:
        await router.route("2")
    assert isinstance(info.value.errors[0], RateLimitError)
    assert "requests_per_minute=1" in str(info.value)


def test_rate_windows_age_out_and_tokens_are_corrected() -> None:
    now = [0.0]
    state = LimitState(ProviderLimits(requests_per_minute=2, tokens_per_minute=100), lambda: now[0])
    assert state.try_acquire(10) is None
    state.release(10, 90)  # the vendor reported 90
    assert state.try_acquire(20) == "tokens_per_minute=100"
    now[0] += 61
    assert state.try_acquire(20) is None
    assert state.try_acquire(5) is None
    assert state.try_acquire(5) == "requests_per_minute=2"
    with pytest.raises(ValueError, match="max_in_flight"):
        ProviderLimits(max_in_flight=0)


# -- hedging --------------------------------------------------------------------------------


async def test_hedge_takes_the_faster_and_cancels_the_loser() -> None:
    router = Router(strategy="first-available", hedge_after=0.05)
    slow = mock("slow", latency=5)
    fast = mock("fast")
    router.add_provider(slow)
    router.add_provider(fast)
    with anyio.fail_after(3):
        completion = await router.chat("x")
    assert completion.provider == "fast"
    stats = router.stats()["providers"]
    assert stats["slow"]["in_flight"] == 0  # the slow call was cancelled, not left running
    assert stats["slow"]["breaker"]["state"] == "closed"


async def test_hedge_not_needed_when_primary_is_fast() -> None:
    router = Router(strategy="first-available", hedge_after=1)
    router.add_provider(mock("a"))
    backup = mock("b")
    router.add_provider(backup)
    assert (await router.chat("x")).provider == "a"
    assert backup.calls == 0


async def test_hedge_primary_failure_starts_backup_at_once() -> None:
    router = Router(strategy="first-available", hedge_after="p95")
    router.add_provider(mock("bad", mode="auth_error"))
    router.add_provider(mock("good"))
    with anyio.fail_after(0.9):  # no 1 s p95 fallback delay when the primary already failed
        assert (await router.chat("x")).provider == "good"


# -- timeouts -------------------------------------------------------------------------------


async def test_attempt_timeout_says_which_limit_fired() -> None:
    router = Router(strategy="first-available")
    router.add_provider(mock("slow", latency=5, max_retries=0), timeout=0.05)
    router.add_provider(mock("ok"))
    assert (await router.chat("x")).provider == "ok"
    router.remove_provider("ok")
    with pytest.raises(AllProvidersFailedError, match=r"Attempt timeout of 0\.05s"):
        await router.route("x")


async def test_first_chunk_timeout_fails_over() -> None:
    router = Router(strategy="first-available", first_chunk_timeout=0.05)
    router.add_provider(mock("thinker", latency=5, max_retries=0))
    router.add_provider(mock("talker"))
    providers = {c.provider async for c in router.chat_stream("x")}
    assert providers == {"talker"}
    router.remove_provider("talker")
    with pytest.raises(AllProvidersFailedError) as info:
        async for _ in router.chat_stream("x"):
            pass
    error = info.value.errors[0]
    assert isinstance(error, ProviderTimeoutError)
    assert "First-chunk timeout of 0.05s" in str(error)


def test_router_argument_validation() -> None:
    with pytest.raises(ValueError, match="deadline"):
        Router(deadline=0)
    with pytest.raises(ValueError, match="hedge_after"):
        Router(hedge_after=-1)
    with pytest.raises(ValueError, match="on_limit"):
        Router(on_limit="drop")  # type: ignore[arg-type]
    router = Router()
    with pytest.raises(ValueError, match="timeout"):
        router.add_provider(mock("a"), timeout=0)
    with pytest.raises(ValueError, match="weight"):
        router.add_provider(mock("a"), weight=-1)


# -- active health checks -----------------------------------------------------------------


async def test_active_health_checks_feed_the_breaker() -> None:
    router = Router(breaker=BreakerConfig(consecutive_failures=2, cooldown=0.01))
    down = mock("down", mode="auth_error")
    router.add_provider(down)
    async with anyio.create_task_group() as tg:
        tg.start_soon(router.run_health_checks, 0.01)
        # Polled, not slept: on a loaded machine two checks may take longer than any guess.
        with anyio.fail_after(5):
            while router.stats()["providers"]["down"]["breaker"]["trips"] < 1:
                await anyio.sleep(0.01)
        down.config.mode = "success"
        with anyio.fail_after(2):
            while router.stats()["providers"]["down"]["breaker"]["state"] != "closed":
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    with pytest.raises(ValueError, match="interval"):
        await router.run_health_checks(0)


# -- strategies ---------------------------------------------------------------------------


def slot(name: str, **kw: Any) -> ProviderSlot:
    return ProviderSlot(MockProvider(MockConfig(name=name)), **kw)


@settings(max_examples=50)
@given(n=st.integers(2, 6), seed=st.integers(), bad=st.integers(0, 5))
def test_best_available_eventually_explores_every_provider(n: int, seed: int, bad: int) -> None:
    strategy = BestAvailable(explore=0.1, rng=random.Random(seed))
    slots = [slot(f"p{i}") for i in range(n)]
    for s in slots:  # the first provider is clearly best; the others look bad
        s.stats.record_success(0.01 if s is slots[0] else 1.0)
    for _ in range(bad):
        slots[-1].stats.record_failure(RateLimitError("x"))
    chosen = {strategy.order(slots)[0].name for _ in range(60 * n)}
    assert chosen == {s.name for s in slots}


def test_best_available_prefers_health_then_latency() -> None:
    strategy = BestAvailable(explore=0.0)
    a, b, c = slot("a"), slot("b"), slot("c")
    a.stats.record_success(0.5)
    b.stats.record_success(0.1)
    c.stats.record_success(0.01)
    c.stats.record_failure(RateLimitError("x"))
    for _ in range(3):  # each tried once first (no data yet)
        strategy.order([a, b, c])
    assert [s.name for s in strategy.order([a, b, c])] == ["b", "a", "c"]
    with pytest.raises(ValueError, match="explore"):
        BestAvailable(explore=2)


def test_least_busy_and_lowest_cost() -> None:
    a, b = slot("a"), slot("b")
    a.stats.in_flight = 3
    assert [s.name for s in LeastBusy().order([a, b])] == ["b", "a"]
    cheap = slot("cheap", prices={"*": Price(0.1, 0.1)})
    dear = slot("dear", prices={"*": Price(1, 1)})
    unknown = slot("unknown")
    assert [s.name for s in LowestCost().order([unknown, dear, cheap])] == [
        "cheap",
        "dear",
        "unknown",
    ]


def test_latency_power_of_two_choices() -> None:
    strategy = LatencyStrategy(random.Random(3))
    fast, slow = slot("fast"), slot("slow")
    fast.stats.record_success(0.01)
    slow.stats.record_success(1.0)
    assert all(strategy.order([slow, fast])[0].name == "fast" for _ in range(20))
    assert strategy.order([fast]) == [fast]


async def test_provider_held_by_retry_after_is_awaited_when_all_others_fail() -> None:
    router = Router(strategy="first-available")
    held = mock("held", mode="rate_limit", fail_times=1, retry_after=0.1, max_retries=0)
    held.config.backoff_max = 1
    router.add_provider(held)
    router.add_provider(mock("down", mode="auth_error"))
    # First request: "held" answers 429 Retry-After 0.1 s, "down" fails: nothing left.
    with pytest.raises(AllProvidersFailedError):
        await router.route("x")
    # Second request: "held" is skipped while held, "down" fails, so the router waits out
    # the remaining hold and asks "held" rather than giving up.
    assert (await router.chat("x")).provider == "held"


async def test_stream_hedge_takes_the_first_text_and_closes_the_loser() -> None:
    router = Router(strategy="first-available", hedge_after=0.05)
    router.add_provider(mock("slow", latency=5))
    router.add_provider(mock("fast"))
    with anyio.fail_after(3):
        chunks = [c async for c in router.chat_stream("one two")]
    assert {c.provider for c in chunks} == {"fast"}
    assert "".join(c.delta for c in chunks) == "Mock response to: one two"
    assert router.stats()["providers"]["slow"]["in_flight"] == 0
