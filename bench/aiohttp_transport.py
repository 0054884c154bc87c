"""The aiohttp transport against httpx's, over loopback: calls/s and CPU per call.

    python bench/aiohttp_transport.py            # smoke run (small counts)
    python bench/aiohttp_transport.py --full     # the figures quoted in docs/performance.md

Four clients make the same POST + JSON decode against a minimal keep-alive HTTP/1.1 server
in another process: raw ``httpx.AsyncClient``, raw ``aiohttp.ClientSession``, and a provider
(``BaseProvider.http_client()``) with ``http_transport="httpx"`` and ``"aiohttp"``. Each
row is the median of interleaved rounds at concurrency 1, 16 and 64; CPU per call is this
process's CPU time (the server's is not counted). Needs ``orchestrator-core[aiohttp]``.
Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from orchestrator.providers import BaseProvider, GenerationParams, ProviderConfig

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


class Provider(BaseProvider):
    """One POST per call on the provider's pooled per-loop client."""

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        response = await self.http_client().post(f"{self.config.base_url}/chat", json={"m": 1})
        return str(response.json()["text"])

    async def health_check(self) -> bool:
        return True


async def measure(call: Callable[[], Awaitable[Any]], n: int, c: int) -> tuple[float, float]:
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


async def run(base_url: str, n: int, rounds: int) -> dict[int, dict[str, tuple[float, float]]]:
    import aiohttp

    limits = httpx.Limits(max_connections=100)
    raw_httpx = httpx.AsyncClient(limits=limits)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
    over_httpx = Provider(ProviderConfig(name="p", base_url=base_url, http_transport="httpx"))
    over_aiohttp = Provider(ProviderConfig(name="a", base_url=base_url, http_transport="aiohttp"))
    url = f"{base_url}/chat"

    async def httpx_call() -> Any:
        return (await raw_httpx.post(url, json={"m": 1})).json()

    async def aiohttp_call() -> Any:
        async with session.post(url, json={"m": 1}) as response:
            return await response.json()

    variants: dict[str, Callable[[], Awaitable[Any]]] = {
        "raw httpx": httpx_call,
        "raw aiohttp": aiohttp_call,
        "provider, httpx transport": lambda: over_httpx.generate("x"),
        "provider, aiohttp transport": lambda: over_aiohttp.generate("x"),
    }
    results: dict[int, dict[str, tuple[float, float]]] = {}
    try:
        for c in (1, 16, 64):
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
            for call in variants.values():  # warm up: connections, code paths
                await measure(call, max(c * 4, 50), c)
            for _ in range(rounds):
                for name, call in variants.items():
                    samples[name].append(await measure(call, n, c))
            results[c] = {
                name: (
                    statistics.median(s[0] for s in rows),
                    statistics.median(s[1] for s in rows),
                )
                for name, rows in samples.items()
            }
    finally:
        await raw_httpx.aclose()
        await session.close()
        await over_httpx.aclose()
        await over_aiohttp.aclose()
    return results


def render(results: dict[int, dict[str, tuple[float, float]]]) -> str:
    lines = ["| concurrency | client | calls/s | CPU µs/call |", "|---|---|---|---|"]
    for c, rows in results.items():
        for name, (rate, cpu) in rows.items():
            lines.append(f"| {c} | {name} | {rate:.0f} | {cpu:.0f} |")
        aio_rate, aio_cpu = rows["raw aiohttp"]
        ours_rate, ours_cpu = rows["provider, aiohttp transport"]
        lines.append(
            f"| {c} | provider over aiohttp / raw aiohttp | {ours_rate / aio_rate:.2f} of the "
            f"rate | {ours_cpu / aio_cpu:.2f} of the CPU |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full counts")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_forever()
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        n, rounds = (3000, 5) if args.full else (200, 1)
        print(render(asyncio.run(run(base_url, n, rounds))))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
