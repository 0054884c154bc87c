"""The aiohttp transport against httpx's, over loopback: calls/s and CPU per call.

    python bench/aiohttp_transport.py            # smoke run (small counts)
    python bench/aiohttp_transport.py --full     # the counts of `nox -s bench -- --full`

Five clients make the same POST + JSON decode against a minimal keep-alive HTTP/1.1 server
in another process: raw ``httpx.AsyncClient``, raw ``aiohttp.ClientSession``, a provider
(``BaseProvider.http_client()``) with ``http_transport="httpx"`` and ``"aiohttp"``, and
``Router.chat()`` over the aiohttp one (the whole stack). Runs of every client alternate
(rotating order) in each round, at concurrency 1, 16 and 64; CPU per call is this
process's CPU time (the server's is not counted); ratios are paired within a round. Needs
``orchestrator-core[aiohttp]``. ``bench/overhead.py`` runs it too (its table and target
rows). Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from _common import Row, Spread, Table

from orchestrator.providers import BaseProvider, GenerationParams, ProviderConfig

LEVELS = (1, 16, 64)
#: The level the target is judged at (issue 13: within 1.3x of raw aiohttp at c = 64).
TARGET_LEVEL = 64
TARGET = 1.3
RAW, STACK = "raw aiohttp", "Router, aiohttp transport"
VARIANTS = (
    "raw httpx",
    "provider, httpx transport",
    "provider, aiohttp transport",
    STACK,
    RAW,
)

BODY = b'{"text":"ok"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            writer.write(RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def serve_forever() -> None:
    """The server, in its own process so it does not share the clients' CPU time."""

    async def main() -> None:
        server = await asyncio.start_server(_handle, "127.0.0.1", 0, backlog=1024)
        print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
        server.close()

    asyncio.run(main())


@contextmanager
def serving() -> Iterator[str]:
    """Start the server process; yields its base URL; stops it on exit."""
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


class Provider(BaseProvider):
    """One POST per call on the provider's pooled per-loop client."""

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        response = await self.http_client().post(f"{self.config.base_url}/chat", json={"m": 1})
        return str(response.json()["text"])

    async def health_check(self) -> bool:
        return True


async def _run(call: Callable[[], Awaitable[Any]], n: int, c: int) -> tuple[float, float]:
    """(calls per second, CPU microseconds per call) for ``n`` calls by ``c`` workers."""
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(c)))  # noqa: TID251 - asyncio-only bench
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, cpu / n * 1e6


#: concurrency -> variant -> one (calls/s, CPU µs per call) per round
Results = dict[int, dict[str, list[tuple[float, float]]]]


async def _measure(base_url: str, n: int, rounds: int) -> Results:
    import aiohttp

    from orchestrator import Router
    from orchestrator.types import Message

    limits = httpx.Limits(max_connections=100)
    raw_httpx = httpx.AsyncClient(limits=limits)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
    over_httpx = Provider(ProviderConfig(name="p", base_url=base_url, http_transport="httpx"))
    over_aiohttp = Provider(ProviderConfig(name="a", base_url=base_url, http_transport="aiohttp"))
    router = Router()
    router.add_provider(over_aiohttp)
    messages = [Message("user", "x")]
    url = f"{base_url}/chat"

    async def httpx_call() -> Any:
        return (await raw_httpx.post(url, json={"m": 1})).json()

    async def aiohttp_call() -> Any:
        async with session.post(url, json={"m": 1}) as response:
            return await response.json()

    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "raw httpx": httpx_call,
        "provider, httpx transport": lambda: over_httpx.generate("x"),
        "provider, aiohttp transport": lambda: over_aiohttp.generate("x"),
        STACK: lambda: router.chat(messages),
        RAW: aiohttp_call,
    }
    results: Results = {}
    try:
        for c in LEVELS:
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
            for call in calls.values():  # warm up: connections, code paths
                await _run(call, max(c * 4, 50), c)
            for r in range(rounds):
                names = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
                for name in names:
                    samples[name].append(await _run(calls[name], n, c))
            results[c] = samples
    finally:
        await raw_httpx.aclose()
        await session.close()
        await over_httpx.aclose()
        await over_aiohttp.aclose()
    return results


async def measure(n: int, rounds: int) -> Results:
    """Every variant at every level against a server process of its own (asyncio only)."""
    with serving() as base_url:
        return await _measure(base_url, n, rounds)


def _ratios(rows: dict[str, list[tuple[float, float]]], name: str) -> tuple[Spread, Spread]:
    """Paired within each round: raw aiohttp's calls/s over ``name``'s (how many times
    slower), and ``name``'s CPU per call over raw aiohttp's."""
    slower, cpu = Spread(), Spread()
    for (rate, used), (raw_rate, raw_used) in zip(rows[name], rows[RAW], strict=True):
        slower.add(raw_rate / rate)
        cpu.add(used / raw_used)
    return slower, cpu


def table(results: Results) -> Table:
    out = Table(
        "Over the aiohttp transport: plain calls at concurrency, loopback "
        "(median of rounds, min … max)",
        ["calls/s", "CPU µs per call", "raw aiohttp's calls/s ÷ this", "CPU ÷ raw aiohttp's"],
        note=(
            "`bench/aiohttp_transport.py`: the same POST + JSON decode against a minimal "
            "keep-alive HTTP/1.1 server in another process (not the emulators), by `c` tasks; "
            "runs of each client alternate within a round. Provider: a minimal `BaseProvider` "
            "making one POST on `http_client()`, with `http_transport` set to each transport; "
            "Router: `Router.chat()` over the aiohttp one. CPU is this process's (the "
            "server's is not counted). Ratios are paired within each round."
        ),
    )
    for c, rows in results.items():
        for name in VARIANTS:
            rate, cpu = Spread(), Spread()
            for r, u in rows[name]:
                rate.add(r)
                cpu.add(u)
            slower, over = ("", "") if name == RAW else (t.text(2) for t in _ratios(rows, name))
            out.add(f"c = {c}, {name}", rate.text(0), cpu.text(0), slower, over)
    return out


def target_rows(results: Results | None, reason: str = "") -> list[Row]:
    """The target rows of issue 13: the stack within 1.3x of raw aiohttp at c = 64."""
    what = f"Stack over the aiohttp transport at c = {TARGET_LEVEL} vs raw aiohttp"
    target = f"≤ {TARGET}x"
    rows = Table("", [])
    if results is None or TARGET_LEVEL not in results:
        rows.add(what, f"not in this run: {reason}", target=f"{target} calls/s and CPU")
        return rows.rows
    slower, cpu = _ratios(results[TARGET_LEVEL], STACK)
    rows.add(
        f"{what}: raw aiohttp's calls/s ÷ the Router's",
        slower.text(2, unit="x"),
        target=target,
        ok=slower.median <= TARGET,
    )
    rows.add(
        f"{what}: the Router's CPU per call ÷ raw aiohttp's",
        cpu.text(2, unit="x"),
        target=target,
        ok=cpu.median <= TARGET,
    )
    return rows.rows


#: (calls per run, rounds) of the smoke and the full run
SMOKE, FULL = (200, 1), (3000, 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full counts")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_forever()
        return
    results = asyncio.run(measure(*(FULL if args.full else SMOKE)))
    print(table(results).markdown())
    targets = Table("Target", ["measured"])
    targets.rows += target_rows(results)
    print()
    print(targets.markdown())


if __name__ == "__main__":
    main()
