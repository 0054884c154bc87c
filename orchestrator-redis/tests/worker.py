"""One router process of the multi-process tests: ``python worker.py SCENARIO URL PREFIX
[N] [BACKEND]``; prints one JSON line with what it saw (its own local totals included)."""

from __future__ import annotations

import json
import sys
from decimal import Decimal

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
    ok = refused = 0
    errors: list[str] = []
    async with router:
        made = 0
        # An outage worker goes on until it saw Redis fail and come back (whenever the
        # test kills it), so that every process lives through the outage.
        while made < n or (scenario == "outage" and not (state.faults and state.connected)):
            made += 1
            if made > 100 * n:
                raise SystemExit("the outage never came, or Redis never came back")
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


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[5] if len(sys.argv) > 5 else "asyncio")
