"""``python -m soak``: the chaos soak (``nox -s soak``). See soak/__init__.py and
docs/reliability.md."""

from __future__ import annotations

import argparse
import faulthandler
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio

from soak import report
from soak.chaos import Result, soak
from soak.checks import install_server_log, watching
from soak.world import World

if TYPE_CHECKING:
    from orchestrator_redis.testing import RedisServer


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m soak",
        description="Chaos soak: emulators on loopback, faults, cancellations, one router.",
    )
    parser.add_argument("--requests", type=int, default=10_000, help="requests per backend")
    parser.add_argument(
        "--backend",
        choices=("asyncio", "trio", "both"),
        default="both",
        help="event loop(s) to run on (default: both, asyncio first)",
    )
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None, help="replay a run (printed)")
    parser.add_argument(
        "--fault-rate", type=float, default=0.2, help="share of requests preceded by a fault"
    )
    parser.add_argument(
        "--outages",
        type=int,
        default=None,
        help="server stop/restarts per backend (default: 1 + requests // 2000)",
    )
    parser.add_argument(
        "--matrix",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the fault matrix (each fault x provider, sequentially)",
    )
    parser.add_argument(
        "--redis",
        action="store_true",
        help="share the router's state through a redis-server of its own (orchestrator-redis), "
        "killed and restarted with every outage",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="tracemalloc on: ResourceWarnings say where their object was allocated (slow)",
    )
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    if args.outages is None:
        args.outages = 1 + args.requests // 2000
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    # A watchdog outside the event loop: a request stuck in a shielded scope would stop the
    # run itself from ending; then dump every thread's stack and fail.
    faulthandler.dump_traceback_later(120 + 0.1 * args.requests * len(backends), exit=True)
    print(
        f"soak: seed={args.seed} requests={args.requests} concurrency={args.concurrency} "
        f"fault-rate={args.fault_rate} backends={','.join(backends)}\n"
        f"machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs\n"
        f"replay: python -m soak --seed {args.seed} --requests {args.requests} "
        f"--backend {args.backend}",
        flush=True,
    )
    if args.trace:
        import tracemalloc

        tracemalloc.start(25)
    install_server_log()
    world = World()
    world.start()
    redis = None
    if args.redis:
        from orchestrator_redis.testing import RedisServer

        redis = RedisServer()
        redis.start()
        print(f"redis: {redis.url}")
    print("backends: " + ", ".join(f"{b.name} {b.server.base_url}" for b in world.backends))
    failed = False
    try:
        if args.matrix:
            from soak.matrix import measure

            started = time.perf_counter()
            matrix = anyio.run(measure, world, backend=backends[0])
            print(f"\n## Fault matrix ({backends[0]}, {time.perf_counter() - started:.1f}s)\n")
            print(matrix.render())
            failed |= not matrix.ok
        for backend in backends:
            world.reset()
            with watching() as incidents:
                result: Result = anyio.run(_soak, world, args, redis, backend=backend)
            result.incidents = incidents
            failed |= not _print(result)
    finally:
        world.stop()
        if redis is not None:
            redis.stop()
        faulthandler.cancel_dump_traceback_later()
    print("\nsoak: FAILED" if failed else "\nsoak: passed", flush=True)
    return 1 if failed else 0


async def _soak(world: World, args: argparse.Namespace, redis: RedisServer | None) -> Result:
    return await soak(
        world,
        seed=args.seed,
        requests=args.requests,
        concurrency=args.concurrency,
        fault_rate=args.fault_rate,
        outages=args.outages,
        redis=redis,
    )


def _print(result: Result) -> bool:
    rate = len(result.records) / result.elapsed if result.elapsed else 0.0
    print(
        f"\n## Chaos run on {result.backend}: {len(result.records)} requests in "
        f"{result.elapsed:.1f}s ({rate:.0f}/s), seed {result.seed}, "
        f"concurrency {result.concurrency}\n"
    )
    expected = result.incidents.expected
    if expected:
        print("server side, expected: " + ", ".join(f"{n} {k}" for k, n in expected.items()))
        print()
    print(report.outcomes(result))
    print()
    print(report.faults(result))
    print()
    checks = report.verdict(result)
    print(report.checks_table(checks))
    ok = all(c.ok for c in checks)
    if not ok:
        print()
        print(report.examples(result))
        incidents = result.incidents
        for line in (
            incidents.warnings[:5]
            + incidents.unraisable[:5]
            + incidents.server_errors[:3]
            + incidents.client_log[:3]
        ):
            print(f"- {line}")
        if len(incidents.warnings) > 5:
            print(f"- ... {len(incidents.warnings) - 5} more warnings")
        for task in result.pending_tasks[:5]:
            print(f"- pending task: {task}")
    sys.stdout.flush()
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
