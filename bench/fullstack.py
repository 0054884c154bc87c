"""Full stack: raw httpx vs the provider alone vs the Router over it, per shipped provider.

Three variants make the same request in each measurement:

- **raw httpx**: ``httpx.AsyncClient.post(url, json=..., headers=...)`` + ``.json()``; for a
  stream, ``client.stream(...)`` read with ``aiter_lines()`` + ``json.loads`` of each event;
- **provider**: ``provider.chat(messages)`` / draining ``provider.stream(messages)``;
- **Router**: ``Router().chat(messages)`` / draining ``router.chat_stream(messages)`` with that
  one provider (the default registry, as a user's ``Router()`` has it).

Two settings: **in-memory** (every client on one :class:`~vendors.CannedTransport` replaying
the emulator's recorded answer, so what remains is the client-side cost, precisely) and
**loopback** (the vendor emulator served by uvicorn in another process, end to end).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from _common import Call, Spread, Table, interleaved
from vendors import SCENARIOS, CannedTransport, Recorded, Recorder, Vendor, prompt, split_events

from orchestrator import Router
from orchestrator.providers import BaseProvider

VARIANTS = ("raw", "provider", "router")
LABELS = {"raw": "raw httpx", "provider": "provider", "router": "Router"}


@dataclass
class Subject:
    """One vendor in one setting, ready to be called three ways."""

    vendor: Vendor
    setting: str
    provider: BaseProvider
    router: Router
    raw: httpx.AsyncClient
    recorded: dict[str, Recorded]
    chunks: dict[str, int]
    canned: CannedTransport | None

    def use(self, key: str) -> None:
        if self.canned is not None:
            self.canned.current = key

    def variants(self, key: str) -> dict[str, Call]:
        scenario, rec = SCENARIOS[key], self.recorded[key]
        messages = prompt(scenario)
        raw, provider, router = self.raw, self.provider, self.router
        if not scenario.stream:

            async def raw_call() -> Any:
                response = await raw.post(rec.url, json=rec.payload, headers=rec.headers)
                return response.json()

            return {
                "raw": raw_call,
                "provider": lambda: provider.chat(messages),
                "router": lambda: router.chat(messages),
            }
        parse = self.vendor.parse_raw_stream

        async def raw_stream() -> Any:
            async with raw.stream("POST", rec.url, json=rec.payload, headers=rec.headers) as r:
                return await parse(r)

        async def drain(stream: AsyncIterator[Any]) -> int:
            count = 0
            async with aclosing(stream):  # type: ignore[type-var]
                async for _ in stream:
                    count += 1
            return count

        return {
            "raw": raw_stream,
            "provider": lambda: drain(provider.stream(messages)),
            "router": lambda: drain(router.chat_stream(messages)),
        }

    async def aclose(self) -> None:
        await self.router.aclose()
        await self.provider.aclose()
        await self.raw.aclose()


async def _count(stream: AsyncIterator[Any]) -> int:
    return len([chunk async for chunk in stream])


async def make_subject(vendor: Vendor, setting: str, server: dict[str, Any] | None) -> Subject:
    """Record the provider's request and the emulator's answer for every scenario, then
    build the provider, Router and raw client that the measurements use."""
    if setting == "in-memory":
        emulator = vendor.make_emulator()
        token = emulator.issue_token() if hasattr(emulator, "issue_token") else None
        base_url = "http://emulator.test"
        inner: httpx.AsyncBaseTransport = httpx.ASGITransport(app=emulator)
    else:
        assert server is not None
        emulator, token = vendor.make_emulator(), server.get(f"{vendor.name}_token")
        base_url = server[vendor.name]
        inner = httpx.AsyncHTTPTransport()
    config = vendor.make_config(base_url, emulator, token)
    recorder = Recorder(inner)
    recording = vendor.provider_class(config, transport=recorder, **vendor.provider_kwargs)
    recorded: dict[str, Recorded] = {}
    chunks: dict[str, int] = {}
    for key, scenario in SCENARIOS.items():
        messages = prompt(scenario)
        if scenario.stream:
            chunks[key] = await _count(recording.stream(messages))
        else:
            await recording.chat(messages)
        assert recorder.last is not None
        assert recorder.last.status == 200, recorder.last
        recorded[key] = recorder.last
    await recording.aclose()
    canned: CannedTransport | None = None
    if setting == "in-memory":
        canned = CannedTransport()
        for key, rec in recorded.items():
            if SCENARIOS[key].stream:
                pieces = split_events(rec.body, vendor.sse)
                canned.answers[key] = (rec.status, rec.response_headers, pieces)
            else:
                length = (b"content-length", str(len(rec.body)).encode())
                canned.answers[key] = (rec.status, [*rec.response_headers, length], [rec.body])
        provider = vendor.provider_class(config, transport=canned, **vendor.provider_kwargs)
        raw = httpx.AsyncClient(transport=canned)
    else:
        provider = vendor.provider_class(config, **vendor.provider_kwargs)
        raw = httpx.AsyncClient(timeout=config.timeout)
    router = Router()
    router.add_provider(provider)
    return Subject(vendor, setting, provider, router, raw, recorded, chunks, canned)


# -- latency and CPU per call ------------------------------------------------------------


@dataclass
class Figures:
    """Spreads across rounds for one subject and scenario."""

    p50: dict[str, Spread] = field(default_factory=lambda: {v: Spread() for v in VARIANTS})
    p99: dict[str, Spread] = field(default_factory=lambda: {v: Spread() for v in VARIANTS})
    cpu: dict[str, Spread] = field(default_factory=lambda: {v: Spread() for v in VARIANTS})
    # paired within each round
    provider_added: Spread = field(default_factory=Spread)  # provider - raw, p50
    router_added: Spread = field(default_factory=Spread)  # router - provider, p50
    router_added_p99: Spread = field(default_factory=Spread)
    stack_added: Spread = field(default_factory=Spread)  # router - raw, p50
    stack_added_p99: Spread = field(default_factory=Spread)
    stack_ratio: Spread = field(default_factory=Spread)
    stack_cpu_added: Spread = field(default_factory=Spread)
    stack_cpu_ratio: Spread = field(default_factory=Spread)
    provider_cpu_added: Spread = field(default_factory=Spread)


async def measure_latency(
    subject: Subject, counts: dict[str, int], rounds: int
) -> dict[str, Figures]:
    """``rounds`` rounds; in each, every scenario measured interleaved ``counts[key]`` times."""
    figures = {key: Figures() for key in counts}
    for _ in range(rounds):
        for key, n in counts.items():
            subject.use(key)
            t = await interleaved(subject.variants(key), n, warmup=max(3, n // 20))
            f = figures[key]
            for v in VARIANTS:
                f.p50[v].add(t[v].p50)
                f.p99[v].add(t[v].p99)
                f.cpu[v].add(t[v].cpu_per_call)
            f.provider_added.add(t["provider"].p50 - t["raw"].p50)
            f.router_added.add(t["router"].p50 - t["provider"].p50)
            f.router_added_p99.add(t["router"].p99 - t["provider"].p99)
            f.stack_added.add(t["router"].p50 - t["raw"].p50)
            f.stack_added_p99.add(t["router"].p99 - t["raw"].p99)
            f.stack_ratio.add(t["router"].p50 / t["raw"].p50)
            f.stack_cpu_added.add(t["router"].cpu_per_call - t["raw"].cpu_per_call)
            f.stack_cpu_ratio.add(t["router"].cpu_per_call / t["raw"].cpu_per_call)
            f.provider_cpu_added.add(t["provider"].cpu_per_call - t["raw"].cpu_per_call)
    return figures


def _spreads() -> dict[str, Spread]:
    return {v: Spread() for v in VARIANTS}


@dataclass
class StreamCost:
    """Per-stream and per-chunk cost from a short and a long stream (same rounds), from
    p50 latency and, alongside, from CPU time (steadier on a busy machine)."""

    per_chunk: dict[str, Spread] = field(default_factory=_spreads)
    per_chunk_large: dict[str, Spread] = field(default_factory=_spreads)
    per_stream: dict[str, Spread] = field(default_factory=_spreads)
    per_chunk_cpu: dict[str, Spread] = field(default_factory=_spreads)
    per_chunk_large_cpu: dict[str, Spread] = field(default_factory=_spreads)
    per_stream_cpu: dict[str, Spread] = field(default_factory=_spreads)


def stream_cost(subject: Subject, figures: dict[str, Figures]) -> StreamCost:
    """Added cost (vs raw httpx, per round) split into a per-stream and per-chunk part:
    the slope between the short and the 1,000-chunk stream is the per-chunk cost, the rest
    of the short stream's cost is per stream; the large-chunk slope is computed the same way."""
    cost = StreamCost()
    short, long_, large = (figures[k] for k in ("stream_short", "stream_1000", "stream_large"))
    n_short = subject.chunks["stream_short"]
    n_long, n_large = subject.chunks["stream_1000"], subject.chunks["stream_large"]
    for v in ("provider", "router"):
        for i in range(len(short.p50["raw"].values)):
            for stat, chunk, chunk_large, stream in (
                ("p50", cost.per_chunk, cost.per_chunk_large, cost.per_stream),
                ("cpu", cost.per_chunk_cpu, cost.per_chunk_large_cpu, cost.per_stream_cpu),
            ):

                def added(f: Figures, i: int = i, v: str = v, stat: str = stat) -> float:
                    values = getattr(f, stat)
                    return float(values[v].values[i] - values["raw"].values[i])

                slope = (added(long_) - added(short)) / (n_long - n_short)
                chunk[v].add(slope)
                chunk_large[v].add((added(large) - added(short)) / (n_large - n_short))
                stream[v].add(added(short) - slope * n_short)
    return cost


def latency_table(subject: Subject, figures: dict[str, Figures]) -> Table:
    v, s = subject.vendor.name, subject.setting
    table = Table(
        f"{v}, {s}: latency and CPU per call (µs; median of rounds, min … max)",
        [
            "raw httpx",
            "provider",
            "Router",
            "provider - raw",
            "Router - provider",
            "Router - raw",
            "Router / raw",
        ],
    )
    for key, f in figures.items():
        label = SCENARIOS[key].label
        if SCENARIOS[key].stream:
            label += f" ({subject.chunks[key]} chunks)"
        table.add(
            f"{label}, p50",
            *(f.p50[x].text() for x in VARIANTS),
            f.provider_added.text(),
            f.router_added.text(),
            f"**{f.stack_added.text()}**",
            f.stack_ratio.text(2),
        )
        table.add(
            f"{label}, p99",
            *(f.p99[x].text() for x in VARIANTS),
            "",
            f.router_added_p99.text(),
            f.stack_added_p99.text(),
            "",
        )
        table.add(
            f"{label}, CPU per call",
            *(f.cpu[x].text() for x in VARIANTS),
            f.provider_cpu_added.text(),
            "",
            f.stack_cpu_added.text(),
            f.stack_cpu_ratio.text(2),
        )
    return table


# -- throughput at concurrency -----------------------------------------------------------


@dataclass
class Throughput:
    rate: dict[str, Spread] = field(default_factory=lambda: {v: Spread() for v in VARIANTS})
    cpu: dict[str, Spread] = field(default_factory=lambda: {v: Spread() for v in VARIANTS})
    ratio: Spread = field(default_factory=Spread)  # router / raw calls/s
    cpu_ratio: Spread = field(default_factory=Spread)  # router / raw CPU per call


async def _run_concurrent(call: Call, c: int, total: int) -> tuple[float, float]:
    per_worker = max(1, total // c)

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    cpu0, t0 = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(c):
            tg.start_soon(worker)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    calls = per_worker * c
    return calls / wall, cpu / calls * 1e6


async def measure_throughput(
    subject: Subject, levels: tuple[int, ...], total: int, rounds: int
) -> dict[int, Throughput]:
    """Plain calls from ``c`` concurrent tasks; variants alternate run by run, rotating."""
    subject.use("call")
    variants = subject.variants("call")
    results: dict[int, Throughput] = {}
    for c in levels:
        out = results[c] = Throughput()
        await _run_concurrent(variants["provider"], c, c * 2)  # warm-up: c pooled connections
        await _run_concurrent(variants["raw"], c, c * 2)
        for r in range(rounds):
            measured: dict[str, tuple[float, float]] = {}
            order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
            for v in order:
                measured[v] = await _run_concurrent(variants[v], c, total)
                out.rate[v].add(measured[v][0])
                out.cpu[v].add(measured[v][1])
            out.ratio.add(measured["router"][0] / measured["raw"][0])
            out.cpu_ratio.add(measured["router"][1] / measured["raw"][1])
    return results


def throughput_table(subject: Subject, results: dict[int, Throughput]) -> Table:
    table = Table(
        f"{subject.vendor.name}, {subject.setting}: plain calls at concurrency "
        "(calls/s and CPU µs per call; median of rounds, min … max)",
        [
            "raw calls/s",
            "provider calls/s",
            "Router calls/s",
            "Router / raw calls/s",
            "raw CPU/call",
            "provider CPU/call",
            "Router CPU/call",
            "Router / raw CPU",
        ],
    )
    for c, t in results.items():
        table.add(
            f"c = {c}",
            *(t.rate[v].text(0) for v in VARIANTS),
            t.ratio.text(2),
            *(t.cpu[v].text(0) for v in VARIANTS),
            t.cpu_ratio.text(2),
        )
    return table
