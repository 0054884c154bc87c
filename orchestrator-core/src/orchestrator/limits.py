"""Per-provider concurrency and rate limits, shared by every event loop and thread.

:class:`ProviderLimits` caps in-flight requests, requests per minute and tokens per minute.
Admission is atomic (one lock around check-and-reserve), so hundreds of concurrent calls
never exceed a limit. Counters use a thread lock rather than anyio primitives because one
router may serve several event loops (``asyncio.run`` per call in worker threads).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LimitState", "ProviderLimits"]

_MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    """Limits of one provider; None means unlimited."""

    max_in_flight: int | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_in_flight", "requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None for no limit)")


class LimitState:
    """Live counters for one provider's :class:`ProviderLimits`."""

    def __init__(self, limits: ProviderLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self.clock = clock
        self.in_flight = 0
        self.peak_in_flight = 0
        self._requests: deque[float] = deque()
        self._tokens: deque[tuple[float, int]] = deque()
        self._token_sum = 0
        self._lock = threading.Lock()

    def _age(self, now: float) -> None:
        horizon = now - _MINUTE
        while self._requests and self._requests[0] <= horizon:
            self._requests.popleft()
        while self._tokens and self._tokens[0][0] <= horizon:
            self._token_sum -= self._tokens.popleft()[1]

    def try_acquire(self, estimated_tokens: int = 0) -> str | None:
        """Reserve one request; returns None on success, else which limit refused it."""
        limits = self.limits
        with self._lock:
            now = self.clock()
            self._age(now)
            if limits.max_in_flight is not None and self.in_flight >= limits.max_in_flight:
                return f"max_in_flight={limits.max_in_flight}"
            if (
                limits.requests_per_minute is not None
                and len(self._requests) >= limits.requests_per_minute
            ):
                return f"requests_per_minute={limits.requests_per_minute}"
            if limits.tokens_per_minute is not None and (
                self._token_sum + estimated_tokens > limits.tokens_per_minute
                and self._token_sum > 0
            ):
                return f"tokens_per_minute={limits.tokens_per_minute}"
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self._requests.append(now)
            if estimated_tokens:
                self._tokens.append((now, estimated_tokens))
                self._token_sum += estimated_tokens
            return None

    def refund(self, estimated_tokens: int = 0) -> None:
        """Undo one :meth:`try_acquire` whose request was refused by a later check (a shared
        state's): it no longer counts against any limit."""
        with self._lock:
            self.in_flight -= 1
            if self._requests:
                self._requests.pop()
            if estimated_tokens:
                tokens = self._tokens
                for index in range(len(tokens) - 1, -1, -1):
                    if tokens[index][1] == estimated_tokens:
                        del tokens[index]
                        self._token_sum -= estimated_tokens
                        break

    def release(self, estimated_tokens: int = 0, actual_tokens: int | None = None) -> None:
        """End a reserved request, replacing its token estimate with the real count."""
        with self._lock:
            self.in_flight -= 1
            if actual_tokens is not None and actual_tokens != estimated_tokens:
                delta = actual_tokens - estimated_tokens
                self._tokens.append((self.clock(), delta))
                self._token_sum += delta
