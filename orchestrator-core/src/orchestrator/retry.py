"""Backoff policy: exponential with full jitter, a cap, and ``Retry-After`` honoured.

The schedule, for retry ``n`` (1-based) after a transient error::

    delay = uniform(0, min(cap, base * 2 ** (n - 1)))     # full jitter
    delay = retry_after  if the error carried one and retry_after <= cap
    give up            if retry_after > cap (failing over beats waiting that long)

Every delay is within ``[0, cap]``; a ``Retry-After`` is never cut short.
"""

from __future__ import annotations

import random
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["RetryPolicy", "retries_managed_by_caller"]

#: Set by the router while it calls a provider: the router then owns retries (it sees every
#: attempt, applies the deadline and the breaker), so ``BaseProvider._retry_with_backoff``
#: makes a single attempt.
retries_managed_by_caller: ContextVar[bool] = ContextVar(
    "orchestrator_retries_managed", default=False
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many retries, and how long to wait before each."""

    max_retries: int = 3
    base: float = 0.5
    cap: float = 10.0

    def delay(
        self,
        retry: int,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before retry number ``retry`` (1-based), or None to stop."""
        if retry > self.max_retries:
            return None
        if retry_after is not None:
            retry_after = max(0.0, retry_after)
            return retry_after if retry_after <= self.cap else None
        ceiling = min(self.cap, self.base * 2.0 ** (retry - 1))
        return (rng or random).uniform(0.0, ceiling)
