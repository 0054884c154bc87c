"""Side by side with LiteLLM: raw httpx, our Router over the openai plugin, and LiteLLM's
Router, making the same requests to one OpenAI-compatible loopback server in one run.

    nox -s litellm                          # smoke run (small counts), prints the tables
    nox -s litellm -- --full --write        # full run; rewrites the LiteLLM section of
                                            # docs/performance.md (between its markers)
    python bench/litellm_compare.py ...     # the same, in an environment with litellm

Variants, interleaved call by call (``_common.interleaved``), every round:

- **raw httpx**: the request our provider makes (recorded once: URL, headers, JSON body),
  sent with ``httpx.AsyncClient.post`` + ``.json()``; streams read with ``aiter_lines()`` +
  ``json.loads`` of each ``data:`` line;
- **our provider**: ``OpenAIProvider.chat()`` / draining ``.stream()``;
- **our Router**: ``Router.chat()`` / draining ``chat_stream()`` over two ``OpenAIProvider``
  deployments of the same server (round-robin, the default);
- **LiteLLM Router**: ``litellm.Router(model_list=[two deployments of the same server])``,
  ``acompletion(...)`` / ``acompletion(..., stream=True)`` drained, with LiteLLM's default
  HTTP client and settings (``stream_options.include_usage`` set, as our provider sends it).

The server (``--serve``, its own process) is the orchestrator-openai emulator's answers
replayed by a minimal keep-alive HTTP/1.1 server: the first request of each shape is
answered by :class:`orchestrator_openai.emulator.OpenAIEmulator` (in the server process,
over ASGI) and its bytes are cached; every later request of that shape gets the cached bytes
(streams chunked, one HTTP chunk per SSE event, written at once). So every client parses a
real emulator answer, and the server's own cost per call is a dictionary lookup and a
socket write, not Starlette, uvicorn and the emulator's JSON encoding.

Nothing here asserts a timing. LiteLLM is not a dependency of the project: ``nox -s
litellm`` installs it (pinned) in its own environment.
"""

from __future__ import annotations

import os

# Before LiteLLM is imported anywhere (here or in a child process): its bundled model price
# map, not a download at import time, and no log chatter.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
import fullstack
import httpx
from _common import (
    ROOT,
    Call,
    Spread,
    Table,
    interleaved,
    machine,
    raise_fd_limit,
    rss_mib,
)
from memory import _transport as unlimited_transport
from startup import _timed
from vendors import SCENARIOS, Vendor, _raw_sse, prompt, split_events

VARIANTS = ("raw", "provider", "router", "litellm")
LABELS = {
    "raw": "raw httpx",
    "provider": "our provider",
    "router": "our Router",
    "litellm": "LiteLLM Router",
}
OVER = ("provider", "router", "litellm")  # compared with raw
KEYS = ("call", "stream_short", "stream_1000")
MODEL = "gpt-4o-mini"
START, END = "<!-- litellm:start -->", "<!-- litellm:end -->"


@dataclass(frozen=True)
class Plan:
    name: str
    rounds: int
    counts: dict[str, int]
    levels: tuple[int, ...]
    concurrent_calls: int
    concurrent_rounds: int
    memory_streams: int
    memory_rounds: int
    import_repeat: int


SMOKE = Plan(
    "smoke",
    rounds=2,
    counts={"call": 30, "stream_short": 10, "stream_1000": 1},
    levels=(1, 16, 64),
    concurrent_calls=64,
    concurrent_rounds=1,
    memory_streams=100,
    memory_rounds=1,
    import_repeat=2,
)
FULL = Plan(
    "full",
    rounds=5,
    counts={"call": 300, "stream_short": 100, "stream_1000": 5},
    levels=(1, 16, 64),
    concurrent_calls=384,
    concurrent_rounds=3,
    memory_streams=1000,
    memory_rounds=2,
    import_repeat=5,
)


# -- the server ------------------------------------------------------------------------------


def _frame(status: int, content_type: str, body: bytes) -> bytes:
    """One HTTP/1.1 response: an SSE body chunked (one HTTP chunk per event), else sized."""
    head = f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n"
    if content_type.startswith("text/event-stream"):
        chunks = b"".join(
            f"{len(event):x}\r\n".encode() + event + b"\r\n"
            for event in split_events(body, sse=True)
        )
        return (head + "transfer-encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
    return (head + f"content-length: {len(body)}\r\n\r\n").encode() + body


def serve_forever() -> None:
    """The replaying server (see the module's docstring); prints its base URL, serves until
    its stdin closes."""
    import logging

    from orchestrator_openai.emulator import OpenAIEmulator

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    raise_fd_limit(8192)
    emulator = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=OpenAIEmulator(api_key=None)),
        base_url="http://emulator",
    )
    cache: dict[str, bytes] = {}

    async def answer(path: str, body: bytes) -> bytes:
        data = json.loads(body) if body else {}
        key = json.dumps(
            [path, data.get("stream"), data.get("stream_options"), data.get("messages", [])[-1:]]
        )
        hit = cache.get(key)
        if hit is None:
            response = await emulator.post(
                path, content=body, headers={"content-type": "application/json"}
            )
            content_type = response.headers.get("content-type", "application/json")
            hit = cache[key] = _frame(response.status_code, content_type, response.content)
        return hit

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                path = lines[0].split(b" ")[1].decode()
                length = 0
                for line in lines[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                writer.write(await answer(path, body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(main())


@contextmanager
def replay_server() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


# -- the subjects ----------------------------------------------------------------------------


def _openai_config(base_url: str, name: str = "openai") -> Any:
    from orchestrator_openai.emulator import TEST_API_KEY, config_for

    server = SimpleNamespace(app=None, base_url=base_url, tls=False, ca_file=None)
    return config_for(server, name=name, api_key=TEST_API_KEY, model=MODEL)  # type: ignore[arg-type]


def openai_vendor() -> Vendor:
    from orchestrator_openai import OpenAIProvider

    return Vendor(
        "OpenAI",
        lambda: None,
        lambda base_url, emulator, token: _openai_config(base_url),
        OpenAIProvider,
        _raw_sse,
        sse=True,
    )


def litellm_router(base_url: str) -> Any:
    """LiteLLM's Router with two deployments of the same server, its defaults otherwise."""
    import litellm

    from orchestrator_openai.emulator import TEST_API_KEY

    litellm.suppress_debug_info = True
    params = {"model": f"openai/{MODEL}", "api_base": f"{base_url}/v1", "api_key": TEST_API_KEY}
    return litellm.Router(
        model_list=[
            {"model_name": "bench", "litellm_params": dict(params), "model_info": {"id": name}}
            for name in ("deployment-a", "deployment-b")
        ]
    )


@dataclass
class Subjects:
    subject: fullstack.Subject  # raw, provider, Router (two deployments)
    litellm: Any

    def variants(self, key: str) -> dict[str, Call]:
        ours = self.subject.variants(key)
        router = self.litellm
        messages = [{"role": m.role, "content": m.content} for m in prompt(SCENARIOS[key])]
        if not SCENARIOS[key].stream:

            async def litellm_call() -> Any:
                response = await router.acompletion(model="bench", messages=messages)
                return response

        else:

            async def litellm_call() -> Any:
                response = await router.acompletion(
                    model="bench",
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                count = 0
                async for _ in response:
                    count += 1
                return count

        return {**ours, "litellm": litellm_call}

    async def settle(self) -> None:
        """Between timed calls, untimed: wait for the work LiteLLM defers past a call (its
        async logging queue and its logging thread pool: private attributes of LiteLLM's,
        read only here), then one raw call to re-warm the caches, so whichever variant comes
        next starts from the same state (without it the variant after LiteLLM's ran about
        0.5-1 ms of CPU slower)."""
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
        from litellm.litellm_core_utils.thread_pool_executor import executor

        await GLOBAL_LOGGING_WORKER.flush()
        slots = getattr(executor, "_pending_slots", None)
        full = getattr(executor, "_max_pending_tasks", 0)
        for _ in range(2000):  # at most about a second
            if slots is None or slots._value >= full:
                break
            await anyio.sleep(0.0005)
        await self.warm()

    async def chunks(self, key: str) -> dict[str, int]:
        """Chunks one stream yields (our provider's from the recording, LiteLLM's by
        counting): the per-chunk slope divides by our provider's count; LiteLLM's differs
        by a constant (its role and usage chunks), so the span between streams is the same."""
        return {
            "ours": self.subject.chunks[key],
            "litellm": await self.variants(key)["litellm"](),
        }

    async def aclose(self) -> None:
        await self.subject.aclose()

    async def warm(self) -> None:
        rec = self.subject.recorded["call"]
        await self.subject.raw.post(rec.url, json=rec.payload, headers=rec.headers)


async def make_subjects(base_url: str) -> Subjects:
    from orchestrator_openai import OpenAIProvider

    subject = await fullstack.make_subject(openai_vendor(), "loopback", {"OpenAI": base_url})
    subject.router.add_provider(OpenAIProvider(_openai_config(base_url, name="openai-b")))
    return Subjects(subject, litellm_router(base_url))


# -- latency, CPU, per chunk -----------------------------------------------------------------


def _per_variant() -> dict[str, Spread]:
    return {v: Spread() for v in VARIANTS}


@dataclass
class Figures:
    p50: dict[str, Spread] = field(default_factory=_per_variant)
    p99: dict[str, Spread] = field(default_factory=_per_variant)
    cpu: dict[str, Spread] = field(default_factory=_per_variant)
    # paired with raw within each round
    added_p50: dict[str, Spread] = field(default_factory=_per_variant)
    added_p99: dict[str, Spread] = field(default_factory=_per_variant)
    added_cpu: dict[str, Spread] = field(default_factory=_per_variant)
    ratio_p50: dict[str, Spread] = field(default_factory=_per_variant)
    ratio_cpu: dict[str, Spread] = field(default_factory=_per_variant)


async def measure_latency(subjects: Subjects, plan: Plan) -> dict[str, Figures]:
    figures = {key: Figures() for key in KEYS}
    for r in range(plan.rounds):
        for key in KEYS:
            n = plan.counts[key]
            t = await interleaved(
                subjects.variants(key), n, warmup=max(2, n // 20), settle=subjects.settle
            )
            f = figures[key]
            for v in VARIANTS:
                f.p50[v].add(t[v].p50)
                f.p99[v].add(t[v].p99)
                f.cpu[v].add(t[v].cpu_per_call)
                f.added_p50[v].add(t[v].p50 - t["raw"].p50)
                f.added_p99[v].add(t[v].p99 - t["raw"].p99)
                f.added_cpu[v].add(t[v].cpu_per_call - t["raw"].cpu_per_call)
                f.ratio_p50[v].add(t[v].p50 / t["raw"].p50)
                f.ratio_cpu[v].add(t[v].cpu_per_call / t["raw"].cpu_per_call)
        print(f"  latency round {r + 1}/{plan.rounds}", file=sys.stderr)
    return figures


@dataclass
class ChunkCost:
    """Added over raw per chunk: the slope between the short and the 1,000-chunk
    stream, paired within each round; from p50 latency and from CPU time."""

    p50: dict[str, Spread] = field(default_factory=_per_variant)
    cpu: dict[str, Spread] = field(default_factory=_per_variant)
    per_stream_cpu: dict[str, Spread] = field(default_factory=_per_variant)


def chunk_cost(figures: dict[str, Figures], events: dict[str, int]) -> ChunkCost:
    cost = ChunkCost()
    short, long_ = figures["stream_short"], figures["stream_1000"]
    span = events["stream_1000"] - events["stream_short"]
    for v in OVER:
        for i in range(len(short.added_p50[v].values)):
            cost.p50[v].add((long_.added_p50[v].values[i] - short.added_p50[v].values[i]) / span)
            slope = (long_.added_cpu[v].values[i] - short.added_cpu[v].values[i]) / span
            cost.cpu[v].add(slope)
            cost.per_stream_cpu[v].add(
                short.added_cpu[v].values[i] - slope * events["stream_short"]
            )
    return cost


# -- throughput ------------------------------------------------------------------------------


@dataclass
class Throughput:
    rate: dict[str, Spread] = field(default_factory=_per_variant)
    cpu: dict[str, Spread] = field(default_factory=_per_variant)
    rate_ratio: dict[str, Spread] = field(default_factory=_per_variant)  # v / raw
    cpu_ratio: dict[str, Spread] = field(default_factory=_per_variant)


async def measure_throughput(subjects: Subjects, plan: Plan) -> dict[int, Throughput]:
    """Plain calls from ``c`` tasks; the variants' runs alternate, rotating the order."""
    variants = subjects.variants("call")
    results: dict[int, Throughput] = {}
    for c in plan.levels:
        out = results[c] = Throughput()
        for v in VARIANTS:  # warm-up: c pooled connections each
            await fullstack._run_concurrent(variants[v], c, c * 2)
        for r in range(plan.concurrent_rounds):
            measured: dict[str, tuple[float, float]] = {}
            shift = r % len(VARIANTS)
            for v in VARIANTS[shift:] + VARIANTS[:shift]:
                measured[v] = await fullstack._run_concurrent(variants[v], c, plan.concurrent_calls)
            for v in VARIANTS:
                out.rate[v].add(measured[v][0])
                out.cpu[v].add(measured[v][1])
                out.rate_ratio[v].add(measured[v][0] / measured["raw"][0])
                out.cpu_ratio[v].add(measured[v][1] / measured["raw"][1])
        print(f"  throughput c = {c}", file=sys.stderr)
    return results


# -- import time -----------------------------------------------------------------------------

IMPORTS = {
    "raw": "import httpx",
    "router": "from orchestrator import Router; import orchestrator_openai",
    "litellm": "from litellm import Router",
}


def measure_imports(repeat: int) -> dict[str, Spread]:
    """Each statement timed inside a fresh ``python -c`` (interpreter start-up excluded),
    the three alternating run by run."""
    results = {v: Spread() for v in IMPORTS}
    for _ in range(repeat):
        for v, code in IMPORTS.items():
            results[v].add(_timed(code))
    return results


# -- memory ----------------------------------------------------------------------------------


async def _memory_side(kind: str, n: int, base_url: str) -> dict[str, float]:
    """N streams opened and held (first chunk read) in this process; RSS before and with all
    open. Raw and our Router use the same unlimited httpx transport as ``bench/memory.py``;
    LiteLLM uses its own default client."""
    raise_fd_limit(n + 512)
    messages = [{"role": "user", "content": "hi"}]
    opened = 0
    all_open, release = anyio.Event(), anyio.Event()

    async def held(stream: AsyncIterator[Any], hold: bool) -> None:
        nonlocal opened
        await anext(stream)
        if hold:
            opened += 1
            if opened == n:
                all_open.set()
            await release.wait()

    closer: Any = None
    if kind == "router":
        from orchestrator import Router
        from orchestrator.types import Message
        from orchestrator_openai import OpenAIProvider

        router = Router()
        for name in ("openai", "openai-b"):
            router.add_provider(
                OpenAIProvider(_openai_config(base_url, name), transport=unlimited_transport())
            )
        closer = router

        async def one(hold: bool) -> None:
            async with aclosing(router.chat_stream([Message("user", "hi")])) as stream:
                await held(stream, hold)

    elif kind == "litellm":
        router = litellm_router(base_url)

        async def one(hold: bool) -> None:
            response = await router.acompletion(
                model="bench",
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
            try:
                await held(response, hold)
            finally:
                close = getattr(response, "aclose", None)
                if close is not None:
                    await close()

    else:
        from orchestrator_openai.emulator import TEST_API_KEY

        client = httpx.AsyncClient(transport=unlimited_transport(), timeout=60.0)
        closer = client
        payload = {"model": MODEL, "messages": messages, "stream": True}
        headers = {"Authorization": f"Bearer {TEST_API_KEY}"}

        async def one(hold: bool) -> None:
            url = f"{base_url}/v1/chat/completions"
            async with (
                client.stream("POST", url, json=payload, headers=headers) as response,
                aclosing(response.aiter_lines()) as lines,  # type: ignore[type-var]
            ):
                await held(lines, hold)

    await one(False)  # warm-up: imports, the pool, caches
    gc.collect()
    before = rss_mib()
    with anyio.fail_after(300):
        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one, True)
            await all_open.wait()
            gc.collect()
            now = rss_mib()
            release.set()
    if closer is not None:
        await closer.aclose()
    return {"before": before, "held": now}


def measure_memory(n: int, base_url: str, rounds: int) -> dict[str, list[dict[str, float]]]:
    kinds = ("raw", "router", "litellm")
    results: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    for r in range(rounds):
        for kind in kinds[r % 3 :] + kinds[: r % 3]:
            out = subprocess.run(
                [sys.executable, __file__, "--memory-side", kind, str(n), base_url],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results[kind].append(json.loads(out.strip().splitlines()[-1]))
    return results


# -- tables ----------------------------------------------------------------------------------


def latency_table(figures: dict[str, Figures], events: dict[str, int]) -> Table:
    table = Table(
        "Per call over loopback: latency and CPU (µs; median of rounds, min … max)",
        [LABELS[v] for v in VARIANTS],
        note=(
            "Added = the variant minus raw httpx, paired within each round; x raw = the "
            "variant / raw httpx. CPU is this process's (the server is another process)."
        ),
    )
    for key in KEYS:
        f = figures[key]
        label = SCENARIOS[key].label
        if SCENARIOS[key].stream:
            label += f" ({events[key]} chunks)"
        table.add(f"{label}: p50", *(f.p50[v].text() for v in VARIANTS))
        table.add(f"{label}: p50 added", "", *(f"**{f.added_p50[v].text()}**" for v in OVER))
        table.add(f"{label}: p99 added", "", *(f.added_p99[v].text() for v in OVER))
        table.add(f"{label}: p50 x raw", "", *(f.ratio_p50[v].text(2) for v in OVER))
        table.add(f"{label}: CPU per call", *(f.cpu[v].text() for v in VARIANTS))
        table.add(f"{label}: CPU added", "", *(f"**{f.added_cpu[v].text()}**" for v in OVER))
        table.add(f"{label}: CPU x raw", "", *(f.ratio_cpu[v].text(2) for v in OVER))
    return table


def chunk_table(cost: ChunkCost, events: dict[str, int]) -> Table:
    table = Table(
        "Streams: cost added over raw httpx per chunk and per stream (µs; median of "
        "rounds, min … max)",
        [LABELS[v] for v in OVER],
        note=(
            f"Per chunk: the slope of the added time between the short ({events['stream_short']}"
            f" chunks) and the long stream ({events['stream_1000']} chunks; as our provider "
            "yields them: LiteLLM yields two more per stream, the role and usage chunks); "
            "per stream: what the short stream adds beyond its chunks."
        ),
    )
    table.add("per chunk, p50 latency", *(f"**{cost.p50[v].text(2)}**" for v in OVER))
    table.add("per chunk, CPU", *(f"**{cost.cpu[v].text(2)}**" for v in OVER))
    table.add("per stream, CPU", *(cost.per_stream_cpu[v].text() for v in OVER))
    return table


def throughput_table(results: dict[int, Throughput]) -> Table:
    table = Table(
        "Plain calls at concurrency over loopback (median of rounds, min … max; x raw paired "
        "within each round)",
        [
            "raw httpx calls/s",
            *(f"{LABELS[v]} calls/s x raw" for v in OVER),
            "raw httpx CPU µs/call",
            *(f"{LABELS[v]} CPU x raw" for v in OVER),
        ],
    )
    for c, t in results.items():
        table.add(
            f"c = {c}",
            t.rate["raw"].text(0),
            *(t.rate_ratio[v].text(2) for v in OVER),
            t.cpu["raw"].text(0),
            *(t.cpu_ratio[v].text(2) for v in OVER),
        )
    return table


def import_table(results: dict[str, Spread]) -> Table:
    table = Table(
        "Import time (ms, inside a fresh interpreter; median of runs, min … max)", ["time"]
    )
    for v, code in IMPORTS.items():
        table.add(f"`{code}`", results[v].text())
    ratio = results["litellm"].median / results["router"].median
    table.add("LiteLLM / ours", f"{ratio:.1f}x")
    return table


def memory_table(n: int, results: dict[str, list[dict[str, float]]]) -> Table:
    def med(kind: str, key: str) -> float:
        values = sorted(r[key] for r in results[kind])
        return values[len(values) // 2]

    table = Table(
        f"Memory: {n:,} concurrent streams held open (RSS MiB, fresh process each; median of runs)",
        ["before the streams", "with all open", "added", "added x raw"],
    )
    raw_added = med("raw", "held") - med("raw", "before")
    for kind, label in (
        ("raw", "raw httpx (same sockets)"),
        ("router", "our Router (openai plugin)"),
        ("litellm", "LiteLLM Router"),
    ):
        added = med(kind, "held") - med(kind, "before")
        table.add(
            label,
            f"{med(kind, 'before'):.1f}",
            f"{med(kind, 'held'):.1f}",
            f"{added:.1f}",
            "" if kind == "raw" else f"{added / raw_added:.2f}x",
        )
    return table


def summary_table(
    figures: dict[str, Figures],
    cost: ChunkCost,
    throughput: dict[int, Throughput],
    imports: dict[str, Spread],
    memory: Table,
) -> Table:
    """The headline: what each router adds over raw httpx doing the same request."""
    call, long_ = figures["call"], figures["stream_1000"]
    table = Table(
        "Summary: each router against raw httpx doing the same request, same run (median of "
        "rounds, min … max)",
        ["our Router (openai plugin)", "LiteLLM Router"],
    )

    def row(what: str, spreads: dict[str, Spread], digits: int = 1) -> None:
        table.add(what, *(spreads[v].text(digits) for v in ("router", "litellm")))

    row("plain call: CPU added per call (µs)", call.added_cpu)
    row("plain call: CPU per call, x raw", call.ratio_cpu, 2)
    row("plain call: p50 latency added (µs)", call.added_p50)
    row("plain call: p99 latency added (µs)", call.added_p99)
    row("stream: CPU added per chunk (µs)", cost.cpu, 2)
    row("stream: p50 latency added per chunk (µs)", cost.p50, 2)
    row("1,000-chunk stream: CPU, x raw", long_.ratio_cpu, 2)
    for c, t in throughput.items():
        row(f"plain calls at concurrency {c}: calls/s, x raw", t.rate_ratio, 2)
    table.add(
        "import (ms; `import httpx` alone: " + imports["raw"].text(0) + ")",
        imports["router"].text(0),
        imports["litellm"].text(0),
    )
    memory_row = {row.what: row for row in memory.rows}
    table.add(
        "memory added by the open streams, x raw",
        memory_row["our Router (openai plugin)"].cells[-1],
        memory_row["LiteLLM Router"].cells[-1],
    )
    return table


# -- the run ---------------------------------------------------------------------------------


async def run_calls(base_url: str, plan: Plan) -> tuple[list[Table], Any]:
    subjects = await make_subjects(base_url)
    try:
        seen = {key: await subjects.chunks(key) for key in ("stream_short", "stream_1000")}
        events = {key: counts["ours"] for key, counts in seen.items()}
        print(f"  chunks per stream (our provider's, LiteLLM's): {seen}", file=sys.stderr)
        figures = await measure_latency(subjects, plan)
        cost = chunk_cost(figures, events)
        throughput = await measure_throughput(subjects, plan)
    finally:
        await subjects.aclose()
    return [latency_table(figures, events), chunk_table(cost, events)], (
        figures,
        cost,
        throughput,
    )


def versions() -> str:
    from importlib.metadata import version

    names = ("litellm", "openai", "httpx", "aiohttp", "orchestrator-openai")
    return ", ".join(f"{name} {version(name)}" for name in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full counts")
    parser.add_argument(
        "--write", action="store_true", help="rewrite the LiteLLM section of docs/performance.md"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory-side", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_forever()
        return
    if args.memory_side:
        kind, n, base_url = args.memory_side
        print(json.dumps(asyncio.run(_memory_side(kind, int(n), base_url))))
        return
    plan = FULL if args.full else SMOKE
    started = time.perf_counter()
    where = machine()
    with replay_server() as base_url:
        print("calls, streams, throughput ...", file=sys.stderr)
        tables, (figures, cost, throughput) = asyncio.run(run_calls(base_url, plan))
        print("memory ...", file=sys.stderr)
        held = measure_memory(plan.memory_streams, base_url, plan.memory_rounds)
    print("imports ...", file=sys.stderr)
    imports = measure_imports(plan.import_repeat)
    memory = memory_table(plan.memory_streams, held)
    tables = [
        summary_table(figures, cost, throughput, imports, memory),
        *tables,
        throughput_table(throughput),
        import_table(imports),
        memory,
    ]
    minutes = (time.perf_counter() - started) / 60
    command = "nox -s litellm -- --full --write" if plan is FULL else "nox -s litellm (smoke)"
    head = (
        f"Machine: {where}. Versions: {versions()}. Run: `{command}`, {plan.rounds} rounds, "
        f"{minutes:.1f} minutes."
    )
    text = "\n\n".join([head, *(t.markdown() for t in tables)])
    print(text)
    if args.write:
        doc = ROOT / "docs" / "performance.md"
        old = doc.read_text(encoding="utf-8")
        if START not in old or END not in old:
            sys.exit(f"{doc} has no {START} … {END} markers: add them where the figures go")
        before, _, rest = old.partition(START)
        _, _, after = rest.partition(END)
        doc.write_text(f"{before}{START}\n{text}\n{END}{after}", encoding="utf-8")
        print(f"wrote {doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
