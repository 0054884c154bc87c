"""Streaming parsers alone: cost per event against the size of each read from the socket.

A whole stream's bytes are fed to a parser in reads of 10 KB … 640 KB (what httpx hands over
when the network is faster than the reader). A linear-time line splitter costs the same per
event whatever the read size; one that re-copies its buffer per line grows with it.

Rows: GigaChat's SSE reader (``orchestrator_gigachat.sse.EventReader``), YandexGPT's NDJSON
line reader (``orchestrator_yandexgpt.provider._LineReader``: a private name, the only
internal this benchmark touches), and, as the reference, httpx's own
``Response.aiter_lines()`` over the same reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from _common import Spread, Table

READ_SIZES = (10_000, 40_000, 160_000, 640_000)


class Reads:
    """A plain async iterator over fixed reads (what ``response.aiter_raw()`` yields)."""

    def __init__(self, data: bytes, size: int) -> None:
        self._reads = [data[i : i + size] for i in range(0, len(data), size)]
        self._index = 0

    def __aiter__(self) -> Reads:
        return self

    async def __anext__(self) -> bytes:
        if self._index >= len(self._reads):
            raise StopAsyncIteration
        self._index += 1
        return self._reads[self._index - 1]


class _Stream(httpx.AsyncByteStream):
    def __init__(self, reads: Reads) -> None:
        self._reads = reads

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for read in self._reads:
            yield read


def sse_body(events: int) -> bytes:
    """GigaChat-shaped events (about 190 bytes each, Cyrillic text, ``data: [DONE]``)."""
    one = {
        "choices": [{"delta": {"content": "привет, мир"}, "index": 0}],
        "created": 1732000000,
        "model": "GigaChat-2:2.0.28.2",
        "object": "chat.completion",
    }
    line = f"data: {json.dumps(one, ensure_ascii=False, separators=(',', ':'))}\n\n"
    return (line * events + "data: [DONE]\n\n").encode()


def ndjson_body(events: int) -> bytes:
    one = {"result": {"alternatives": [{"message": {"role": "assistant", "text": "привет"}}]}}
    return (json.dumps(one, ensure_ascii=False) + "\n").encode() * events


async def _sse_reader(data: bytes, size: int) -> int:
    from orchestrator_gigachat.sse import EventReader

    reader = EventReader(Reads(data, size))
    count = 0
    while await reader.next_data() is not None:
        count += 1
    return count


async def _ndjson_reader(data: bytes, size: int) -> int:
    from orchestrator_yandexgpt.provider import _LineReader

    reader = _LineReader(Reads(data, size))
    count = 0
    while (line := await reader.next_line()) is not None:
        count += bool(line)
    return count


async def _httpx_lines(data: bytes, size: int) -> int:
    response = httpx.Response(200, stream=_Stream(Reads(data, size)))
    count = 0
    async for line in response.aiter_lines():
        count += bool(line)
    return count


PARSERS: dict[str, tuple[Any, bool]] = {
    "GigaChat SSE reader": (_sse_reader, True),
    "YandexGPT NDJSON reader": (_ndjson_reader, False),
    "httpx aiter_lines (reference, SSE body)": (_httpx_lines, True),
}


async def measure(total_bytes: int, rounds: int) -> dict[str, dict[int, Spread]]:
    """Per-event µs for each parser and read size; parsers and sizes interleaved per round."""
    bodies = {
        True: sse_body(total_bytes // len(sse_body(1))),
        False: ndjson_body(total_bytes // len(ndjson_body(1))),
    }
    results = {name: {size: Spread() for size in READ_SIZES} for name in PARSERS}
    for parse, sse in PARSERS.values():  # warm-up: imports, caches
        await parse(bodies[sse], READ_SIZES[0])
    for _ in range(rounds):
        for size in READ_SIZES:
            for name, (parse, sse) in PARSERS.items():
                body = bodies[sse]
                start = time.perf_counter()
                events = await parse(body, size)
                results[name][size].add((time.perf_counter() - start) * 1e6 / events)
    return results


def table(results: dict[str, dict[int, Spread]]) -> Table:
    out = Table(
        "Streaming parsers alone: µs per event by read size (median of rounds, min … max)",
        [f"{size // 1000} KB reads" for size in READ_SIZES] + ["640 KB / 10 KB"],
    )
    for name, by_size in results.items():
        ratio = by_size[READ_SIZES[-1]].median / by_size[READ_SIZES[0]].median
        flat = None if name.startswith("httpx") else ratio <= 1.5
        out.add(
            name,
            *(by_size[size].text(2) for size in READ_SIZES),
            f"{ratio:.2f}x",
            target="flat: ≤ 1.5x" if flat is not None else "",
            ok=flat,
        )
    return out
