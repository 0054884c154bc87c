"""Per-provider health from real traffic, and the circuit breaker.

Health is passive: every attempt the router makes is recorded (success/error counts over a
sliding time window, EWMA latency, p50/p95 over recent successes, time to first chunk,
in-flight count). The breaker decides whether a provider is asked at all:

- **closed**: requests flow. It opens after ``consecutive_failures`` failures in a row, or
  when the failure rate over the window reaches ``failure_rate`` with at least
  ``min_samples`` calls in it.
- **open**: no requests for ``cooldown`` seconds; the cooldown doubles (up to
  ``max_cooldown``) each time the breaker trips again without closing in between.
- **half-open**: after the cooldown, up to ``half_open_probes`` requests go through; it closes
  when that many succeed, and opens again (with a longer cooldown) on any failure.

A rate-limit error that carries ``Retry-After`` holds the provider off for exactly that long,
independently of the breaker. Invalid requests (the caller's fault) never count as failures.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from orchestrator.capabilities import Capabilities, EmbeddingSpace
from orchestrator.errors import InvalidRequestError

if TYPE_CHECKING:
    from orchestrator.limits import LimitState
    from orchestrator.pricing import PriceTable
    from orchestrator.providers.base import BaseProvider
    from orchestrator.types import Usage

__all__ = ["BreakerConfig", "BreakerState", "CircuitBreaker", "HealthStats", "ProviderSlot"]

BreakerState = Literal["closed", "open", "half_open"]
Clock = Callable[[], float]
#: A retry that slept exactly its ``Retry-After`` may wake a clock tick early; it is not
#: held off again for that.
_HOLD_SLACK = 0.001


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Thresholds of the circuit breaker (defaults suit interactive traffic)."""

    consecutive_failures: int = 5
    failure_rate: float = 0.5
    min_samples: int = 10
    window: float = 60.0
    cooldown: float = 15.0
    max_cooldown: float = 300.0
    half_open_probes: int = 1

    def __post_init__(self) -> None:
        for name in ("failure_rate", "window", "cooldown", "max_cooldown"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"breaker {name} must be a finite number, got {value!r}")
        if self.consecutive_failures < 1 or self.min_samples < 1 or self.half_open_probes < 1:
            raise ValueError("breaker thresholds must be at least 1")
        if not 0.0 < self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be in (0, 1]")
        if self.window <= 0 or self.cooldown < 0 or self.max_cooldown < self.cooldown:
            raise ValueError("window must be > 0 and 0 <= cooldown <= max_cooldown")


def counts_as_failure(error: BaseException) -> bool:
    """Whether ``error`` says something about the provider's health."""
    return not isinstance(error, InvalidRequestError)


class HealthStats:
    """Passive health of one provider, from the attempts the router made."""

    EWMA_ALPHA = 0.2
    RECENT = 200

    def __init__(self, window: float = 60.0, clock: Clock = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._events: deque[tuple[float, bool]] = deque()
        self._window_ok = 0  # successes among _events, kept incrementally (O(1) per call)
        self._recent_latencies: deque[float] = deque(maxlen=self.RECENT)
        self.latency_ewma: float | None = None
        self.ttfc_ewma: float | None = None
        self.in_flight = 0
        self.successes = 0
        self.failures = 0
        self.last_failure_at: float | None = None
        self.last_error: str | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = Decimal(0)

    def _age_out(self, now: float) -> None:
        horizon = now - self.window
        events = self._events
        while events and events[0][0] < horizon:
            if events.popleft()[1]:
                self._window_ok -= 1

    def record_success(self, latency: float) -> None:
        now = self.clock()
        self.successes += 1
        events = self._events
        events.append((now, True))
        self._window_ok += 1
        if events[0][0] < now - self.window:
            self._age_out(now)
        self._recent_latencies.append(latency)
        ewma = self.latency_ewma
        self.latency_ewma = latency if ewma is None else ewma + self.EWMA_ALPHA * (latency - ewma)

    def record_failure(self, error: BaseException) -> None:
        now = self.clock()
        self.failures += 1
        self.last_failure_at = now
        self.last_error = f"{type(error).__name__}: {error}"
        self._events.append((now, False))
        self._age_out(now)

    def record_first_chunk(self, latency: float) -> None:
        ewma = self.ttfc_ewma
        self.ttfc_ewma = latency if ewma is None else ewma + self.EWMA_ALPHA * (latency - ewma)

    def record_usage(self, usage: Usage | None, cost: Decimal | None) -> None:
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
        if cost is not None:
            self.cost += cost

    def window_counts(self) -> tuple[int, int]:
        """(successes, failures) within the sliding window."""
        self._age_out(self.clock())
        return self._window_ok, len(self._events) - self._window_ok

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) of recent successful latencies, nearest-rank."""
        data = sorted(self._recent_latencies)
        if not data:
            return None
        rank = max(1, math.ceil(q * len(data)))
        return data[rank - 1]

    def snapshot(self) -> dict[str, Any]:
        ok, bad = self.window_counts()
        return {
            "successes": self.successes,
            "failures": self.failures,
            "window_successes": ok,
            "window_failures": bad,
            "in_flight": self.in_flight,
            "latency_ewma": self.latency_ewma,
            "latency_p50": self.percentile(0.5),
            "latency_p95": self.percentile(0.95),
            "first_chunk_ewma": self.ttfc_ewma,
            "last_error": self.last_error,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": str(self.cost),
        }


class CircuitBreaker:
    """closed -> open -> half-open -> closed, driven by ``clock`` (injectable for tests)."""

    def __init__(self, config: BreakerConfig | None = None, clock: Clock = time.monotonic) -> None:
        self.config = config or BreakerConfig()
        self.clock = clock
        self._events: deque[tuple[float, bool]] = deque()
        self._events_bad = 0  # failures among _events, kept incrementally
        self._state: BreakerState = "closed"
        self._consecutive = 0
        self._trips = 0
        self._open_until = 0.0
        self._hold_until = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._lock = threading.Lock()
        #: Bumped whenever this breaker opens, closes or is held off by its own traffic
        #: (not when it adopts another router's state): what a shared state publishes.
        self.changes = 0

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose cooldown ended reports half-open."""
        if self._state == "open" and self.clock() >= self._open_until:
            return "half_open"
        return self._state

    def held_for(self) -> float:
        """Seconds left of a ``Retry-After`` hold (0 when not held)."""
        left = self._hold_until - self.clock()
        return left if left > _HOLD_SLACK else 0.0

    def open_for(self) -> float:
        """Seconds left before an open breaker lets a probe through (0 when not open)."""
        return max(0.0, self._open_until - self.clock()) if self._state == "open" else 0.0

    def admits(self) -> bool:
        """Whether a request may go to this provider now (does not reserve a probe)."""
        now = self.clock()
        if now + _HOLD_SLACK < self._hold_until:
            return False
        if self._state == "closed":
            return True
        if self._state == "open":
            return now >= self._open_until
        # Half-open: exactly `half_open_probes` probes in all, not that many at a time; one
        # that ended without a verdict (cancelled) makes room for another.
        return self._probes_in_flight + self._probe_successes < self.config.half_open_probes

    def acquire(self) -> bool:
        """Reserve the right to send one request; half-open admits a limited few."""
        if self._state == "closed":  # nothing to reserve: no lock needed
            return self.clock() + _HOLD_SLACK >= self._hold_until
        with self._lock:
            if not self.admits():
                return False
            if self._state == "open":
                self._state = "half_open"
                self._probes_in_flight = 0
                self._probe_successes = 0
            if self._state == "half_open":
                self._probes_in_flight += 1
            return True

    def _window(self, now: float, ok: bool) -> tuple[int, int]:
        """Record one outcome; (calls, failures) within the window, in O(1) amortized."""
        events = self._events
        events.append((now, ok))
        if not ok:
            self._events_bad += 1
        horizon = now - self.config.window
        while events and events[0][0] < horizon:
            if not events.popleft()[1]:
                self._events_bad -= 1
        return len(events), self._events_bad

    def on_success(self) -> None:
        now = self.clock()
        events = self._events
        if self._state == "closed" and events and events[0][0] >= now - self.config.window:
            # The common case needs no lock: nothing to age out (the failure count stays as
            # it is), and a deque append and a store are atomic.
            self._consecutive = 0
            events.append((now, True))
            return
        with self._lock:
            self._consecutive = 0
            self._window(now, True)
            if self._state == "half_open":
                self._probes_in_flight = max(0, self._probes_in_flight - 1)
                self._probe_successes += 1
                if self._probe_successes >= self.config.half_open_probes:
                    self._state = "closed"
                    self._trips = 0
                    self._probes_in_flight = 0
                    self._probe_successes = 0
                    self._events.clear()
                    self._events_bad = 0
                    self.changes += 1

    def on_failure(self, error: BaseException) -> None:
        retry_after = getattr(error, "retry_after", None)
        with self._lock:
            now = self.clock()
            if retry_after is not None and retry_after > 0:
                self._hold_until = max(self._hold_until, now + retry_after)
                self.changes += 1
            if not counts_as_failure(error):
                if self._state == "half_open":
                    self._probes_in_flight = max(0, self._probes_in_flight - 1)
                return
            self._consecutive += 1
            total, bad = self._window(now, False)
            if self._state == "half_open" or (
                self._state == "closed"
                and (
                    self._consecutive >= self.config.consecutive_failures
                    or (
                        total >= self.config.min_samples and bad / total >= self.config.failure_rate
                    )
                )
            ):
                self._trip(now)

    def on_cancel(self) -> None:
        """A reserved request ended without a verdict (cancelled)."""
        with self._lock:
            if self._state == "half_open":
                self._probes_in_flight = max(0, self._probes_in_flight - 1)

    def _trip(self, now: float) -> None:
        cooldown = min(self.config.max_cooldown, self.config.cooldown * 2.0**self._trips)
        self._trips += 1
        self._state = "open"
        self._open_until = now + cooldown
        self._probes_in_flight = 0
        self._probe_successes = 0
        self.changes += 1

    def export(self) -> tuple[BreakerState, float, float, int]:
        """(state, seconds left open, seconds left held, trips): what a shared state
        publishes for the other routers."""
        return self.state, self.open_for(), self.held_for(), self._trips

    def adopt(self, open_for: float, held_for: float, trips: int) -> None:
        """Take on another router's verdict on this provider (through a shared state): open
        for ``open_for`` more seconds after ``trips`` trips, held off for ``held_for``."""
        with self._lock:
            now = self.clock()
            if held_for > 0:
                self._hold_until = max(self._hold_until, now + held_for)
            if open_for > 0 and not (self._state == "open" and self._open_until >= now + open_for):
                self._state = "open"
                self._open_until = now + open_for
                self._trips = max(self._trips, trips)
                self._probes_in_flight = 0
                self._probe_successes = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "consecutive_failures": self._consecutive,
            "trips": self._trips,
            "open_for": self.open_for(),
            "held_for": self.held_for(),
        }


@dataclass(eq=False)
class ProviderSlot:
    """A provider inside a router, with its settings and what strategies look at.

    A :class:`~orchestrator.strategies.Strategy` receives the slots the router may try and
    orders them. Read, don't write: ``provider`` (and ``name``), ``weight``, ``priority``,
    ``stats`` (:class:`HealthStats`: success/failure counts, ``latency_ewma``,
    ``percentile(q)``, ``in_flight``, tokens, cost), ``breaker`` (:class:`CircuitBreaker`:
    ``state``), ``prices``, ``budget`` and ``limits``. ``Router.slots`` lists them.
    """

    provider: BaseProvider
    weight: float = 1.0
    priority: int = 0
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    stats: HealthStats = field(default_factory=HealthStats)
    #: Seconds allowed for one attempt (None: the provider's own HTTP timeout only).
    timeout: float | None = None
    #: Seconds a stream may take to produce its first text before the router fails over.
    first_chunk_timeout: float | None = None
    limits: LimitState | None = None
    prices: PriceTable | None = None
    #: Roubles this provider may spend; it gets no traffic once ``stats.cost`` reaches it.
    budget: Decimal | None = None
    #: What the provider serves (``provider.capabilities()``, read once when added).
    capabilities: Capabilities = field(default_factory=Capabilities)
    #: The vector space of its embeddings (``provider.embedding_space()``), if any.
    embedding_space: EmbeddingSpace | None = None
    #: Roubles other routers spent on this provider, as a shared state last reported.
    others_cost: Decimal = field(default_factory=Decimal)

    def over_budget(self) -> bool:
        return self.budget is not None and self.stats.cost + self.others_cost >= self.budget

    @property
    def name(self) -> str:
        return self.provider.config.name

    @property
    def last_failure_at(self) -> float:
        at = self.stats.last_failure_at
        return -math.inf if at is None else at
