"""The chaos run: N planned requests at concurrency C through one router, servers stopped
and restarted under it, then every resource checked back at rest."""

from __future__ import annotations

import collections
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import sniffio

from orchestrator import Router
from soak import checks
from soak.faults import Injector
from soak.workload import Record, plans, run
from soak.world import World, build_router

if TYPE_CHECKING:
    from orchestrator_redis.testing import RedisServer

#: Seconds a worker waits at least after a request no provider was asked for.
PAUSE_WHEN_REFUSED = 0.05


@dataclass
class Result:
    """Everything one chaos run measured."""

    backend: str
    seed: int
    requests: int
    concurrency: int
    records: list[Record] = field(default_factory=list)
    elapsed: float = 0.0
    providers: list[str] = field(default_factory=list)
    #: Backend name -> times its server was stopped and restarted.
    restarts: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Provider name -> (connections busy, requests queued) right after the last request,
    #: and again a second later (only measured when the first was not at rest).
    pools: dict[str, tuple[int, int]] = field(default_factory=dict)
    pools_later: dict[str, tuple[int, int]] | None = None
    counters: dict[str, int] = field(default_factory=dict)
    pending_tasks: list[str] = field(default_factory=list)
    rss_third: int | None = None
    rss_end: int | None = None
    faults: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    incidents: checks.Incidents = field(default_factory=checks.Incidents)
    #: With --redis: the shared state's report (outages, faults, totals compared).
    shared: dict[str, Any] | None = None


async def soak(
    world: World,
    *,
    seed: int,
    requests: int,
    concurrency: int,
    fault_rate: float,
    outages: int,
    redis: RedisServer | None = None,
) -> Result:
    """Run the chaos soak on the current event loop; the result, not yet judged."""
    library = sniffio.current_async_library()
    result = Result(library, seed, requests, concurrency)
    result.providers = [b.name for b in world.backends]
    todo = plans(seed, requests, world.backends, native=library == "asyncio", fault_rate=fault_rate)
    providers = world.providers()
    state = None
    if redis is not None:
        from orchestrator_redis import RedisState

        state = RedisState(
            redis.url, prefix=f"soak-{seed}-{library}", timeout=0.25, retry_interval=0.2
        )
        await state.__aenter__()  # before the task baseline: its tasks are not leaks
    router = build_router(providers, state=state)
    rng = random.Random(seed + 1)
    injector = Injector(seed + 2)
    at_rest: dict[str, tuple[int, int]] = {}
    baseline = checks.tasks()
    queue = iter(todo)
    done = 0
    third = max(1, requests // 3)
    # Outages start once these many requests are done (evenly spread over the run).
    milestones = {
        max(1, n * requests // (outages + 1)): anyio.Event() for n in range(1, outages + 1)
    }

    async def worker() -> None:
        nonlocal done
        for plan in queue:  # one shared iterator: each plan is taken by exactly one worker
            record = await run(world, router, plan, injector)
            result.records.append(record)
            if concurrency == 1:
                # One request at a time: whatever is busy now, this request left behind.
                for name, provider in providers.items():
                    busy, queued = checks.pool_usage(provider)
                    if busy + queued > sum(at_rest.get(name, (0, 0))):
                        record.violations.append(
                            f"left {busy} connection(s) busy and {queued} request(s) queued "
                            f"in {name}'s pool"
                        )
                    at_rest[name] = (busy, queued)
            if record.injected and plan.fault is not None:
                result.faults[(plan.fault.name, plan.fault.backend)] += 1
            done += 1
            if done in milestones:
                milestones[done].set()
            if done == third:
                result.rss_third = checks.rss_bytes()
            if record.refused:
                # Every breaker open or held: the router answered at once without asking
                # anyone. A client waits until a provider may be asked again (else 50
                # workers burn through the whole plan while the breakers are open).
                await anyio.sleep(_pause(router))

    async def outage_maker() -> None:
        # Only plain-HTTP servers restart on the same port with the same certificates.
        targets = [b for b in world.backends if not b.server.tls]
        for milestone in sorted(milestones):
            await milestones[milestone].wait()
            target = rng.choice(targets)
            await world.outage(target, rng.uniform(0.1, 0.4))
            result.restarts[target.name] += 1
            if redis is not None and state is not None:  # Redis itself: killed, back empty
                faults = state.faults
                redis.stop()
                await anyio.sleep(rng.uniform(0.1, 0.4))
                # Down until the router has met the outage (a request, or the periodic
                # sync at most sync_interval later): a restart that no call ever saw
                # would test nothing, and the workers may all be done by now.
                with anyio.move_on_after(3 * state.sync_interval):
                    while state.faults == faults:  # noqa: ASYNC110 (a counter, no event)
                        await anyio.sleep(0.02)
                await anyio.to_thread.run_sync(redis.start)
                result.restarts["redis"] += 1

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(outage_maker)
        async with anyio.create_task_group() as workers:
            for _ in range(concurrency):
                workers.start_soon(worker)
    result.elapsed = time.perf_counter() - started
    if state is not None and redis is not None:
        result.shared = await _shared_report(router, state, redis)

    result.pools = {name: checks.pool_usage(p) for name, p in providers.items()}
    result.counters = checks.router_counters(router)
    me = _current_task()
    result.pending_tasks = [
        checks.describe_task(t) for t in checks.tasks() - baseline if t is not me
    ]
    if any(busy or queued for busy, queued in result.pools.values()):
        await anyio.sleep(1.0)
        result.pools_later = {name: checks.pool_usage(p) for name, p in providers.items()}
    result.rss_end = checks.rss_bytes()
    await router.aclose()
    return result


async def _shared_report(router: Router, state: Any, redis: RedisServer) -> dict[str, Any]:
    """Push once Redis answers again, compare its totals with the router's own, leave."""
    with anyio.move_on_after(10):
        await state.sync()
        while not state.connected:
            await anyio.sleep(0.05)
            await state.sync()
    mismatches = []
    for slot in router.slots:
        shared = int(redis.command("HGET", f"{state.prefix}:totals", f"ok:{slot.name}") or 0)
        if shared != slot.stats.successes:
            mismatches.append(f"{slot.name}: Redis {shared}, router {slot.stats.successes}")
    report = {
        "connected": state.connected,
        "faults": state.faults,
        "last_fault": state.last_fault,
        "mismatches": mismatches,
    }
    await state.__aexit__(None, None, None)
    return report


def _pause(router: Router) -> float:
    """Until the first breaker lets a request through again (at least a moment)."""
    waits = [max(s.breaker.open_for(), s.breaker.held_for()) for s in router.slots]
    return max(PAUSE_WHEN_REFUSED, min(waits, default=0.0))


def _current_task() -> object:
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_task()
    import asyncio

    return asyncio.current_task()
