"""Server-sent events from an ``httpx`` response, in linear time, without nested generators.

Lines are split on CR, LF and CRLF only, as the SSE specification says. (httpx's
``aiter_lines`` splits like ``str.splitlines`` — also on U+2028, U+2029 and U+0085, which a
server may send raw inside a JSON string — and httpx-sse's public reader nests async
generators that an abandoned stream leaves to the garbage collector, which trio reports.)

The reader is a plain object pulling from ``response.aiter_bytes()``; pieces of a line are
kept in a list and joined once, so a long line arriving in many small reads costs linear
time. :func:`finish` runs httpx's generator chain to its end once the response is closed.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator

import anyio

__all__ = ["EventReader", "LineSplitter", "finish"]


class LineSplitter:
    """Incremental CR/LF/CRLF line splitting of decoded text (linear in the input)."""

    __slots__ = ("_cr", "_pending")

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._cr = False  # the last piece ended in CR: a following LF belongs to it

    def feed(self, text: str) -> list[str]:
        """The lines completed by ``text`` (without their line ends)."""
        if not text:
            return []
        if self._cr and text[0] == "\n":
            text = text[1:]
        self._cr = text.endswith("\r")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        parts = text.split("\n")
        if len(parts) == 1:
            if parts[0]:
                self._pending.append(parts[0])
            return []
        if self._pending:
            self._pending.append(parts[0])
            parts[0] = "".join(self._pending)
            self._pending = []
        tail = parts.pop()
        if tail:
            self._pending.append(tail)
        return parts

    def flush(self) -> list[str]:
        """The last line if the text did not end with a line end."""
        if not self._pending:
            return []
        line = "".join(self._pending)
        self._pending = []
        return [line]


class EventReader:
    """The ``data`` of each event of an SSE stream (``data:`` lines up to a blank line);
    comments (``:``) and other fields (``event``, ``id``, ``retry``) are skipped."""

    __slots__ = ("_decoder", "_done", "_lines", "_raw", "_splitter")

    def __init__(self, raw: AsyncIterator[bytes]) -> None:
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._splitter = LineSplitter()
        self._lines: list[str] = []
        self._done = False

    async def next_line(self) -> str | None:
        """The next line, or None at the end of the body."""
        while not self._lines:
            if self._done:
                return None
            try:
                chunk = await anext(self._raw)
            except StopAsyncIteration:
                self._done = True
                tail = self._decoder.decode(b"", final=True)
                self._lines = [*self._splitter.feed(tail), *self._splitter.flush()]
            else:
                self._lines = self._splitter.feed(self._decoder.decode(chunk))
            self._lines.reverse()
        return self._lines.pop()

    async def next_data(self) -> str | None:
        """The next event's data, or None at the end of the stream."""
        data: list[str] = []
        while True:
            line = await self.next_line()
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
