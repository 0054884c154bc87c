"""Router overhead benchmark: the same call made directly on a provider and through a Router.

Every figure is a difference or ratio against a baseline measured in the same run, so the
machine's speed cancels out. Nothing here asserts a timing.

    python bench/overhead.py            # smoke run (small counts), prints the table
    python bench/overhead.py --full     # full run; also writes docs/performance.md

Measured:
- added latency per call (p50/p99, microseconds): in-process provider (the router's own cost,
  no network noise) and a loopback HTTP provider (end to end);
- added time per streamed chunk;
- throughput at concurrency 1/16/64 over loopback HTTP, raw vs routed;
- overhead with 500 messages vs 1 message;
- ``import orchestrator`` / ``from orchestrator import Router`` next to importing the
  dependencies alone.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from orchestrator import Router
from orchestrator.plugins import PluginRegistry
from orchestrator.providers import BaseProvider, GenerationParams, ProviderConfig
from orchestrator.testing import LoopbackServer
from orchestrator.types import Chunk, Completion, Message, Usage

ROOT = Path(__file__).resolve().parent.parent
ANSWER = json.dumps({"text": "ok"}).encode()


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": ANSWER})


class InProcess(BaseProvider):
    """Answers at once: what remains is the router's own cost."""

    supports_chat = supports_streaming = True
    chunks = 1000
    usage = Usage(1, 1, 2)

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        return "ok"

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        return Completion("ok", provider=self.config.name, usage=self.usage)

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        name = self.config.name
        for _ in range(self.chunks - 1):
            yield Chunk("x", provider=name)
        yield Chunk("", provider=name, finish_reason="stop", usage=self.usage)

    async def health_check(self) -> bool:
        return True


class OverHTTP(InProcess):
    """One POST per call on the provider's pooled per-loop client."""

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        response = await self.http_client().post(f"{self.config.base_url}/chat", json={"m": 1})
        return Completion(response.json()["text"], provider=self.config.name, usage=self.usage)


def percentile(data: list[float], q: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def paired(
    raw: Callable[[], Awaitable[Any]], routed: Callable[[], Awaitable[Any]], n: int
) -> tuple[list[float], list[float]]:
    """Interleave raw and routed calls so drift hits both equally."""
    raw_t: list[float] = []
    routed_t: list[float] = []
    for _ in range(max(10, n // 10)):  # warm up
        await raw()
        await routed()
    gc.disable()
    try:
        for _ in range(n):
            start = time.perf_counter_ns()
            await raw()
            middle = time.perf_counter_ns()
            await routed()
            end = time.perf_counter_ns()
            raw_t.append((middle - start) / 1000)
            routed_t.append((end - middle) / 1000)
    finally:
        gc.enable()
    return raw_t, routed_t


def added(raw_t: list[float], routed_t: list[float]) -> dict[str, float]:
    return {
        "raw_p50_us": percentile(raw_t, 0.5),
        "routed_p50_us": percentile(routed_t, 0.5),
        "added_p50_us": percentile(routed_t, 0.5) - percentile(raw_t, 0.5),
        "added_p99_us": percentile(routed_t, 0.99) - percentile(raw_t, 0.99),
    }


def make_router(provider: BaseProvider) -> Router:
    router = Router(registry=PluginRegistry(entry_points=False))
    router.add_provider(provider)
    return router


async def bench_in_process(n: int) -> dict[str, Any]:
    provider = InProcess(ProviderConfig(name="inproc"))
    router = make_router(provider)
    one = (Message("user", "hi"),)
    many = tuple(Message("user" if i % 2 else "assistant", f"m{i}") for i in range(500))
    results: dict[str, Any] = {}
    raw_t, routed_t = await paired(lambda: provider.chat(one), lambda: router.chat(one), n)
    results["call"] = added(raw_t, routed_t)
    raw_t, routed_t = await paired(lambda: provider.chat(many), lambda: router.chat(many), n)
    results["call_500_messages"] = added(raw_t, routed_t)

    async def drain_raw() -> None:
        async for _ in provider.stream(one):
            pass

    async def drain_routed() -> None:
        async for _ in router.chat_stream(one):
            pass

    raw_t, routed_t = await paired(drain_raw, drain_routed, max(20, n // 50))
    per_chunk = (statistics.median(routed_t) - statistics.median(raw_t)) / InProcess.chunks
    results["stream"] = {"chunks": InProcess.chunks, "added_per_chunk_us": per_chunk}
    return results


async def bench_http(base_url: str, n: int, concurrency: Sequence[int]) -> dict[str, Any]:
    provider = OverHTTP(ProviderConfig(name="http", base_url=base_url))
    router = make_router(provider)
    one = (Message("user", "hi"),)
    raw_t, routed_t = await paired(lambda: provider.chat(one), lambda: router.chat(one), n)
    results: dict[str, Any] = {"call": added(raw_t, routed_t), "throughput": {}}
    for c in concurrency:
        total = max(c * 4, n)
        per_worker = total // c
        best: dict[str, float] = {"raw": 0.0, "routed": 0.0}
        # Alternate raw and routed runs (after a warm-up that opens c pooled connections)
        # and keep each one's best, so neither benefits from running second.
        for label, call in [
            ("warm-up", lambda: provider.chat(one)),
            *[("raw", lambda: provider.chat(one)), ("routed", lambda: router.chat(one))] * 3,
        ]:

            async def worker(
                call: Callable[[], Awaitable[Any]] = call, count: int = per_worker
            ) -> None:
                for _ in range(count):
                    await call()

            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(c):
                    tg.start_soon(worker)
            rate = per_worker * c / (time.perf_counter() - start)
            if label != "warm-up":
                best[label] = max(best[label], rate)
        results["throughput"][c] = {**best, "ratio": best["routed"] / best["raw"]}
    await provider.aclose()
    return results


def import_times(repeat: int) -> dict[str, float]:
    def best(code: str) -> float:
        times = []
        for _ in range(repeat):
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            times.append(float(out) * 1000)
        return min(times)

    return {
        "import orchestrator (ms)": best("import orchestrator"),
        "from orchestrator import Router (ms)": best("from orchestrator import Router"),
        "deps alone: pydantic, anyio, pluggy (ms)": best("import pydantic, anyio, pluggy"),
        "deps alone + httpx (ms)": best("import pydantic, anyio, pluggy, httpx"),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


def render(results: dict[str, Any]) -> str:
    ip, http = results["in_process"], results["http"]
    lines = [
        f"Machine: {results['machine']}",
        "",
        "| measurement | raw | routed | added |",
        "|---|---|---|---|",
        f"| call, in-process provider, p50 | {ip['call']['raw_p50_us']:.1f} µs | "
        f"{ip['call']['routed_p50_us']:.1f} µs | **{ip['call']['added_p50_us']:.1f} µs** |",
        f"| call, in-process provider, p99 | | | **{ip['call']['added_p99_us']:.1f} µs** |",
        "| call with 500 messages, p50 | | | "
        f"**{ip['call_500_messages']['added_p50_us']:.1f} µs** |",
        f"| call over loopback HTTP, p50 | {http['call']['raw_p50_us']:.0f} µs | "
        f"{http['call']['routed_p50_us']:.0f} µs | {http['call']['added_p50_us']:.1f} µs |",
        f"| call over loopback HTTP, p99 | | | {http['call']['added_p99_us']:.1f} µs |",
        f"| stream, per chunk ({ip['stream']['chunks']} chunks) | | | "
        f"**{ip['stream']['added_per_chunk_us']:.2f} µs** |",
        "",
        "| concurrency | raw req/s | routed req/s | routed / raw |",
        "|---|---|---|---|",
    ]
    for c, row in http["throughput"].items():
        lines.append(f"| {c} | {row['raw']:.0f} | {row['routed']:.0f} | {row['ratio']:.3f} |")
    lines += ["", "| import | time |", "|---|---|"]
    for label, value in results["imports"].items():
        lines.append(f"| `{label}` | {value:.1f} |")
    return "\n".join(lines)


def serve_forever() -> None:
    """The HTTP side, run in its own process so it does not share the client's GIL."""
    with LoopbackServer(http_app) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin


async def run(full: bool) -> dict[str, Any]:
    n = 20000 if full else 300
    server = subprocess.Popen(  # noqa: ASYNC220 - once, before anything is timed
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        http = await bench_http(base_url, 3000 if full else 100, (1, 16, 64))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
    return {
        "machine": machine(),
        "in_process": await bench_in_process(n),
        "http": http,
        "imports": import_times(15 if full else 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", help="large counts; write docs/performance.md"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_forever()
        return
    results = asyncio.run(run(args.full))
    table = render(results)
    print(table)
    if args.full:
        doc = ROOT / "docs" / "performance.md"
        text = doc.read_text(encoding="utf-8")
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        doc.write_text(f"{head}{start}\n{table}\n{end}{tail}", encoding="utf-8")
        print(f"wrote {doc}")


if __name__ == "__main__":
    main()
