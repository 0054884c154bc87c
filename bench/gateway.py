"""The gateway's cost: a request through the gateway (``orchestrator serve`` in its own
process, on loopback) against the same request to the router in-process, over an instant
in-memory provider (so the difference is the HTTP hop with the client's own cost, the JSON in
and out, auth and the per-key counters; a real vendor's latency adds to both).

    python bench/gateway.py            # smoke run (a few seconds)
    python bench/gateway.py --full     # more calls and rounds

Printed: per-call latency (median of rounds of p50s, interleaved calls), the gateway's added
latency, and throughput at concurrency (requests per second, ratio gateway / in-process).
Plain and streamed chat. Nothing is asserted (see bench/_common.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import Spread, Table, interleaved, machine

from orchestrator import Router
from orchestrator.plugins import PluginRegistry
from orchestrator.providers.mock import MockConfig, MockProvider
from orchestrator_gateway import hash_key

KEY = "sk-bench-0123456789"
QUESTION = [{"role": "user", "content": "How fast is the gateway?"}]


@dataclass(frozen=True)
class Plan:
    rounds: int
    calls: int
    streams: int
    concurrency: tuple[int, ...]
    concurrent_calls: int


SMOKE = Plan(rounds=2, calls=150, streams=40, concurrency=(1, 16), concurrent_calls=300)
FULL = Plan(rounds=5, calls=1000, streams=300, concurrency=(1, 16, 64), concurrent_calls=3000)


def build_router() -> Router:
    router = Router("first-available", registry=PluginRegistry())
    router.add_provider(MockProvider(MockConfig(name="mock", response="The answer, at once.")))
    return router


async def throughput(call: Any, total: int, concurrency: int) -> float:
    """Requests per second: ``total`` calls, ``concurrency`` at a time."""
    queue = iter(range(total))

    async def worker() -> None:
        for _ in queue:
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))  # noqa: TID251 - bench only
    return total / (time.perf_counter() - started)


CONFIG = """
strategy = "first-available"
[providers.mock]
response = "The answer, at once."
[gateway]
port = {port}
[gateway.keys.bench]
key_sha256 = "{digest}"
"""


@contextlib.contextmanager
def gateway_process(port: int) -> Iterator[tuple[str, int]]:
    """``orchestrator serve`` in a process of its own (as deployed: it does not share this
    process's GIL with the client); its base URL."""
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        config = Path(tmp) / "orchestrator.toml"
        config.write_text(CONFIG.format(port=port, digest=hash_key(KEY)))
        command = [sys.executable, "-m", "orchestrator", "serve", "--config", str(config)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            until = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/health/readiness").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > until:
                    error = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"the gateway did not start:\n{error}")
                time.sleep(0.05)
            yield base, process.pid
        finally:
            process.terminate()
            process.wait(timeout=30)
            if process.stderr is not None:
                process.stderr.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def run(plan: Plan) -> list[Table]:
    router = build_router()
    with gateway_process(free_port()) as (base, pid):
        limits = httpx.Limits(max_connections=max(plan.concurrency), max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=f"{base}/v1",
            headers={"authorization": f"Bearer {KEY}"},
            limits=limits,
            timeout=30,
        ) as http:

            async def in_process() -> None:
                await router.chat(QUESTION)

            async def gateway() -> None:
                response = await http.post(
                    "/chat/completions", json={"model": "default", "messages": QUESTION}
                )
                response.raise_for_status()

            async def in_process_stream() -> None:
                async for _ in router.chat_stream(QUESTION):
                    pass

            async def gateway_stream() -> None:
                body = {"model": "default", "messages": QUESTION, "stream": True}
                async with http.stream("POST", "/chat/completions", json=body) as response:
                    response.raise_for_status()
                    async for _ in response.aiter_bytes():
                        pass

            latency = Table(
                "Latency per call (µs, p50; median of rounds, min … max)",
                ["in-process", "gateway", "added by the gateway"],
                note="An instant in-memory provider behind both: the difference is the "
                "gateway's own cost (HTTP on loopback, JSON, auth, counters).",
            )
            for label, direct, over_http, n in (
                ("chat", in_process, gateway, plan.calls),
                ("stream", in_process_stream, gateway_stream, plan.streams),
            ):
                spreads = [Spread(), Spread(), Spread()]
                for _ in range(plan.rounds):
                    timings = await interleaved(
                        {"direct": direct, "gateway": over_http}, n, warmup=max(5, n // 10)
                    )
                    a, b = timings["direct"].p50, timings["gateway"].p50
                    for spread, value in zip(spreads, (a, b, b - a), strict=True):
                        spread.add(value)
                latency.add(label, *(s.text(0) for s in spreads))

            cpu = Table(
                "The gateway process's CPU per request (µs; median of rounds)",
                ["chat", "stream"],
                note="Robust on a busy machine, where wall-clock figures wander: what one "
                "request costs the gateway's process (HTTP parsing, JSON, auth, router).",
            )
            spreads = [Spread(), Spread()]
            for _ in range(plan.rounds):
                for spread, call, n in (
                    (spreads[0], gateway, plan.calls),
                    (spreads[1], gateway_stream, plan.streams),
                ):
                    before = cpu_seconds(pid)
                    for _ in range(n):
                        await call()
                    spread.add((cpu_seconds(pid) - before) / n * 1e6)
            cpu.add("one request", spreads[0].text(0), spreads[1].text(0))

            rate = Table(
                "Throughput (requests/s; median of rounds)",
                ["in-process", "gateway", "gateway / in-process"],
                note="Chat calls, N at a time, from one client process; the gateway is one "
                "`orchestrator serve` process (one uvicorn worker).",
            )
            for level in plan.concurrency:
                spreads = [Spread(), Spread(), Spread()]
                for _ in range(plan.rounds):
                    a = await throughput(in_process, plan.concurrent_calls, level)
                    b = await throughput(gateway, plan.concurrent_calls, level)
                    for spread, value in zip(spreads, (a, b, b / a), strict=True):
                        spread.add(value)
                rate.add(
                    f"concurrency {level}",
                    spreads[0].text(0),
                    spreads[1].text(0),
                    spreads[2].text(3, " x"),
                )
    return [latency, cpu, rate]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="more calls and rounds")
    args, _ = parser.parse_known_args()
    plan = FULL if args.full else SMOKE
    started = time.perf_counter()
    tables = asyncio.run(run(plan))
    print(f"## The gateway against the router in-process\n\n{machine()}\n")
    for table in tables:
        print(table.markdown(), end="\n\n")
    print(f"({time.perf_counter() - started:.1f} s, {'full' if args.full else 'smoke'} run)")


if __name__ == "__main__":
    main()
