"""Server-sent events from an ``httpx`` byte stream, without nested async generators.

httpx reads a body through a chain of async generators; one left half-consumed is
garbage-collected unclosed, which trio reports as a ``ResourceWarning``
(encode/httpx#3686). So the SSE layer here is a plain object pulling from
``response.aiter_raw()``, and :func:`orchestrator.sse.release` runs that chain to its end
once the response is closed. (httpx-sse would add two more generator levels: ``aiter_text``
and its own.)
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator

__all__ = ["EventReader"]


class EventReader:
    """The ``data`` of each event of an SSE stream (lines ``data: ...`` up to a blank
    line); comment lines (``:``) and other fields (``event``, ``id``, ``retry``) are
    skipped, as the SSE specification says. Lines end with LF or CRLF; the end of the
    body dispatches a pending event.

    Linear in the body: each read is decoded and split once (``str.split``, in C) and only
    a line cut by the end of a read is kept back, as pieces joined when its end arrives,
    so a large read is never re-copied line by line.
    """

    __slots__ = ("_decoder", "_done", "_lines", "_partial", "_raw")

    def __init__(self, raw: AsyncIterator[bytes]) -> None:
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        # Complete lines not yet consumed, last first (``pop()`` takes the next): a list,
        # not a deque, whose first block alone is 600 bytes in every open stream.
        self._lines: list[str] = []
        self._partial: list[str] = []  # the start of a line whose end is not here yet
        self._done = False

    async def _fill(self) -> bool:
        """Read until a complete line is queued; False once the body has ended."""
        lines, partial = self._lines, self._partial
        while not lines:
            if self._done:
                return False
            try:
                text = self._decoder.decode(await anext(self._raw))
            except StopAsyncIteration:
                self._done = True
                text = self._decoder.decode(b"", final=True)
                if text:
                    partial.append(text)
                if partial:  # the body ended without a newline: its last line
                    lines.append("".join(partial))  # the only line: order is moot
                    partial.clear()
                continue
            if "\n" not in text:
                if text:
                    partial.append(text)
                continue
            parts = text.split("\n")
            if partial:
                partial.append(parts[0])
                parts[0] = "".join(partial)
                partial.clear()
            rest = parts.pop()
            if rest:
                partial.append(rest)
            parts.reverse()
            lines.extend(parts)  # onto an empty list: the loop runs only while it is
        return True

    async def next_data(self) -> str | None:
        """The next event's data, or None at the end of the stream."""
        data: list[str] = []
        lines = self._lines
        while True:
            if not lines and not await self._fill():
                return "\n".join(data) if data else None
            line = lines.pop()
            if line.endswith("\r"):
                line = line[:-1]
            if not line:
                if data:
                    return "\n".join(data)
                continue
            if line[0] == ":":
                continue
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value[1:] if value[:1] == " " else value)
