"""The NDJSON line reader: however the body is cut into reads, the same lines come out."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator_yandexgpt.provider import _LineReader

# Lines of any text but LF (a multi-byte character may be cut between two reads).
line = st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\n"), max_size=16)


class _Reads:
    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    def __aiter__(self) -> _Reads:
        return self

    async def __anext__(self) -> bytes:
        if not self._pieces:
            raise StopAsyncIteration
        return self._pieces.pop(0)


async def _all(pieces: list[bytes]) -> list[str]:
    reader = _LineReader(_Reads(pieces))
    found = []
    while (text := await reader.next_line()) is not None:
        found.append(text)
    return found


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@given(
    lines=st.lists(line, max_size=8),
    final_newline=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_split_into_reads_gives_the_same_lines(
    backend: str, lines: list[str], final_newline: bool, cuts: list[int]
) -> None:
    body = "\n".join(lines).encode() + (b"\n" if final_newline and lines else b"")
    points = sorted({c % (len(body) + 1) for c in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    # Empty lines come out as "" (the provider skips them); a last line without its
    # newline still comes out; an empty body has no lines.
    expected = lines if body else []
    if lines and not final_newline and lines[-1] == "":
        expected = lines[:-1]
    assert anyio.run(_all, pieces, backend=backend) == expected
    assert anyio.run(_all, [body[i : i + 1] for i in range(len(body))], backend=backend) == (
        expected
    )
