"""Backoff schedule and BaseProvider._retry_with_backoff."""

from __future__ import annotations

import random

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import (
    AuthenticationError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    TransportError,
)
from orchestrator.providers import MockConfig, MockProvider
from orchestrator.retry import RetryPolicy


@given(
    retry=st.integers(min_value=1, max_value=50),
    base=st.floats(min_value=0, max_value=10),
    cap=st.floats(min_value=0, max_value=100),
    retry_after=st.none() | st.floats(min_value=0, max_value=200),
    seed=st.integers(),
)
def test_every_delay_within_cap_and_retry_after_respected(
    retry: int, base: float, cap: float, retry_after: float | None, seed: int
) -> None:
    policy = RetryPolicy(max_retries=50, base=base, cap=cap)
    delay = policy.delay(retry, retry_after, random.Random(seed))
    if retry_after is not None and retry_after > cap:
        assert delay is None
        return
    assert delay is not None
    assert 0 <= delay <= cap
    assert delay <= base * 2 ** (retry - 1) or retry_after is not None
    if retry_after is not None:
        assert delay == retry_after


@given(st.integers(min_value=0, max_value=10))
def test_max_retries_counts_retries_after_first_attempt(max_retries: int) -> None:
    policy = RetryPolicy(max_retries=max_retries)
    allowed = [n for n in range(1, 15) if policy.delay(n) is not None]
    assert allowed == list(range(1, max_retries + 1))


def make(max_retries: int) -> MockProvider:
    return MockProvider(
        MockConfig(name="p", max_retries=max_retries, backoff_base=0.001, backoff_max=0.01)
    )


@pytest.mark.anyio
@pytest.mark.parametrize("max_retries", [0, 1, 3])
async def test_retry_with_backoff_call_counts(max_retries: int) -> None:
    provider = make(max_retries)
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        raise ServiceUnavailableError("down", status_code=503)

    with pytest.raises(ServiceUnavailableError) as info:
        await provider._retry_with_backoff(failing)
    assert calls == max_retries + 1
    assert info.value.provider == "p"


@pytest.mark.anyio
async def test_only_transient_errors_are_retried() -> None:
    provider = make(5)
    calls = 0

    async def denied() -> str:
        nonlocal calls
        calls += 1
        raise AuthenticationError("no")

    with pytest.raises(AuthenticationError):
        await provider._retry_with_backoff(denied)
    assert calls == 1


@pytest.mark.anyio
async def test_retry_then_success_and_retry_after() -> None:
    provider = make(3)
    provider.config.backoff_max = 1
    outcomes = [RateLimitError("slow down", retry_after=0.01), "ok"]

    async def sometimes() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert await provider._retry_with_backoff(sometimes) == "ok"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.ConnectError("refused"), TransportError),
        (httpx.ReadTimeout("slow"), ProviderTimeoutError),
        (httpx.RemoteProtocolError("reset"), TransportError),
    ],
)
async def test_transport_errors_are_mapped_and_retried(
    raised: Exception, expected: type[Exception]
) -> None:
    provider = make(1)
    calls = 0

    async def broken() -> str:
        nonlocal calls
        calls += 1
        raise raised

    with pytest.raises(expected) as info:
        await provider._retry_with_backoff(broken)
    assert calls == 2
    assert info.value.__cause__ is raised


@pytest.mark.anyio
async def test_other_exceptions_are_not_touched() -> None:
    provider = make(3)

    async def bug() -> str:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await provider._retry_with_backoff(bug)
