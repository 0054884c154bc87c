"""One router process of the multi-process tests: ``python worker.py SCENARIO URL PREFIX
[N] [BACKEND] [BUDGET | MARKERS]``; prints one JSON line with what it saw (its own local
totals included).

An ``outage`` worker tells the test where it is through files in the MARKERS directory:
``<pid>.up`` once it has served while Redis answers, ``<pid>.down`` once it has seen Redis
fail. The test kills Redis only when every worker is up and restarts it only when every
worker is down, so each process lives through the outage however slowly it runs.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

import anyio

from orchestrator import BreakerConfig, ProviderLimits, Router
from orchestrator.errors import AllProvidersFailedError, NoProvidersError
from orchestrator.plugins import PluginRegistry
from orchestrator.pricing import Price
from orchestrator.providers.mock import MockConfig, MockMode, MockProvider
from orchestrator_redis import RedisState

#: What one request costs with PRICE and the fixed prompt/answer (the test checks it).
PRICE = {"mock-1": Price("1000", "1000")}


def build(scenario: str, url: str, prefix: str) -> tuple[Router, RedisState]:
    state = RedisState(url, prefix=prefix, timeout=0.5, retry_interval=0.1)
    budget = Decimal(sys.argv[6]) if scenario == "budget" else None
    router = Router(
        state=state,
        budget=budget,
        breaker=BreakerConfig(consecutive_failures=2, cooldown=60, max_cooldown=60),
        registry=PluginRegistry(entry_points=False),
    )
    mode: MockMode = "server_error" if scenario == "breaker-fail" else "success"
    latency = 0.002 if scenario == "outage" else 0.0
    router.add_provider(
        MockProvider(MockConfig(name="m", mode=mode, response="ok", latency=latency)),
        limits=ProviderLimits(requests_per_minute=100) if scenario == "rpm" else None,
        prices=PRICE,
    )
    return router, state


async def main() -> None:
    scenario, url, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    router, state = build(scenario, url, prefix)
    markers = Path(sys.argv[6]) if scenario == "outage" else None
    ok = refused = 0
    errors: list[str] = []
    async with router:
        made = 0
        # An outage worker goes on until it saw Redis fail and come back (whenever the
        # test kills it), so that every process lives through the outage.
        while made < n or (scenario == "outage" and not (state.faults and state.connected)):
            made += 1
            if markers is not None:
                mark(markers, "up", state.connected and not state.faults and made > 10)
                mark(markers, "down", state.faults > 0)
            try:
                await router.route("hi")
                ok += 1
            except (AllProvidersFailedError, NoProvidersError) as exc:
                refused += 1
                errors.append(str(exc))
                if scenario == "budget":
                    break
        # Counters must reach Redis even if it came back only just now.
        with anyio.fail_after(20):
            await state.sync()
            while not state.connected:
                await anyio.sleep(0.05)
                await state.sync()
        stats = router.stats()
    local = stats["providers"]["m"]
    print(
        json.dumps(
            {
                "ok": ok,
                "refused": refused,
                "errors": errors[-3:],
                "successes": local["successes"],
                "failures": local["failures"],
                "cost": local["cost"],
                "spent": stats["spent"],
                "state": stats["state"],
            }
        )
    )


def mark(markers: Path, what: str, now: bool) -> None:
    marker = markers / f"{os.getpid()}.{what}"
    if now and not marker.exists():
        marker.touch()


if __name__ == "__main__":
    # A worker that hangs shows where (on stderr, which the test reports) before it is killed.
    faulthandler.dump_traceback_later(90)
    anyio.run(main, backend=sys.argv[5] if len(sys.argv) > 5 else "asyncio")
