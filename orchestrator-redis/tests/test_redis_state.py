"""RedisState inside one process (on asyncio and trio): what is shared, and Redis as a
fault domain of its own."""

from __future__ import annotations

import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import coredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import ProviderLimits, Router
from orchestrator.errors import AllProvidersFailedError, ConfigurationError, NoProvidersError
from orchestrator.limits import LimitState
from orchestrator.plugins import PluginRegistry
from orchestrator.pricing import Price
from orchestrator.providers.mock import MockConfig, MockProvider
from orchestrator_redis import RedisState, redact
from orchestrator_redis.scripts import ADMIT
from orchestrator_redis.testing import RedisServer, free_port

pytestmark = pytest.mark.anyio
PRICE = {"mock-1": Price("1000", "1000")}


def router_for(state: RedisState, **provider: Any) -> Router:
    router = Router(state=state, registry=PluginRegistry(entry_points=False))
    limits = provider.pop("limits", None)
    budget = provider.pop("budget", None)
    router.add_provider(
        MockProvider(MockConfig(name="m", response="ok", **provider)),
        limits=limits,
        budget=budget,
        prices=PRICE,
    )
    return router


@asynccontextmanager
async def routers(
    url: str, prefix: str, n: int = 2, **provider: Any
) -> AsyncIterator[list[Router]]:
    made = [
        router_for(RedisState(url, prefix=prefix, timeout=0.5, retry_interval=0.05), **provider)
        for _ in range(n)
    ]
    async with AsyncExitStack() as stack:
        for router in made:
            await stack.enter_async_context(router)
        yield made


def state_of(router: Router) -> RedisState:
    assert isinstance(router.state, RedisState)
    return router.state


# -- configuration and secrets ---------------------------------------------------------


def test_url_credentials_never_show() -> None:
    state = RedisState("redis://user:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in repr(state) and "hunter2" not in state.endpoint
    assert state.endpoint == "redis://***@127.0.0.1:1/0"
    assert redact("redis://h/0") == "redis://h/0"
    with pytest.raises(ConfigurationError) as info:
        RedisState("http://user:hunter2@h/0")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs", [{"timeout": 0}, {"retry_interval": -1}, {"prefix": ""}, {"prefix": "a b"}]
)
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RedisState(**kwargs)


def test_one_state_serves_one_router() -> None:
    state = RedisState()
    router_for(state)
    with pytest.raises(ConfigurationError, match="already serves a router"):
        router_for(state)


async def test_unreachable_redis_serves_locally_and_never_logs_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    router = router_for(RedisState(url, timeout=0.2), limits=ProviderLimits(requests_per_minute=2))
    with caplog.at_level(logging.WARNING, logger="orchestrator.redis"):
        async with router:
            assert await router.route("a") == "ok"
            assert await router.route("b") == "ok"
            # The local limit still holds while Redis is away.
            with pytest.raises(AllProvidersFailedError, match="local limit"):
                await router.route("c")
            stats = router.stats()
    assert stats["state"]["connected"] is False
    assert stats["state"]["faults"] >= 1
    assert "serving on local state" in caplog.text
    assert "hunter2" not in caplog.text + repr(stats) + repr(router.state)


async def test_not_entered_means_local_only() -> None:
    router = router_for(RedisState())
    assert await router.route("a") == "ok"  # no `async with`: nothing shared, nothing fails
    assert router.stats()["state"]["connected"] is False


async def test_entered_twice_is_a_bug(redis_server: RedisServer, prefix: str) -> None:
    async with RedisState(redis_server.url, prefix=prefix) as state:
        with pytest.raises(RuntimeError, match="already entered"):
            await state.__aenter__()


# -- what is shared --------------------------------------------------------------------


async def test_requests_per_minute_are_shared(redis_server: RedisServer, prefix: str) -> None:
    async with routers(
        redis_server.url, prefix, 3, limits=ProviderLimits(requests_per_minute=5)
    ) as rs:
        answered = 0
        for _ in range(4):
            for router in rs:
                try:
                    await router.route("hi")
                    answered += 1
                except AllProvidersFailedError as exc:
                    assert "shared limit requests_per_minute=5" in str(exc)
        assert answered == 5
        # A refusal by the shared window gives the local reservation back.
        assert all(r.slots[0].limits is not None and r.slots[0].limits.in_flight == 0 for r in rs)


async def test_tokens_per_minute_are_shared_with_the_real_count(
    redis_server: RedisServer, prefix: str
) -> None:
    # The estimate of "hi" is 1 token; the real count (prompt + answer) is larger, and it
    # is what the shared window keeps once the attempt is over.
    async with routers(
        redis_server.url, prefix, 2, limits=ProviderLimits(tokens_per_minute=6)
    ) as rs:
        first = await rs[0].chat("hi")
        assert first.usage is not None and first.usage.total_tokens > 1
        total = first.usage.total_tokens
        key = f"{prefix}:tpmsum:m"
        state = state_of(rs[0])
        await state.sync()  # what the background push does after every attempt
        assert state._client is not None
        assert int(await state._client.get(key) or 0) == total
        answered = 1
        for _ in range(10):
            try:
                await rs[1].chat("hi")
                answered += 1
            except AllProvidersFailedError as exc:
                assert "shared limit tokens_per_minute=6" in str(exc)
                break
        assert answered * total <= 6 + total  # the window held it to the limit (plus one)


async def test_a_retry_after_hold_is_shared(redis_server: RedisServer, prefix: str) -> None:
    async with routers(redis_server.url, prefix, 2) as (a, b):
        # `a` meets a rate limit with Retry-After: 30 s; `b` is held off without asking.
        a.remove_provider("m")
        a.add_provider(MockProvider(MockConfig(name="m", mode="rate_limit", retry_after=30)))
        with pytest.raises(AllProvidersFailedError):
            await a.route("hi")
        with pytest.raises(AllProvidersFailedError, match="Retry-After another router received"):
            await b.route("hi")
        assert b.slots[0].breaker.held_for() > 0
        assert b.get_provider("m").calls == 0  # type: ignore[attr-defined]


async def test_a_closed_breaker_is_published(redis_server: RedisServer, prefix: str) -> None:
    async with routers(redis_server.url, prefix, 2) as (a, b):
        breaker = a.slots[0].breaker
        breaker.adopt(0.001, 0.0, 1)  # open, and half-open a moment later
        await anyio.sleep(0.01)
        state = state_of(a)
        assert state._client is not None
        await state._client.hset(f"{prefix}:breaker:m", {"open_until": 1, "trips": 1})
        assert await a.route("hi") == "ok"  # the probe succeeds: closed, and published
        assert breaker.state == "closed"
        await state.sync()  # what the background push does after every attempt
        assert await state._client.hget(f"{prefix}:breaker:m", "trips") is None
        assert await b.route("hi") == "ok"


async def test_provider_budgets_are_shared(redis_server: RedisServer, prefix: str) -> None:
    cost = (await router_for(RedisState()).chat("hi")).cost
    assert cost is not None
    async with routers(redis_server.url, prefix, 2, budget=cost * 2) as (a, b):
        await a.route("hi")
        await b.route("hi")
        for router in (a, b):  # what the background push does after every attempt
            await state_of(router).sync()
        for router in (a, b):
            with pytest.raises((AllProvidersFailedError, NoProvidersError), match="budget"):
                await router.route("hi")
        await state_of(a).sync()  # stats() shows the shared totals as of the last sync
        stats = a.stats()["state"]
        assert stats["providers"]["m"]["successes"] == 2
        assert stats["spent"] == str(cost * 2)


async def test_router_budget_refusal_by_the_shared_spend(
    redis_server: RedisServer, prefix: str
) -> None:
    cost = (await router_for(RedisState()).chat("hi")).cost
    assert cost is not None
    async with routers(redis_server.url, prefix, 2) as (a, b):
        b._ledger.budget = cost  # b's own spend is nothing: only the shared total stops it
        await a.route("hi")
        await state_of(a).sync()
        state_of(b)._pushed_spent = 0
        error = await state_of(b).admit(b.slots[0], 0)
        assert error is not None and "shared budget" in str(error)


async def test_per_key_limits(redis_server: RedisServer, prefix: str) -> None:
    limits = ProviderLimits(requests_per_minute=3, tokens_per_minute=100)
    async with (
        RedisState(redis_server.url, prefix=prefix) as one,
        RedisState(redis_server.url, prefix=prefix) as two,
    ):
        verdicts = [await s.acquire("client-1", limits, 10) for s in (one, two, one, two)]
        assert verdicts == [None, None, None, "requests_per_minute"]
        assert await one.acquire("client-2", limits, 100) is None
        assert await one.acquire("client-2", limits, 1) == "tokens_per_minute"


async def test_per_key_limits_fall_back_to_local_windows() -> None:
    limits = ProviderLimits(requests_per_minute=2)
    state = RedisState(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    async with state:
        verdicts = [await state.acquire("k", limits) for _ in range(3)]
    assert verdicts == [None, None, "requests_per_minute"]
    assert await RedisState().acquire("k", limits) is None  # never entered: local too


# -- Redis as a fault ------------------------------------------------------------------


async def test_a_stalled_redis_costs_a_bounded_wait_then_resyncs(
    own_redis: RedisServer, prefix: str
) -> None:
    async with routers(own_redis.url, prefix, 2) as rs:
        for router in rs:
            await router.route("hi")
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)  # accepts connections, never answers
        try:
            for router in rs:
                for _ in range(3):
                    assert await router.route("hi") == "ok"
            assert all(state_of(r).faults >= 1 and not state_of(r).connected for r in rs)
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        for router in rs:
            with anyio.fail_after(30):
                while not state_of(router).connected:
                    await anyio.sleep(0.06)
                    await router.route("hi")
        for router in [*rs, rs[0]]:  # the last sync reads what every router pushed
            await state_of(router).sync()
        local = sum(r.stats()["providers"]["m"]["successes"] for r in rs)
        assert rs[0].stats()["state"]["providers"]["m"]["successes"] == local
        client = state_of(rs[0])._client
        assert client is not None
        assert int(await client.hget(f"{prefix}:totals", "ok:m") or 0) == local


async def test_a_restart_no_call_saw_loses_nothing_and_totals_come_back(
    own_redis: RedisServer, prefix: str
) -> None:
    # The multi-process outage test once ran for ever under load: a router that made no
    # call while Redis was down (started late, or starved) may never see a fault at all,
    # since its client reconnects under the next call. Such a router must still lose
    # nothing and put its totals back into the emptied Redis.
    async with routers(own_redis.url, prefix, 2) as rs:
        for router in rs:
            await router.route("hi")
            await state_of(router).sync()
        own_redis.stop()  # blocks the event loop: no call of either router sees it down
        own_redis.start()
        for router in rs:
            with anyio.fail_after(10):  # a hang guard, far from what it takes
                assert await router.route("hi") == "ok"
                while not state_of(router).connected:
                    await anyio.sleep(0.06)
                    await router.route("hi")
        for router in [*rs, rs[0]]:  # the last sync reads what every router pushed
            await state_of(router).sync()
        local = sum(r.stats()["providers"]["m"]["successes"] for r in rs)
        assert all(r.stats()["providers"]["m"]["failures"] == 0 for r in rs)
        assert int(own_redis.command("HGET", f"{prefix}:totals", "ok:m") or 0) == local
        assert rs[0].stats()["state"]["providers"]["m"]["successes"] == local


async def test_another_event_loop_is_refused_and_served_locally(
    redis_server: RedisServer, prefix: str
) -> None:
    router = router_for(RedisState(redis_server.url, prefix=prefix))
    async with router:

        def elsewhere() -> str:
            return anyio.run(router.route, "hi")

        assert await anyio.to_thread.run_sync(elsewhere) == "ok"
        assert state_of(router).last_fault is not None
        assert "another event loop" in state_of(router).last_fault  # type: ignore[operator]


# -- the sliding window, against a model -----------------------------------------------


def run_admit(port: int, key: str, times: list[int], rpm: int) -> list[bool]:
    async def go() -> list[bool]:
        client: coredis.Redis[str] = coredis.Redis(port=port, decode_responses=True)
        async with client:
            script = client.register_script(ADMIT)
            verdicts = []
            for i, now in enumerate(times):
                reply: Any = await script(
                    keys=[f"{key}:b", f"{key}:t", f"{key}:r", f"{key}:k", f"{key}:s"],
                    args=[now, "", "", "", rpm, "", 0, f"m{i}"],
                )
                verdicts.append(reply[0] == "ok")
            return verdicts

    return anyio.run(go)


@settings(max_examples=40, deadline=None)
@given(
    # Gaps in steps of 125 ms: the local clock (float seconds) is then exact, so windows
    # that end exactly 60 s later compare the same way on both sides (with any ms, float
    # rounding made 60.000 s read as 59.999... locally).
    gaps=st.lists(st.integers(0, 240).map(lambda g: g * 125), min_size=1, max_size=60),
    rpm=st.integers(1, 8),
)
def test_the_shared_window_matches_the_local_one(
    redis_server: RedisServer, gaps: list[int], rpm: int
) -> None:
    times = []
    now = 1_000_000
    for gap in gaps:
        now += gap
        times.append(now)
    key = f"h-{uuid.uuid4().hex}"  # a fresh window per example
    shared = run_admit(redis_server.port, key, times, rpm)
    clock: list[float] = [0.0]
    local = LimitState(ProviderLimits(requests_per_minute=rpm), clock=lambda: clock[0])
    expected = []
    for t in times:
        clock[0] = t / 1000
        verdict = local.try_acquire() is None
        if verdict:
            local.release()
        expected.append(verdict)
    assert shared == expected
    # And never more than the limit in any 60 s window.
    admitted = [t for t, ok in zip(times, shared, strict=True) if ok]
    for start in admitted:
        assert sum(1 for t in admitted if start <= t < start + 60_000) <= rpm


# -- configuration from TOML -------------------------------------------------------------


def test_a_state_table_builds_a_redis_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://user:hunter2@127.0.0.1:6399/2")
    router = Router.from_config(
        {
            "state": {"backend": "redis", "url": "${REDIS_URL}", "prefix": "svc", "timeout": 0.1},
            "providers": {"m": {"type": "mock"}},
        }
    )
    state = state_of(router)
    assert (state.prefix, state.timeout, state.endpoint) == (
        "svc",
        0.1,
        "redis://***@127.0.0.1:6399/2",
    )
    with pytest.raises(ConfigurationError, match="'redis'") as info:
        Router.from_config(
            {
                "state": {"backend": "redis", "url": "${REDIS_URL}", "bogus": 1},
                "providers": {"m": {"type": "mock"}},
            }
        )
    assert "hunter2" not in str(info.value)


async def test_a_unix_socket_works_too(tmp_path: Any, prefix: str) -> None:
    import shutil
    import subprocess

    socket_path = tmp_path / "redis.sock"
    binary = shutil.which("redis-server")
    assert binary is not None
    server = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with anyio.fail_after(10):
            while not socket_path.exists():
                await anyio.sleep(0.01)
        router = router_for(RedisState(f"unix://{socket_path}?db=0", prefix=prefix))
        async with router:
            assert await router.route("hi") == "ok"
            await state_of(router).sync()
            assert state_of(router).connected
            assert router.stats()["state"]["providers"]["m"]["successes"] == 1
    finally:
        server.kill()
        server.wait()


def test_outside_an_event_loop_there_is_no_loop_token() -> None:
    from orchestrator_redis.state import _current_loop

    assert _current_loop() is None
