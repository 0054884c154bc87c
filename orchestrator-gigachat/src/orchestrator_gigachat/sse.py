"""Server-sent events from an ``httpx`` byte stream, without nested async generators.

httpx reads a body through a chain of async generators; one left half-consumed is
garbage-collected unclosed, which trio reports as a ``ResourceWarning``
(encode/httpx#3686). So the SSE layer here is a plain object pulling from
``response.aiter_raw()``, and :func:`finish` runs that chain to its end once the response
is closed. (httpx-sse would add two more generator levels: ``aiter_text`` and its own.)
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator

import anyio

__all__ = ["EventReader", "finish"]


class EventReader:
    """The ``data`` of each event of an SSE stream (lines ``data: ...`` up to a blank
    line); comment lines (``:``) and other fields (``event``, ``id``, ``retry``) are
    skipped, as the SSE specification says."""

    __slots__ = ("_buffer", "_decoder", "_done", "_raw")

    def __init__(self, raw: AsyncIterator[bytes]) -> None:
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = ""
        self._done = False

    async def _line(self) -> str | None:
        while "\n" not in self._buffer:
            if self._done:
                if not self._buffer:
                    return None
                line, self._buffer = self._buffer, ""
                return line
            try:
                self._buffer += self._decoder.decode(await anext(self._raw))
            except StopAsyncIteration:
                self._buffer += self._decoder.decode(b"", final=True)
                self._done = True
        line, _, self._buffer = self._buffer.partition("\n")
        return line.removesuffix("\r")

    async def next_data(self) -> str | None:
        """The next event's data, or None at the end of the stream."""
        data: list[str] = []
        while True:
            line = await self._line()
            if line is None:
                return "\n".join(data) if data else None
            if not line:
                if data:
                    return "\n".join(data)
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value.removeprefix(" "))


async def finish(raw: AsyncIterator[bytes]) -> None:
    """Run httpx's generator chain to its end after the response was closed."""
    with anyio.move_on_after(1.0):
        try:
            while True:
                await anext(raw)
        except Exception:  # noqa: S110 - a closed stream ends the chain with an error: wanted
            pass
