"""The issue's acceptance tests: several router PROCESSES sharing one redis-server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestrator import Router
from orchestrator.plugins import PluginRegistry
from orchestrator.providers.mock import MockConfig, MockProvider
from orchestrator_redis.testing import RedisServer

WORKER = Path(__file__).with_name("worker.py")
#: Guards against a hang (a failure, not a timing assertion: nothing here is close to it).
HANG = 120


Spawn = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Starts worker processes; whatever happens in the test, every one of them is killed
    (if still running) and reaped at its end, so none outlives it."""
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        return process

    try:
        yield start
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for process in processes:
            process.communicate()  # reaps it and closes its pipes


def result(process: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        out, err = process.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"worker {process.pid} hung (killed after {HANG}s); stderr:\n{err}")
    assert process.returncode == 0, err
    data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return data


def wait_for(what: str, done: Callable[[], bool], runs: list[subprocess.Popen[str]]) -> None:
    """Wait until ``done()``; fail (rather than hang) if a worker exits or HANG passes."""
    deadline = time.monotonic() + HANG
    while not done():
        ended = [p for p in runs if p.poll() is not None]
        if ended:
            pytest.fail(f"a worker exited while waiting until {what}: {ended[0].communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"waited {HANG}s for {what}")
        time.sleep(0.01)


def backends(n: int) -> list[str]:
    return ["asyncio" if i % 2 else "trio" for i in range(n)]


def test_four_processes_share_one_requests_per_minute_limit(
    redis_server: RedisServer, prefix: str, spawn: Spawn
) -> None:
    # Each process alone would let 100 through (its local limit is the same 100).
    runs = [spawn("rpm", redis_server.url, prefix, "150", b) for b in backends(4)]
    results = [result(p) for p in runs]
    assert sum(r["ok"] for r in results) == 100
    assert sum(r["refused"] for r in results) == 500
    assert all(r["state"]["connected"] for r in results)
    refusals = [e for r in results for e in r["errors"]]
    # A process that ran alone at first (others still starting, a loaded machine) may take
    # all 100 itself: its own local window then refuses before Redis is asked.
    odd = [e for e in refusals if "limit requests_per_minute=100 reached" not in e]
    assert refusals and not odd, odd
    assert any("shared limit requests_per_minute=100" in e for e in refusals)


def test_a_breaker_opened_in_one_process_is_open_in_the_others(
    redis_server: RedisServer, prefix: str, spawn: Spawn
) -> None:
    failing = result(spawn("breaker-fail", redis_server.url, prefix, "1", "asyncio"))
    assert failing["ok"] == 0 and failing["failures"] >= 2
    # The others' provider (same name) would answer: only the shared breaker refuses it,
    # on their very first request.
    others = [result(spawn("breaker-ok", redis_server.url, prefix, "1", b)) for b in backends(3)]
    for other in others:
        assert other["ok"] == 0 and other["refused"] == 1
        assert other["successes"] == other["failures"] == 0
        assert "circuit breaker open" in other["errors"][0]
        assert "opened by a router sharing state" in other["errors"][0]
    # A router with another prefix shares nothing.
    assert result(spawn("breaker-ok", redis_server.url, prefix + "x", "1", "trio"))["ok"] == 1


async def one_request_cost() -> Decimal:
    from worker import PRICE

    router = Router(registry=PluginRegistry(entry_points=False))
    router.add_provider(MockProvider(MockConfig(name="m", response="ok")), prices=PRICE)
    completion = await router.chat("hi")
    assert completion.cost is not None
    return completion.cost


def test_a_budget_spent_across_processes_stops_them_all(
    redis_server: RedisServer, prefix: str, monkeypatch: Any, spawn: Spawn
) -> None:
    monkeypatch.syspath_prepend(str(WORKER.parent))
    cost = anyio.run(one_request_cost)
    budget = cost * 20
    runs = [spawn("budget", redis_server.url, prefix, "100", b, str(budget)) for b in backends(4)]
    results = [result(p) for p in runs]
    spent = sum(Decimal(r["spent"]) for r in results)
    # Each process has one request in flight at a time: the overshoot is at most the
    # requests in flight when the budget ran out (one per other process).
    assert budget <= spent <= budget + 3 * cost
    assert all(r["refused"] == 1 for r in results)
    assert all("budget" in r["errors"][0] for r in results)
    assert Decimal(results[0]["state"]["spent"]) == spent


def test_redis_killed_mid_run_loses_no_request_and_counters_add_up(
    own_redis: RedisServer, prefix: str, spawn: Spawn, tmp_path: Path
) -> None:
    n = 400
    markers = str(tmp_path)
    runs = [spawn("outage", own_redis.url, prefix, str(n), b, markers) for b in backends(4)]

    def all_marked(what: str) -> Callable[[], bool]:
        return lambda: all((tmp_path / f"{p.pid}.{what}").exists() for p in runs)

    # Kill Redis once every process serves with it, restart it once every process saw it
    # fail: each lives through the outage, however the machine's load schedules them (with
    # a fixed outage a process started late, or starved, could miss it and wait forever).
    wait_for("every worker serves with Redis", all_marked("up"), runs)
    own_redis.stop()
    wait_for("every worker saw Redis fail", all_marked("down"), runs)
    own_redis.start()
    results = [result(p) for p in runs]
    # No request lost, none refused; every process lived through the outage.
    assert all(r["ok"] >= n and r["ok"] == r["successes"] for r in results)
    assert all(r["refused"] == 0 for r in results)
    assert all(r["state"]["faults"] >= 1 for r in results)
    # Redis restarted empty, yet its totals are exactly the sum of every process's own.
    answered = sum(r["ok"] for r in results)
    assert int(own_redis.command("HGET", f"{prefix}:totals", "ok:m") or 0) == answered
    spent = sum(Decimal(r["spent"]) for r in results)
    assert (
        Decimal(int(own_redis.command("HGET", f"{prefix}:totals", "spent") or 0)) / 10**6 == spent
    )
