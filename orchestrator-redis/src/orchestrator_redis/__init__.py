"""Shared router state on Redis: rate limits, circuit breakers, budgets and usage totals
that several router processes (workers, replicas) share.

::

    from orchestrator import Router
    from orchestrator_redis import RedisState

    router = Router(state=RedisState("redis://127.0.0.1:6379/0", prefix="my-service"))
    async with router:  # enters the Redis client on this event loop
        ...

See docs/deploying.md for what is shared, and what happens when Redis fails.
"""

from __future__ import annotations

from orchestrator_redis.state import RedisState, redact

__all__ = ["RedisState", "redact"]
