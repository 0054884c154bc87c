"""The benchmark: what the stack costs on the path users run, against raw httpx doing the same.

    python bench/overhead.py            # smoke run (small counts, < 60 s), prints the tables
    python bench/overhead.py --full     # full run; also rewrites docs/performance.md

Modules (one concept each): ``fullstack`` (raw httpx vs provider vs Router per shipped
provider, in memory and over loopback, plain and streamed, at concurrency), ``streams`` (the
streaming parsers alone, by read size), ``startup`` (import and CLI time), ``memory`` (1,000
open streams), ``toy`` (the Router over an in-process provider), ``vendors`` (the subjects),
``server`` (the loopback emulators), ``otel`` (what the telemetry plugin adds),
``aiohttp_transport`` (the stack over the aiohttp transport against raw aiohttp, with a server
of its own; needs ``orchestrator-core[aiohttp]``), ``_common`` (timing and tables).

Every figure is a difference or ratio against a baseline measured in the same run, in
interleaved calls or alternating runs, over several rounds (median, min … max). Targets are
marked ✅/❌; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp_transport
import fullstack
import memory
import otel
import profiling
import startup
import streams
import toy
from _common import ROOT, Table, machine
from server import emulators
from vendors import VENDORS


@dataclass(frozen=True)
class Plan:
    rounds: int
    latency: dict[str, dict[str, int]]  # setting -> scenario -> calls per round
    levels: tuple[int, ...]
    concurrent_calls: dict[str, int]  # setting -> calls per run
    concurrent_rounds: int
    memory_streams: int
    memory_rounds: int
    startup_repeat: int
    parser_bytes: int
    toy_calls: int
    aiohttp_calls: int  # per run of each client at each concurrency
    aiohttp_rounds: int


SMOKE = Plan(
    rounds=2,
    latency={
        "in-memory": {"call": 150, "stream_short": 40, "stream_1000": 2, "stream_large": 2},
        "loopback": {"call": 30, "stream_short": 10, "stream_1000": 1, "stream_large": 1},
    },
    levels=(1, 16, 64),
    concurrent_calls={"in-memory": 128, "loopback": 64},
    concurrent_rounds=1,
    memory_streams=100,
    memory_rounds=1,
    startup_repeat=2,
    parser_bytes=1_280_000,
    toy_calls=300,
    aiohttp_calls=aiohttp_transport.SMOKE[0],
    aiohttp_rounds=aiohttp_transport.SMOKE[1],
)
FULL = Plan(
    rounds=5,
    latency={
        "in-memory": {"call": 2000, "stream_short": 400, "stream_1000": 20, "stream_large": 60},
        "loopback": {"call": 400, "stream_short": 100, "stream_1000": 5, "stream_large": 5},
    },
    levels=(1, 16, 64),
    concurrent_calls={"in-memory": 2000, "loopback": 640},
    concurrent_rounds=3,
    memory_streams=1000,
    memory_rounds=2,
    startup_repeat=10,
    parser_bytes=5_120_000,
    toy_calls=20000,
    aiohttp_calls=aiohttp_transport.FULL[0],
    aiohttp_rounds=aiohttp_transport.FULL[1],
)


def stream_table(subject: fullstack.Subject, cost: fullstack.StreamCost) -> Table:
    c = subject.chunks
    table = Table(
        f"{subject.vendor.name}, {subject.setting}: streams, added over raw httpx "
        "(µs; median of rounds, min … max)",
        ["provider", "Router (whole stack)"],
        note=(
            f"Per chunk: the slope between the short ({c['stream_short']} chunks) and the "
            f"1,000-chunk stream ({c['stream_1000']}), or the large-chunk stream "
            f"({c['stream_large']} chunks of 10 KB); per stream: what the short stream adds "
            "beyond its chunks. Raw parses the same body with `aiter_lines()` + `json.loads`."
        ),
    )
    both = ("provider", "router")
    table.add("per stream (p50 latency)", *(cost.per_stream[v].text() for v in both))
    table.add("per stream (CPU)", *(cost.per_stream_cpu[v].text() for v in both))
    table.add("per chunk (p50 latency)", *(cost.per_chunk[v].text(2) for v in both))
    table.add("per chunk (CPU)", *(cost.per_chunk_cpu[v].text(2) for v in both))
    table.add(
        "per chunk, 10 KB chunks (p50 latency)", *(cost.per_chunk_large[v].text(2) for v in both)
    )
    table.add("per chunk, 10 KB chunks (CPU)", *(cost.per_chunk_large_cpu[v].text(2) for v in both))
    return table


def target_rows(subject: fullstack.Subject, f: dict[str, Any], cost: Any) -> list[Any]:
    v = subject.vendor.name
    call = f["call"]
    table = Table("", [])
    stack, share, share99 = call.stack_added, call.router_added, call.router_added_p99
    table.add(
        f"{v}: provider + Router over raw httpx, per call (p50)",
        f"+{stack.text()} µs",
        target="≤ +30 µs",
        ok=stack.median <= 30,
    )
    table.add(
        f"{v}: Router's share (Router - provider), p50",
        f"{share.text()} µs",
        target="≤ 10 µs",
        ok=share.median <= 10,
    )
    table.add(
        f"{v}: Router's share (Router - provider), p99",
        f"{share99.text()} µs",
        target="≤ 40 µs",
        ok=share99.median <= 40,
    )
    per_stream, per_chunk = cost.per_stream["router"], cost.per_chunk["router"]
    large = cost.per_chunk_large["router"]
    cpu = (
        cost.per_stream_cpu["router"].median,
        cost.per_chunk_cpu["router"].median,
        cost.per_chunk_large_cpu["router"].median,
    )
    table.add(
        f"{v}: per-stream overhead (whole stack)",
        f"+{per_stream.text()} µs; CPU +{cpu[0]:.1f} µs",
        target="≤ +50 µs",
        ok=per_stream.median <= 50,
    )
    table.add(
        f"{v}: per chunk over raw SSE/NDJSON parsing",
        f"{per_chunk.text(2)} µs; CPU {cpu[1]:.2f} µs",
        target="≤ 1 µs",
        ok=per_chunk.median <= 1,
    )
    table.add(
        f"{v}: per chunk, 10 KB chunks (constant in chunk size)",
        f"{large.text(2)} µs; CPU {cpu[2]:.2f} µs",
        target="≤ 1 µs",
        ok=large.median <= 1,
    )
    return table.rows


async def run_fullstack(plan: Plan, server: dict[str, Any]) -> tuple[list[Table], list[Any]]:
    tables: list[Table] = []
    targets: list[Any] = []
    for make in VENDORS:
        vendor = make()
        for setting in ("in-memory", "loopback"):
            started = time.perf_counter()
            subject = await fullstack.make_subject(vendor, setting, server)
            figures = await fullstack.measure_latency(subject, plan.latency[setting], plan.rounds)
            cost = fullstack.stream_cost(subject, figures)
            tables += [
                fullstack.latency_table(subject, figures),
                stream_table(subject, cost),
            ]
            if setting == "in-memory":
                targets += target_rows(subject, figures, cost)
            throughput = await fullstack.measure_throughput(
                subject, plan.levels, plan.concurrent_calls[setting], plan.concurrent_rounds
            )
            tables.append(fullstack.throughput_table(subject, throughput))
            await subject.aclose()
            print(
                f"  {vendor.name}, {setting}: {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
    return tables, targets


async def run(plan: Plan) -> tuple[list[Table], Table]:
    tables: list[Table] = []
    with emulators() as server:
        print("full stack ...", file=sys.stderr)
        stack_tables, target_list = await run_fullstack(plan, server)
        print("memory ...", file=sys.stderr)
        held = await memory.measure(plan.memory_streams, server, plan.memory_rounds)
    print("parsers, start-up, toy ...", file=sys.stderr)
    parsers = streams.table(await streams.measure(plan.parser_bytes, plan.rounds))
    start, deps, own = startup.measure(plan.startup_repeat)
    start_table = startup.table(start, deps)
    start_table.note = "Largest own import items (`-X importtime`, self): " + ", ".join(
        f"`{name}` {ms:.1f} ms" for name, ms in own
    )
    memory_table = memory.table(plan.memory_streams, held)
    toy_table = toy.table(await toy.measure(plan.toy_calls, plan.rounds))
    otel_table = otel.table(await otel.measure(plan.toy_calls, plan.rounds))
    print("aiohttp transport ...", file=sys.stderr)
    aiohttp_tables, aiohttp_targets = await run_aiohttp(plan)

    targets = Table("Targets (issue 13)", ["measured"])
    targets.rows += target_list
    prefixes = {
        id(parsers): "Parser µs per event, 640 KB vs 10 KB reads: ",
        id(start_table): "",
        id(memory_table): f"Memory, {plan.memory_streams:,} open streams, RSS ",
    }
    for table in (parsers, start_table, memory_table):
        for row in table.rows:
            if row.ok is not None:
                cells = [c for c in row.cells if c]
                value = cells[-1] if table is parsers else cells[0]
                targets.add(prefixes[id(table)] + row.what, value, target=row.target, ok=row.ok)
    targets.rows += aiohttp_targets
    for row in otel_table.rows:
        if row.ok is not None:
            targets.add(
                f"Telemetry plugin {row.what}, per call", row.cells[0], target=row.target, ok=row.ok
            )
    tables = [*stack_tables, *aiohttp_tables, parsers, start_table, memory_table, toy_table]
    tables.append(otel_table)
    return tables, targets


async def run_aiohttp(plan: Plan) -> tuple[list[Table], list[Any]]:
    """The aiohttp transport rows (its own server process), or a target row saying why
    they are not in this run."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        reason = "aiohttp is not installed (`pip install 'orchestrator-core[aiohttp]'`)"
        return [], aiohttp_transport.target_rows(None, reason)
    results = await aiohttp_transport.measure(plan.aiohttp_calls, plan.aiohttp_rounds)
    return [aiohttp_transport.table(results)], aiohttp_transport.target_rows(results)


def render(tables: list[Table], targets: Table, plan: Plan, seconds: float) -> str:
    head = [
        f"Machine: {machine()}. Run: `{'nox -s bench -- --full' if plan is FULL else 'smoke'}`, "
        f"{plan.rounds} rounds, {seconds / 60:.1f} minutes.",
        "",
        targets.markdown(),
    ]
    return "\n\n".join(["\n".join(head), *(t.markdown() for t in tables)])


async def run_profile() -> None:
    for make in VENDORS:
        subject = await fullstack.make_subject(make(), "in-memory", None)
        for key, n in (("call", 5000), ("stream_1000", 40)):
            print((await profiling.profile(subject, key, n)).markdown(), end="\n\n")
        await subject.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", help="large counts; rewrite docs/performance.md"
    )
    parser.add_argument(
        "--profile", action="store_true", help="only profile the in-memory path (cProfile)"
    )
    args = parser.parse_args()
    if args.profile:
        asyncio.run(run_profile())
        return
    plan = FULL if args.full else SMOKE
    started = time.perf_counter()
    tables, targets = asyncio.run(run(plan))
    text = render(tables, targets, plan, time.perf_counter() - started)
    print(text)
    if args.full:
        doc = ROOT / "docs" / "performance.md"
        old = doc.read_text(encoding="utf-8")
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        before, _, rest = old.partition(start)
        _, _, after = rest.partition(end)
        doc.write_text(f"{before}{start}\n{text}\n{end}{after}", encoding="utf-8")
        print(f"wrote {doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
