"""NDJSON lines from an ``httpx`` response, in linear time, without nested generators.

Ollama streams one JSON object per ``\\n``-terminated line. The reader is a plain object
pulling from ``response.aiter_bytes()``: pieces of a line are kept in a list and joined
once, so a long line arriving in many small reads costs linear time, and only ``\\n`` ends a
line (httpx's ``aiter_lines`` also splits on U+0085, which Go's JSON encoder sends raw).
:func:`orchestrator.sse.release` runs httpx's generator chain to its end once the response
is closed, so an abandoned stream leaves no generator to the garbage collector (trio would
report it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

__all__ = ["LineReader"]


class LineReader:
    """The non-blank lines of a byte stream, ``\\n``-separated (a trailing ``\\r`` dropped)."""

    __slots__ = ("_done", "_lines", "_pending", "_raw")

    def __init__(self, raw: AsyncIterator[bytes]) -> None:
        self._raw = raw
        self._pending: list[bytes] = []
        self._lines: list[bytes] = []
        self._done = False

    def _feed(self, data: bytes) -> None:
        parts = data.split(b"\n")
        if len(parts) > 1:
            if self._pending:
                self._pending.append(parts[0])
                parts[0] = b"".join(self._pending)
                self._pending = []
            tail = parts.pop()
            self._lines.extend(parts)
            parts = [tail]
        if parts[0]:
            self._pending.append(parts[0])

    async def next_line(self) -> str | None:
        """The next non-blank line (decoded as UTF-8), or None at the end of the body."""
        while True:
            while not self._lines:
                if self._done:
                    return None
                try:
                    data = await anext(self._raw)
                except StopAsyncIteration:
                    self._done = True
                    if self._pending:
                        self._lines.append(b"".join(self._pending))
                        self._pending = []
                else:
                    self._feed(data)
                self._lines.reverse()
            line = self._lines.pop().removesuffix(b"\r")
            if line.strip():
                return line.decode("utf-8", "replace")
