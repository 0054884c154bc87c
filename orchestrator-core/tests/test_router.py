"""Router semantics: retry, failover, bugs propagate, streams never mix, deadlines, cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import anyio
import pytest

from orchestrator import Router
from orchestrator.errors import (
    AllProvidersFailedError,
    AuthenticationError,
    ConfigurationError,
    DeadlineExceededError,
    InvalidRequestError,
    NoProvidersError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
    StreamInterruptedError,
)
from orchestrator.providers import BaseProvider, GenerationParams, MockConfig, MockProvider
from orchestrator.types import Chunk, Completion, Message

pytestmark = pytest.mark.anyio


def mock(name: str, **settings: object) -> MockProvider:
    settings.setdefault("backoff_base", 0.001)
    settings.setdefault("backoff_max", 0.01)
    return MockProvider(MockConfig(name=name, **settings))  # type: ignore[arg-type]


async def test_empty_router_is_a_clear_error() -> None:
    with pytest.raises(NoProvidersError, match="add_provider"):
        await Router().route("hi")


def test_unknown_strategy_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="round-robin") as info:
        Router(strategy="fastest-please")
    assert "first-available" in str(info.value)


def test_duplicate_provider_name_is_rejected() -> None:
    router = Router()
    router.add_provider(mock("a"))
    with pytest.raises(ValueError, match="already"):
        router.add_provider(mock("a"))
    with pytest.raises(TypeError):
        router.add_provider("a")  # type: ignore[arg-type]


def test_remove_provider() -> None:
    router = Router()
    a = mock("a")
    router.add_provider(a)
    router.add_provider(mock("b"))
    assert router.remove_provider("a") is a
    assert [p.name for p in router.providers] == ["b"]
    with pytest.raises(KeyError):
        router.remove_provider("a")


async def test_transient_errors_retry_same_provider_then_succeed() -> None:
    flaky = mock("flaky", mode="server_error", fail_times=2, max_retries=3)
    router = Router(strategy="first-available")
    router.add_provider(flaky)
    router.add_provider(mock("backup"))
    completion = await router.chat("hi")
    assert completion.provider == "flaky"
    assert flaky.calls == 3


async def test_max_retries_zero_means_one_call_then_failover() -> None:
    flaky = mock("flaky", mode="rate_limit", max_retries=0)
    backup = mock("backup")
    router = Router(strategy="first-available")
    router.add_provider(flaky)
    router.add_provider(backup)
    assert (await router.chat("hi")).provider == "backup"
    assert flaky.calls == 1


async def test_non_transient_error_fails_over_without_retry() -> None:
    bad = mock("bad", mode="auth_error", max_retries=5)
    router = Router(strategy="first-available")
    router.add_provider(bad)
    router.add_provider(mock("good"))
    assert (await router.chat("x")).provider == "good"
    assert bad.calls == 1


async def test_all_failed_lists_every_attempt() -> None:
    router = Router(strategy="first-available")
    router.add_provider(mock("a", mode="auth_error"))
    router.add_provider(mock("b", mode="timeout", max_retries=1))
    with pytest.raises(AllProvidersFailedError) as info:
        await router.route("x")
    names = [(a.provider, a.attempt) for a in info.value.attempts]
    assert names == [("a", 1), ("b", 1), ("b", 2)]
    assert isinstance(info.value.errors[0], AuthenticationError)
    assert "b (attempt 2)" in str(info.value)


class Buggy(BaseProvider):
    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        raise KeyError("plugin bug")

    async def health_check(self) -> bool:
        return True


async def test_plugin_bug_propagates_unchanged() -> None:
    from orchestrator.providers import ProviderConfig

    backup = mock("backup")
    router = Router(strategy="first-available")
    router.add_provider(Buggy(ProviderConfig(name="buggy")))
    router.add_provider(backup)
    with pytest.raises(KeyError, match="plugin bug"):
        await router.route("x")
    assert backup.calls == 0


async def test_retry_after_is_honoured_exactly() -> None:
    slept: list[float] = []
    now = [1000.0]

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)
        now[0] += delay
        await anyio.lowlevel.checkpoint()

    limited = mock("limited", mode="rate_limit", fail_times=1, retry_after=0.25, backoff_max=1)
    router = Router(clock=lambda: now[0], sleep=fake_sleep)
    router.add_provider(limited)
    assert (await router.chat("x")).provider == "limited"
    assert slept == [0.25]


async def test_retry_after_longer_than_cap_fails_over_now() -> None:
    limited = mock("limited", mode="rate_limit", retry_after=60, backoff_max=5)
    router = Router(strategy="first-available")
    router.add_provider(limited)
    router.add_provider(mock("backup"))
    with anyio.fail_after(5):
        assert (await router.chat("x")).provider == "backup"
    assert limited.calls == 1


async def test_invalid_params_rejected_before_any_call() -> None:
    provider = mock("a")
    router = Router()
    router.add_provider(provider)
    with pytest.raises(ValueError, match="temperature"):
        await router.route("x", {"temperature": 7})
    with pytest.raises(ValueError, match=r"unexpected|Extra inputs"):
        await router.route("x", {"temprature": 0.1})
    with pytest.raises(ValueError, match="role"):
        await router.chat([{"role": "robot", "content": "hi"}])
    with pytest.raises(ValueError, match="at least one"):
        await router.chat([])
    assert provider.calls == 0


class Picky(MockProvider):
    def validate_params(self, params: GenerationParams) -> None:
        if params.temperature > 1:
            raise InvalidRequestError("temperature above 1 is not supported; use <= 1")


async def test_provider_param_validation_fails_over_without_network() -> None:
    picky = Picky(MockConfig(name="picky"))
    router = Router(strategy="first-available")
    router.add_provider(picky)
    router.add_provider(mock("lenient"))
    completion = await router.chat("x", GenerationParams(temperature=1.5))
    assert completion.provider == "lenient"
    assert picky.calls == 0


async def test_pinned_provider_and_unknown_pin() -> None:
    router = Router()
    router.add_provider(mock("a"))
    router.add_provider(mock("b"))
    assert (await router.chat("x", provider="b")).provider == "b"
    with pytest.raises(ConfigurationError, match="No provider named 'zz'"):
        await router.chat("x", provider="zz")


async def test_completion_carries_usage_and_request_id() -> None:
    router = Router()
    router.add_provider(mock("a"))
    completion = await router.chat([Message("user", "one two")])
    assert isinstance(completion, Completion)
    assert completion.usage is not None and completion.usage.prompt_tokens == 2
    assert completion.request_id == "mock-1"
    assert completion.finish_reason == "stop"


# -- streams ------------------------------------------------------------------------------


async def test_stream_reassembles_to_chat_text() -> None:
    router = Router()
    router.add_provider(mock("a"))
    chunks = [c async for c in router.chat_stream("hello stream")]
    assert "".join(c.delta for c in chunks) == (await router.chat("hello stream")).text
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage is not None
    assert all(c.provider == "a" for c in chunks)


async def test_stream_fails_over_before_first_chunk() -> None:
    router = Router(strategy="first-available")
    router.add_provider(mock("down", mode="server_error", max_retries=0))
    router.add_provider(mock("up"))
    chunks = [c async for c in router.chat_stream("hi")]
    assert {c.provider for c in chunks} == {"up"}


async def test_stream_failure_after_first_chunk_is_not_mixed() -> None:
    router = Router(strategy="first-available")
    cut = mock("cut", mode="stream_failure", fail_after_chunks=2)
    backup = mock("backup")
    router.add_provider(cut)
    router.add_provider(backup)
    received: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        async for text in router.route_stream("one two three four"):
            received.append(text)
    assert info.value.provider == "cut"
    assert info.value.partial_text == "".join(received) == "Mock response"
    assert backup.calls == 0


class Truncating(MockProvider):
    """Ends its stream without a final chunk: a truncated stream."""

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        yield Chunk("partial", provider=self.name)


async def test_truncated_stream_never_ends_as_success() -> None:
    router = Router()
    router.add_provider(Truncating(MockConfig(name="t")))
    with pytest.raises(StreamInterruptedError, match="truncated") as info:
        async for _ in router.route_stream("x"):
            pass
    assert info.value.partial_text == "partial"


class Silent(MockProvider):
    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        yield Chunk("", provider=self.name)


async def test_empty_stream_fails_over() -> None:
    router = Router(strategy="first-available")
    router.add_provider(Silent(MockConfig(name="silent", max_retries=0)))
    router.add_provider(mock("b"))
    assert [c.provider async for c in router.chat_stream("x")][0] == "b"


async def test_stream_all_failed() -> None:
    router = Router()
    router.add_provider(mock("a", mode="auth_error"))
    with pytest.raises(AllProvidersFailedError):
        async for _ in router.chat_stream("x"):
            pass


# -- deadlines and cancellation -------------------------------------------------------------


async def test_deadline_bounds_retries_and_fallbacks() -> None:
    router = Router(strategy="first-available", deadline=0.2)
    router.add_provider(mock("slow", latency=5))
    with anyio.fail_after(3), pytest.raises(DeadlineExceededError, match="deadline"):
        await router.route("x")


async def test_stream_deadline() -> None:
    router = Router(strategy="first-available")
    router.add_provider(mock("slow", latency=5))
    with anyio.fail_after(3), pytest.raises(DeadlineExceededError):
        async for _ in router.chat_stream("x", deadline=0.1):
            pass


async def test_cancellation_propagates_and_frees_the_slot() -> None:
    router = Router()
    router.add_provider(mock("slow", latency=5))
    with anyio.move_on_after(0.05) as scope:
        await router.route("x")
    assert scope.cancelled_caught
    assert router.stats()["providers"]["slow"]["in_flight"] == 0
    assert router.stats()["providers"]["slow"]["breaker"]["state"] == "closed"


async def test_breaker_opens_and_router_skips_provider() -> None:
    from orchestrator.health import BreakerConfig

    router = Router(
        strategy="first-available", breaker=BreakerConfig(consecutive_failures=2, cooldown=60)
    )
    bad = mock("bad", mode="server_error", max_retries=0)
    router.add_provider(bad)
    router.add_provider(mock("good"))
    for _ in range(3):
        assert (await router.chat("x")).provider == "good"
    assert bad.calls == 2
    assert router.stats()["providers"]["bad"]["breaker"]["state"] == "open"


async def test_no_call_reaches_an_open_breaker_until_its_cooldown_ends() -> None:
    from orchestrator.health import BreakerConfig

    now = [0.0]
    router = Router(
        breaker=BreakerConfig(consecutive_failures=1, cooldown=60), clock=lambda: now[0]
    )
    first = mock("first", mode="server_error", fail_times=1, max_retries=0)
    router.add_provider(first)
    with pytest.raises(AllProvidersFailedError):
        await router.route("x")
    assert router.stats()["providers"]["first"]["breaker"]["state"] == "open"
    with pytest.raises(AllProvidersFailedError, match=r"first \(skipped\).*breaker open") as info:
        await router.route("again")
    assert first.calls == 1 and info.value.attempts[0].skipped
    now[0] += 60  # the cooldown ends: one probe goes through and closes the breaker
    assert await router.route("again") == "Mock response to: again"
    assert router.stats()["providers"]["first"]["breaker"]["state"] == "closed"


async def test_health_check_never_raises() -> None:
    class Exploding(MockProvider):
        async def health_check(self) -> bool:
            raise RuntimeError("boom")

    router = Router()
    router.add_provider(mock("ok"))
    router.add_provider(Exploding(MockConfig(name="boom")))
    router.add_provider(mock("down", mode="auth_error"))
    assert await router.health_check() == {"ok": True, "boom": False, "down": False}


async def test_router_context_manager_closes_providers() -> None:
    async with Router() as router:
        router.add_provider(mock("a"))
        await router.route("x")


async def test_errors_in_stream_are_typed_for_transport_failures() -> None:
    import httpx

    class Broken(MockProvider):
        async def chat(
            self, messages: Sequence[Message], params: GenerationParams | None = None
        ) -> Completion:
            raise httpx.ConnectError("refused")

    router = Router()
    router.add_provider(Broken(MockConfig(name="broken", max_retries=0)))
    with pytest.raises(AllProvidersFailedError) as info:
        await router.route("x")
    assert type(info.value.errors[0]).__name__ == "TransportError"
    assert info.value.errors[0].transient


def test_error_classes() -> None:
    assert RateLimitError("x").transient
    assert ServiceUnavailableError("x").transient
    assert not AuthenticationError("x").transient
    assert StreamError("x").transient


async def test_closing_a_stream_early_releases_the_provider_stream_at_once() -> None:
    import contextlib

    closed: list[str] = []

    class Tracked(MockProvider):
        async def stream(
            self, messages: Sequence[Message], params: GenerationParams | None = None
        ) -> AsyncIterator[Chunk]:
            inner = super().stream(messages, params)
            try:
                async with contextlib.aclosing(inner):
                    async for chunk in inner:
                        yield chunk
            finally:
                closed.append(self.name)

    router = Router()
    router.add_provider(Tracked(MockConfig(name="t")))
    for make in (router.route_stream, router.chat_stream):
        closed.clear()
        stream = make("one two three four")
        async with contextlib.aclosing(stream):
            async for _ in stream:
                break
        assert closed == ["t"]  # released on close, not at garbage collection
        assert router.stats()["providers"]["t"]["in_flight"] == 0
