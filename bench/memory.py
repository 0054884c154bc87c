"""Memory: N concurrent GigaChat streams held open over loopback, through the Router versus
raw httpx holding the same sockets, each side in a fresh process (RSS from /proc).

Each stream is opened and its first chunk (raw: first line) read, then held until all N are
open; the process's RSS is read at that moment (after ``gc.collect()``). Both sides use the
same transport settings: an ``httpx.AsyncHTTPTransport`` without a connection limit, given
to the provider through its public ``transport=`` argument, so both hold N sockets.

    python bench/memory.py raw|router N '<server json>'    # one side (used by the benchmark)
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import httpx
from _common import Table, raise_fd_limit, rss_mib


def _transport() -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)
    )


async def _side(kind: str, n: int, server: dict[str, Any]) -> dict[str, float]:
    """One side in this process; the raw side imports httpx and anyio only."""
    raise_fd_limit(n + 512)
    text = "hi"  # a short answer: the server has written it all and idles on the socket
    opened = 0
    all_open = anyio.Event()
    release = anyio.Event()
    if kind == "router":
        from vendors import VENDORS

        from orchestrator import Router
        from orchestrator.types import Message

        vendor = VENDORS[0]()  # GigaChat
        config = vendor.make_config(server[vendor.name], None, server[f"{vendor.name}_token"])
        provider = vendor.provider_class(config, transport=_transport())
        router = Router()
        router.add_provider(provider)
        messages = [Message("user", text)]

        async def one(hold: bool) -> None:
            nonlocal opened
            async with aclosing(router.chat_stream(messages)) as stream:
                await anext(stream)
                if hold:
                    opened += 1
                    if opened == n:
                        all_open.set()
                    await release.wait()

        closer: Any = router
    else:
        client = httpx.AsyncClient(transport=_transport(), timeout=30.0)
        url = f"{server['GigaChat']}/api/v1/chat/completions"
        payload = {
            "model": "GigaChat-2",
            "messages": [{"role": "user", "content": text}],
            "stream": True,
        }
        headers = {"Authorization": f"Bearer {server['GigaChat_token']}"}

        async def one(hold: bool) -> None:
            nonlocal opened
            async with client.stream("POST", url, json=payload, headers=headers) as response:
                lines = response.aiter_lines()
                async with aclosing(lines):  # type: ignore[type-var]
                    await anext(lines)
                    if hold:
                        opened += 1
                        if opened == n:
                            all_open.set()
                        await release.wait()

        closer = client

    await one(False)  # warm-up: imports, the pool, caches
    gc.collect()
    before = rss_mib()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one, True)
        await all_open.wait()
        gc.collect()
        held = rss_mib()
        release.set()
    await closer.aclose()
    return {"before": before, "held": held}


def side(kind: str, n: int, server: dict[str, Any]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), kind, str(n), json.dumps(server)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def measure(n: int, server: dict[str, Any], rounds: int) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {"raw": [], "router": []}
    for r in range(rounds):
        for kind in ("raw", "router") if r % 2 == 0 else ("router", "raw"):
            results[kind].append(side(kind, n, server))
    return results


def table(n: int, results: dict[str, list[dict[str, float]]]) -> Table:
    def med(kind: str, key: str) -> float:
        values = sorted(r[key] for r in results[kind])
        return values[len(values) // 2]

    out = Table(
        f"Memory: {n:,} concurrent streams held open over loopback (RSS, MiB; median of runs)",
        ["before the streams", "with all streams open", "added"],
    )
    for kind, label in (("raw", "raw httpx (same sockets)"), ("router", "Router over GigaChat")):
        out.add(
            label,
            f"{med(kind, 'before'):.1f}",
            f"{med(kind, 'held'):.1f}",
            f"{med(kind, 'held') - med(kind, 'before'):.1f}",
        )
    ratio = med("router", "held") / med("raw", "held")
    added = (med("router", "held") - med("router", "before")) / (
        med("raw", "held") - med("raw", "before")
    )
    out.add("Router / raw", "", f"{ratio:.2f}x", f"{added:.2f}x", target="≤ 1.2x", ok=ratio <= 1.2)
    return out


if __name__ == "__main__":
    kind, count, info = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    print(json.dumps(asyncio.run(_side(kind, count, info))))
