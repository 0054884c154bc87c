"""Memory: N concurrent GigaChat streams held open over loopback, through the Router versus
raw httpx holding the same sockets, each side in a fresh process (RSS from /proc).

Each stream is opened and its first chunk (raw: first line) read, then held until all N are
open; the process's RSS is read at that moment (after ``gc.collect()``). Both sides use the
same transport settings: an ``httpx.AsyncHTTPTransport`` without a connection limit, given
to the provider through its public ``transport=`` argument, so both hold N sockets; and
they make the same request: the provider's own (URL, headers, JSON body) is recorded once
and raw httpx sends exactly it, as in the rest of the benchmark.

The Router side imports what a user's program does (``orchestrator`` and
``orchestrator_gigachat``), not the emulator or the benchmark's other modules; the raw side
imports httpx and anyio only.

    python bench/memory.py [--streams N] [--rounds R]   # start the emulators, print the table
    python bench/memory.py --side raw|router N '<json>' # one side (used by the benchmark)
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

TEXT = "hi"  # a short answer: the server has written it all and idles on the socket


def _transport() -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)
    )


def _gigachat(base_url: str, token: str, transport: httpx.AsyncBaseTransport) -> Any:
    """The GigaChat provider as a user builds it (what the emulator's ``config_for`` gives,
    without importing the emulator and its web framework): a pre-issued access token, every
    ``GIGACHAT_*`` setting pinned so the environment cannot leak in."""
    from orchestrator_gigachat import ENV_VARS, GigaChatConfig, GigaChatProvider

    values: dict[str, Any] = dict.fromkeys(ENV_VARS)
    values.update(
        name="gigachat",
        base_url=f"{base_url}/api/v1",
        auth_url=f"{base_url}/api/v2/oauth",
        scope="GIGACHAT_API_PERS",
        model="GigaChat-2",
        verify_ssl=True,
        timeout=30.0,
        access_token=token,
    )
    return GigaChatProvider(GigaChatConfig(**values), transport=transport)


async def record(server: dict[str, Any]) -> dict[str, Any]:
    """The provider's stream request (URL, headers, JSON body), for raw httpx to repeat."""
    from vendors import Recorder

    from orchestrator.types import Message

    recorder = Recorder(httpx.AsyncHTTPTransport())
    provider = _gigachat(server["GigaChat"], server["GigaChat_token"], recorder)
    async with aclosing(provider.stream([Message("user", TEXT)])) as stream:
        async for _ in stream:
            pass
    await provider.aclose()
    last = recorder.last
    assert last is not None
    assert last.status == 200, last
    return {"url": last.url, "headers": last.headers, "payload": last.payload}


async def _side(kind: str, n: int, info: dict[str, Any]) -> dict[str, float]:
    """One side in this process."""
    raise_fd_limit(n + 512)
    opened = 0
    all_open = anyio.Event()
    release = anyio.Event()
    if kind == "router":
        from orchestrator import Router
        from orchestrator.types import Message

        provider = _gigachat(info["GigaChat"], info["GigaChat_token"], _transport())
        router = Router()
        router.add_provider(provider)
        messages = [Message("user", TEXT)]

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
        request = info["request"]
        url, payload, headers = request["url"], request["payload"], request["headers"]

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


def side(kind: str, n: int, info: dict[str, Any]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--side", kind, str(n), json.dumps(info)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


async def measure(n: int, server: dict[str, Any], rounds: int) -> dict[str, list[dict[str, float]]]:
    """Each side ``rounds`` times, alternating which goes first, each in a fresh process."""
    info = {**server, "request": await record(server)}
    results: dict[str, list[dict[str, float]]] = {"raw": [], "router": []}
    for r in range(rounds):
        for kind in ("raw", "router") if r % 2 == 0 else ("router", "raw"):
            results[kind].append(side(kind, n, info))
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


def main() -> None:
    if sys.argv[1:2] == ["--side"]:  # one side: nothing imported beyond what it measures
        kind, count, info = sys.argv[2:5]
        print(json.dumps(asyncio.run(_side(kind, int(count), json.loads(info)))))
        return
    import argparse

    from server import emulators

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000, help="streams held open at once")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side (alternating)")
    args = parser.parse_args()

    with emulators() as server:
        results = asyncio.run(measure(args.streams, server, args.rounds))
    print(table(args.streams, results).markdown())


if __name__ == "__main__":
    main()
