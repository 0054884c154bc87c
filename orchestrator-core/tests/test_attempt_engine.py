"""The attempt engine at its seams: cancellation, hedging, deadlines, breakers, limits,
contract violations and the request lifecycle (issue 11's defects, one test or more each)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import pytest

import orchestrator
from orchestrator import Router
from orchestrator.errors import (
    AllProvidersFailedError,
    DeadlineExceededError,
    NoProvidersError,
    ProviderError,
    RateLimitError,
    ServiceUnavailableError,
)
from orchestrator.health import BreakerConfig
from orchestrator.limits import ProviderLimits
from orchestrator.plugins import PluginRegistry
from orchestrator.providers import MockConfig, MockProvider
from orchestrator.types import Chunk, Completion, GenerationParams, Message

pytestmark = pytest.mark.anyio


def mock(name: str, **settings: Any) -> MockProvider:
    settings.setdefault("backoff_base", 0.001)
    settings.setdefault("backoff_max", 0.01)
    return MockProvider(MockConfig(name=name, **settings))


def idle(router: Router) -> bool:
    """Every counter the router keeps per request is back to zero."""
    return all(
        slot.stats.in_flight == 0 and (slot.limits is None or slot.limits.in_flight == 0)
        for slot in router.slots
    )


class Streams(MockProvider):
    """A provider whose stream is scripted per test: ``script(self)`` yields chunks."""

    def __init__(self, name: str, script: Any) -> None:
        super().__init__(MockConfig(name=name, max_retries=0))
        self.script = script
        self.closed = 0

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        self.calls += 1
        try:
            async with contextlib.aclosing(self.script(self)) as script:
                async for chunk in script:
                    yield chunk
        finally:
            self.closed += 1


def text(provider: str, delta: str, finish: bool = False) -> Chunk:
    return Chunk(delta=delta, provider=provider, finish_reason="stop" if finish else None)


# -- defect 2: a hedged stream's winner is always closed -----------------------------------


async def slow_to_close(self: Streams) -> AsyncIterator[Chunk]:
    try:
        await anyio.sleep(30)
        yield text(self.name, "never")
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.2)  # the loser takes a while to close its connection


async def quick(self: Streams) -> AsyncIterator[Chunk]:
    yield text(self.name, "fast")
    await anyio.sleep(30)
    yield text(self.name, "", finish=True)


async def test_caller_cancelled_while_the_hedge_loser_closes_leaks_nothing() -> None:
    router = Router(strategy="first-available", hedge_after=0.01)
    loser, winner = Streams("slow", slow_to_close), Streams("fast", quick)
    router.add_provider(loser, limits=ProviderLimits(max_in_flight=1))
    router.add_provider(winner, limits=ProviderLimits(max_in_flight=1))
    with anyio.move_on_after(0.1):
        async with contextlib.aclosing(router.chat_stream("x")) as stream:
            async for _ in stream:
                pytest.fail("the caller was cancelled before any text")
    assert winner.calls == 1 and winner.closed == 1, "the winner's stream was left open"
    assert loser.closed == 1
    assert idle(router)
    # ...and the next request is not refused by a leaked limit slot.
    router.remove_provider("slow")
    async with contextlib.aclosing(router.chat_stream("again")) as stream:
        assert (await anext(stream)).delta == "fast"


async def test_a_losing_stream_whose_cleanup_raises_leaks_nothing() -> None:
    async def raises_on_cancel(self: Streams) -> AsyncIterator[Chunk]:
        try:
            await anyio.sleep(30)
            yield text(self.name, "never")
        finally:
            raise RuntimeError("plugin bug while closing")

    router = Router(strategy="first-available", hedge_after=0.01)
    loser, winner = Streams("slow", raises_on_cancel), Streams("fast", quick)
    router.add_provider(loser, limits=ProviderLimits(max_in_flight=1))
    router.add_provider(winner, limits=ProviderLimits(max_in_flight=1))
    with pytest.raises(RuntimeError, match="plugin bug while closing"):  # bugs propagate...
        async with contextlib.aclosing(router.chat_stream("x")) as stream:
            async for _ in stream:
                pass
    assert winner.closed == 1 and idle(router)  # ...and the winner is closed all the same


# -- defect 3: the deadline blames exactly the provider that was running -------------------


async def hangs(self: Streams) -> AsyncIterator[Chunk]:
    await anyio.sleep(30)
    yield text(self.name, "never")


async def test_stream_deadline_blames_only_the_hanging_provider() -> None:
    router = Router(strategy="first-available", deadline=0.1)
    router.add_provider(Streams("hanging", hangs))
    backups = [mock("b"), mock("c")]
    for backup in backups:
        router.add_provider(backup)
    for _ in range(4):  # (a fifth would open the hanging provider's breaker)
        with pytest.raises(DeadlineExceededError):
            async for _ in router.chat_stream("x"):
                pass
    stats = router.stats()["providers"]
    assert stats["hanging"]["failures"] == 4
    assert stats["b"]["failures"] == stats["c"]["failures"] == 0
    assert stats["b"]["breaker"]["state"] == stats["c"]["breaker"]["state"] == "closed"
    assert [b.calls for b in backups] == [0, 0]


async def test_chat_deadline_counts_against_the_hanging_provider() -> None:
    router = Router(
        strategy="first-available",
        deadline=0.05,
        breaker=BreakerConfig(consecutive_failures=2, cooldown=60),
    )
    hanging = mock("hanging", latency=30)
    router.add_provider(hanging)
    for _ in range(2):
        with pytest.raises(DeadlineExceededError) as info:
            await router.chat("x")
        assert "hanging" in str(info.value.__cause__)
    assert router.stats()["providers"]["hanging"]["failures"] == 2
    assert router.stats()["providers"]["hanging"]["breaker"]["state"] == "open"
    assert idle(router)


# -- defect 5: a plain stream() that raises before returning its iterator ------------------


class RaisesBeforeIterating(MockProvider):
    def stream(  # type: ignore[override]
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        self.calls += 1
        raise ServiceUnavailableError("down before streaming", provider=self.name)


async def test_stream_that_raises_before_returning_its_iterator_fails_over() -> None:
    router = Router(strategy="first-available")
    broken = RaisesBeforeIterating(MockConfig(name="broken", max_retries=0))
    router.add_provider(broken, limits=ProviderLimits(max_in_flight=1))
    router.add_provider(mock("backup"))
    for _ in range(3):
        chunks = [c async for c in router.chat_stream("x")]
        assert chunks[-1].provider == "backup"
    assert broken.calls == 3
    assert idle(router)


# -- defect 6: no call reaches an open breaker ---------------------------------------------


async def test_retries_scheduled_before_the_breaker_opened_never_reach_the_provider() -> None:
    router = Router(breaker=BreakerConfig(consecutive_failures=2, cooldown=60))
    down = mock("down", mode="server_error", latency=0.05, max_retries=3, backoff_base=0.05)
    router.add_provider(down)

    async def ask() -> None:
        with pytest.raises(AllProvidersFailedError):
            await router.chat("x")

    async with anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(ask)
    # Both first attempts failed together and opened the breaker; neither retry went out.
    assert down.calls == 2
    assert router.stats()["providers"]["down"]["breaker"]["trips"] == 1
    assert idle(router)


# -- defect 7: exactly half_open_probes probes, async hooks or not --------------------------


async def test_half_open_admits_exactly_its_probes_with_an_async_hook(
    registry: PluginRegistry,
) -> None:
    class SlowHook:
        @orchestrator.hookimpl
        async def on_attempt_start(self, provider: str) -> None:
            await anyio.sleep(0.01)

    registry.register_plugin(SlowHook(), "slow-hook")
    now = [0.0]
    router = Router(
        strategy="first-available",
        registry=registry,
        clock=lambda: now[0],
        breaker=BreakerConfig(consecutive_failures=1, cooldown=10, half_open_probes=1),
    )
    flaky = mock("flaky", mode="server_error", fail_times=1, max_retries=0, latency=0.05)
    router.add_provider(flaky)
    router.add_provider(mock("backup"))
    assert (await router.chat("x")).provider == "backup"  # flaky failed: its breaker opened
    now[0] += 10  # cooldown over: half-open
    served: list[str] = []

    async def ask() -> None:
        served.append((await router.chat("x")).provider)

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(ask)
    assert served.count("flaky") == 1 and flaky.calls == 2
    assert router.stats()["providers"]["flaky"]["breaker"]["state"] == "closed"


# -- defect 8: a plugin's bug is the same with or without hedging --------------------------


class Buggy(MockProvider):
    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        raise KeyError("choices")


@pytest.mark.parametrize("hedge_after", [None, 0.01])
async def test_plugin_bug_propagates_unchanged_with_or_without_hedging(
    hedge_after: float | None,
) -> None:
    router = Router(strategy="first-available", hedge_after=hedge_after)
    router.add_provider(Buggy(MockConfig(name="buggy")))
    router.add_provider(mock("backup", latency=0.2))
    with pytest.raises(KeyError) as info:
        await router.chat("x")
    assert type(info.value) is KeyError
    assert idle(router)


# -- defect 9: once the final chunk arrived the request has succeeded ----------------------


async def test_server_holding_the_response_open_after_the_final_chunk_is_not_an_error() -> None:
    async def holds_open(self: Streams) -> AsyncIterator[Chunk]:
        yield text(self.name, "done")
        yield text(self.name, "", finish=True)
        await anyio.sleep(0.5)  # the server keeps the connection open a while

    router = Router(deadline=0.1)
    provider = Streams("p", holds_open)
    router.add_provider(provider)
    chunks = [c async for c in router.chat_stream("x")]
    assert chunks[-1].finish_reason == "stop"
    stats = router.stats()["providers"]["p"]
    assert stats["successes"] == 1 and stats["failures"] == 0
    assert provider.closed == 1 and idle(router)


# -- defect 13: waiting for a limit past the deadline is a deadline error ------------------


async def test_waiting_for_a_limit_until_the_deadline_is_a_deadline_error() -> None:
    router = Router(on_limit="wait")
    router.add_provider(mock("busy", latency=0.5), limits=ProviderLimits(max_in_flight=1))
    async with anyio.create_task_group() as tg:
        tg.start_soon(router.chat, "occupies the only slot")
        await anyio.sleep(0.01)
        with pytest.raises(DeadlineExceededError):
            await router.chat("waits", deadline=0.1)
    assert idle(router)


# -- defect 14: NaN and infinity are rejected at construction ------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, 0.0])
def test_non_finite_or_non_positive_seconds_are_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="deadline"):
        Router(deadline=bad)
    with pytest.raises(ValueError, match="first_chunk_timeout"):
        Router(first_chunk_timeout=bad)
    router = Router()
    with pytest.raises(ValueError, match="timeout"):
        router.add_provider(mock("a"), timeout=bad)
    if bad != 0.0:
        with pytest.raises(ValueError, match="window"):
            BreakerConfig(window=bad)


async def test_a_nan_deadline_per_call_is_rejected_before_any_call() -> None:
    router = Router()
    provider = mock("a")
    router.add_provider(provider)
    with pytest.raises(ValueError, match="deadline"):
        await router.chat("x", deadline=math.nan)
    assert provider.calls == 0


@pytest.mark.parametrize(
    ("router", "provider", "key"),
    [
        ("deadline = nan", "", "deadline"),
        ("first_chunk_timeout = inf", "", "first_chunk_timeout"),
        ("hedge_after = nan", "", "hedge_after"),
        ("[breaker]\nwindow = nan", "", "window"),
        ("", "timeout = nan", "timeout"),
    ],
)
def test_nan_from_a_toml_config_is_rejected(
    router: str, provider: str, key: str, tmp_path: Any
) -> None:
    path = tmp_path / "orchestrator.toml"
    path.write_text(f"{router}\n[providers.a]\ntype = 'mock'\n{provider}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=key):
        Router.from_config(path)


# -- defect 15: a provider breaking the contract is a failure named after it ---------------


class ReturnsNone(MockProvider):
    async def chat(  # type: ignore[override]
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> None:
        self.calls += 1


async def test_chat_returning_none_is_a_recorded_failure_naming_the_provider() -> None:
    router = Router(strategy="first-available")
    router.add_provider(ReturnsNone(MockConfig(name="none")))
    router.add_provider(mock("backup"))
    assert (await router.chat("x")).provider == "backup"
    assert router.stats()["providers"]["none"]["failures"] == 1
    router.remove_provider("backup")
    with pytest.raises(AllProvidersFailedError, match=r"ReturnsNone\.chat\(\) returned NoneType"):
        await router.chat("x")


async def test_stream_yielding_a_non_chunk_is_a_failure_naming_the_provider() -> None:
    async def yields_str(self: Streams) -> AsyncIterator[Any]:
        yield "not a chunk"

    router = Router(strategy="first-available")
    router.add_provider(Streams("odd", yields_str))
    router.add_provider(mock("backup"))
    chunks = [c async for c in router.chat_stream("x")]
    assert chunks[-1].provider == "backup"
    assert router.stats()["providers"]["odd"]["last_error"].startswith("ProviderError: Streams")


# -- defect 17: every request start has exactly one end, with its outcome ------------------


class Ends:
    def __init__(self) -> None:
        self.starts = 0
        self.ends: list[tuple[str, Any, Any]] = []

    @orchestrator.hookimpl
    def on_request_start(self, request: Any) -> None:
        self.starts += 1

    @orchestrator.hookimpl
    def on_request_end(self, result: Any, error: Any, outcome: str) -> None:
        self.ends.append((outcome, result, error))


async def test_every_request_ends_once_with_its_outcome(registry: PluginRegistry) -> None:
    ends = Ends()
    registry.register_plugin(ends, "ends")
    router = Router(strategy="first-available", registry=registry)
    router.add_provider(mock("slow", latency=1))
    with anyio.move_on_after(0.05):
        await router.chat("cancelled chat")
    assert ends.ends[-1] == ("cancelled", None, None)

    router = Router(strategy="first-available", registry=registry)
    router.add_provider(mock("a"))
    chunks = [c async for c in router.chat_stream("one two three")]
    outcome, result, error = ends.ends[-1]
    assert outcome == "ok" and error is None
    assert result.text == "".join(c.delta for c in chunks) and result.finish_reason == "stop"
    assert result.usage == chunks[-1].usage and result.provider == "a"

    async with contextlib.aclosing(router.chat_stream("one two three")) as stream:
        await anext(stream)  # abandoned after its first chunk
    assert ends.ends[-1] == ("cancelled", None, None)

    failing = Router(registry=registry)
    failing.add_provider(mock("down", mode="auth_error"))
    with pytest.raises(AllProvidersFailedError):
        await failing.chat("x")
    assert ends.ends[-1][0] == "error" and isinstance(ends.ends[-1][2], AllProvidersFailedError)
    assert ends.starts == len(ends.ends) == 4


# -- compatibility with the original project's users ---------------------------------------


async def test_every_router_failure_is_caught_by_except_provider_error() -> None:
    with pytest.raises(ProviderError):
        await Router().route("x")  # no providers
    router = Router()
    router.add_provider(mock("down", mode="rate_limit", max_retries=0))
    with pytest.raises(ProviderError) as info:
        await router.route("x")
    assert isinstance(info.value, AllProvidersFailedError)
    assert isinstance(info.value, ExceptionGroup)
    assert isinstance(NoProvidersError("x"), ProviderError)


async def test_all_providers_failed_is_an_exception_group_for_except_star() -> None:
    router = Router(strategy="first-available")
    router.add_provider(mock("limited", mode="rate_limit", max_retries=0))
    router.add_provider(mock("down", mode="server_error", max_retries=0))
    caught: list[type[BaseException]] = []
    try:
        await router.chat("x")
    except* RateLimitError as group:
        caught.extend(type(e) for e in group.exceptions)
    except* ServiceUnavailableError as group:
        caught.extend(type(e) for e in group.exceptions)
    assert caught == [RateLimitError, ServiceUnavailableError]


# -- issue 12, item 10: the failure lists every provider of the plan -----------------------


async def test_all_failed_names_every_provider_and_why_it_was_skipped() -> None:
    now = [0.0]
    router = Router(
        strategy="first-available",
        clock=lambda: now[0],
        breaker=BreakerConfig(consecutive_failures=1, cooldown=60),
    )
    router.add_provider(mock("open", mode="server_error", max_retries=0))
    router.add_provider(mock("held", mode="rate_limit", retry_after=600, max_retries=0))
    router.add_provider(mock("spent"), budget="0")
    router.add_provider(mock("full", latency=1), limits=ProviderLimits(max_in_flight=1))
    router.add_provider(mock("picky"))
    # Trip "open", put "held" on hold, and fill "full"'s only slot.
    with pytest.raises(AllProvidersFailedError):
        await router.chat("x", provider="open")
    with pytest.raises(AllProvidersFailedError):
        await router.chat("x", provider="held")
    router.remove_provider("picky")

    class Picky(MockProvider):
        def validate_params(self, params: GenerationParams) -> None:
            raise orchestrator.InvalidRequestError("temperature is not supported")

    router.add_provider(Picky(MockConfig(name="picky")))
    async with anyio.create_task_group() as tg:
        tg.start_soon(router.chat, "occupy", None)
        with anyio.fail_after(5):  # polled, not slept: a loaded machine may take longer
            while router.stats()["providers"]["full"]["limits"]["in_flight"] < 1:
                await anyio.sleep(0.001)
        with pytest.raises(AllProvidersFailedError) as info:
            await router.chat("x", {"temperature": 0.5})
        tg.cancel_scope.cancel()
    message = str(info.value)
    for line in (
        "open (skipped): ServiceUnavailableError: circuit breaker open",
        "held (skipped): RateLimitError: held off",
        "spent (skipped): QuotaExceededError: its budget of 0 RUB is spent",
        "full (skipped): RateLimitError: local limit max_in_flight=1 reached",
        "picky (skipped): InvalidRequestError: temperature is not supported",
    ):
        assert line in message
    assert message.startswith("All providers failed after 0 attempt(s)")


# -- found by the soak ---------------------------------------------------------------------


def test_half_open_admits_exactly_its_probes_in_all_and_releases_them() -> None:
    from orchestrator.health import CircuitBreaker

    now = [0.0]
    breaker = CircuitBreaker(
        BreakerConfig(consecutive_failures=1, cooldown=1, half_open_probes=3), lambda: now[0]
    )
    assert breaker.acquire()
    breaker.on_failure(ServiceUnavailableError("down", status_code=503))
    now[0] = 2
    admitted = sum(breaker.acquire() for _ in range(5))
    assert admitted == 3
    breaker.on_success()
    assert not breaker.acquire(), "a finished probe does not make room for a fourth"
    breaker.on_cancel()  # a probe ended without a verdict: room for one more
    assert breaker.acquire()
    breaker.on_success()
    breaker.on_success()
    assert breaker.state == "closed"
    assert breaker._probes_in_flight == 0 and breaker._probe_successes == 0


async def test_all_providers_failed_keeps_its_type_through_a_cancel_scope() -> None:
    # trio's cancel scopes split() every exception group passing through them.
    router = Router(breaker=BreakerConfig(consecutive_failures=1, cooldown=60))
    router.add_provider(mock("down", mode="server_error", max_retries=0))
    with pytest.raises(AllProvidersFailedError):
        await router.chat("trips the breaker")
    with pytest.raises(ProviderError) as info, anyio.move_on_after(0):
        await router.chat("refused at once")
    assert type(info.value) is AllProvidersFailedError
    assert info.value.attempts[0].skipped


# -- a per-request model (issue 12, item 4) -------------------------------------------------


class Switches(MockProvider):
    """A provider that can answer from another model per request."""

    supports_model_override = True

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        completion = await super().chat(messages, params)
        model = params.model if params is not None and params.model else self.config.model
        return Completion(completion.text, self.name, model, usage=completion.usage)


async def test_a_per_request_model_goes_only_to_providers_that_can_switch() -> None:
    router = Router(strategy="first-available")
    fixed = mock("fixed")
    router.add_provider(fixed)
    router.add_provider(Switches(MockConfig(name="switches")))
    completion = await router.chat("x", {"model": "big-1"})
    assert (completion.provider, completion.model) == ("switches", "big-1")
    assert fixed.calls == 0  # refused before any call, not answered from its own model
    router.remove_provider("switches")
    with pytest.raises(AllProvidersFailedError, match="cannot switch models per request"):
        await router.chat("x", {"model": "big-1"})
    assert fixed.calls == 0
    assert (await router.chat("x")).model == "mock-1"
