"""Circuit breaker transitions and passive health, driven by a controllable clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import InvalidRequestError, RateLimitError, ServiceUnavailableError
from orchestrator.health import BreakerConfig, CircuitBreaker, HealthStats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


FAIL = ServiceUnavailableError("down", status_code=503)


def test_closed_open_half_open_closed() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(consecutive_failures=3, cooldown=10), clock)
    for _ in range(2):
        assert breaker.acquire()
        breaker.on_failure(FAIL)
    assert breaker.state == "closed"
    breaker.on_failure(FAIL)
    assert breaker.state == "open" and not breaker.admits()
    clock.now += 9.9
    assert not breaker.acquire()
    clock.now += 0.2
    assert breaker.state == "half_open"
    assert breaker.acquire()  # the probe
    assert not breaker.acquire()  # only one probe at a time
    breaker.on_success()
    assert breaker.state == "closed"
    assert breaker.acquire()


def test_failed_probe_reopens_with_longer_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        BreakerConfig(consecutive_failures=1, cooldown=10, max_cooldown=25), clock
    )
    breaker.on_failure(FAIL)
    assert breaker.snapshot()["open_for"] == 10
    clock.now += 10
    assert breaker.acquire()
    breaker.on_failure(FAIL)
    assert breaker.state == "open" and breaker.snapshot()["open_for"] == 20
    clock.now += 20
    assert breaker.acquire()
    breaker.on_failure(FAIL)
    assert breaker.snapshot()["open_for"] == 25  # capped
    assert breaker.snapshot()["trips"] == 3


def test_failure_rate_threshold_needs_min_samples() -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        BreakerConfig(consecutive_failures=100, failure_rate=0.5, min_samples=6), clock
    )
    for _ in range(2):
        breaker.on_success()
        breaker.on_failure(FAIL)
    assert breaker.state == "closed"  # 2/4 failures but only 4 samples
    breaker.on_success()
    breaker.on_failure(FAIL)
    assert breaker.state == "open"  # 3/6


def test_window_ages_out() -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        BreakerConfig(consecutive_failures=100, failure_rate=0.5, min_samples=4, window=10),
        clock,
    )
    for _ in range(2):
        breaker.on_success()
        breaker.on_success()
        breaker.on_failure(FAIL)
    assert breaker.state == "closed"  # 2 of 6 failed
    clock.now += 11
    for _ in range(3):
        breaker.on_failure(FAIL)
    assert breaker.state == "closed"  # 3 samples in the window: old events no longer count
    breaker.on_success()
    breaker.on_failure(FAIL)
    assert breaker.state == "open"  # 4 of 5 in the window


def test_retry_after_holds_exactly_that_long() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(), clock)
    breaker.on_failure(RateLimitError("slow", retry_after=7))
    assert breaker.state == "closed" and not breaker.admits()
    clock.now += 6.99
    assert not breaker.admits()
    clock.now += 0.02
    assert breaker.admits()


def test_invalid_requests_do_not_count() -> None:
    breaker = CircuitBreaker(BreakerConfig(consecutive_failures=1), Clock())
    breaker.on_failure(InvalidRequestError("bad prompt"))
    assert breaker.state == "closed"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        BreakerConfig(failure_rate=0)
    with pytest.raises(ValueError, match="at least 1"):
        BreakerConfig(consecutive_failures=0)


@given(st.lists(st.booleans(), max_size=60))
def test_breaker_state_is_always_valid(outcomes: list[bool]) -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(consecutive_failures=3, cooldown=1), clock)
    for ok in outcomes:
        clock.now += 0.4
        if breaker.acquire():
            breaker.on_success() if ok else breaker.on_failure(FAIL)
        assert breaker.state in ("closed", "open", "half_open")
        if breaker.state == "closed":
            assert breaker.admits()


def test_health_stats_window_and_percentiles() -> None:
    clock = Clock()
    stats = HealthStats(window=10, clock=clock)
    for latency in (0.1, 0.2, 0.3, 0.4):
        stats.record_success(latency)
    stats.record_failure(FAIL)
    assert stats.window_counts() == (4, 1)
    assert stats.percentile(0.5) == 0.2
    assert stats.percentile(0.95) == 0.4
    clock.now += 11
    assert stats.window_counts() == (0, 0)
    assert stats.successes == 4 and stats.failures == 1
    snapshot = stats.snapshot()
    assert snapshot["latency_p50"] == 0.2 and "down" in snapshot["last_error"]
