"""The SSE reader: however the body is cut into reads, the same events come out."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator_gigachat.sse import EventReader

# Data lines: any text without a line break (CR or LF), including U+2028, NEL and friends,
# which SSE does not treat as line ends (str.splitlines would).
line = st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\r\n"), max_size=12)
event = st.lists(line, min_size=1, max_size=3)


class _Reads:
    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    def __aiter__(self) -> _Reads:
        return self

    async def __anext__(self) -> bytes:
        if not self._pieces:
            raise StopAsyncIteration
        return self._pieces.pop(0)


def _body(events: list[list[str]], crlf: bool, extras: bool, final_blank: bool) -> bytes:
    end = "\r\n" if crlf else "\n"
    out = []
    for index, data in enumerate(events):
        if extras:
            out.append(f": keep-alive {index}{end}event: message{end}id: {index}{end}")
        out.extend(f"data: {d}{end}" if index % 2 else f"data:{d}{end}" for d in data)
        if index < len(events) - 1 or final_blank:
            out.append(end)
    return "".join(out).encode()


def _cut(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True) if b > a]


async def _all(pieces: list[bytes]) -> list[str]:
    reader = EventReader(_Reads(pieces))
    found = []
    while (data := await reader.next_data()) is not None:
        found.append(data)
    return found


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@given(
    events=st.lists(event, max_size=6),
    crlf=st.booleans(),
    extras=st.booleans(),
    final_blank=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_split_into_reads_gives_the_same_events(
    backend: str,
    events: list[list[str]],
    crlf: bool,
    extras: bool,
    final_blank: bool,
    cuts: list[int],
) -> None:
    body = _body(events, crlf, extras, final_blank)
    # A data line that starts with a space keeps it after "data:" (only one is removed).
    expected = [
        "\n".join(d if i % 2 or not d.startswith(" ") else d[1:] for d in data)
        for i, data in enumerate(events)
    ]
    whole = anyio.run(_all, [body], backend=backend)
    split = anyio.run(_all, _cut(body, cuts), backend=backend)
    bytewise = anyio.run(_all, [body[i : i + 1] for i in range(len(body))], backend=backend)
    assert whole == split == bytewise == expected


@pytest.mark.anyio
async def test_a_line_cut_at_the_end_of_the_body_is_its_last_line() -> None:
    assert await _all([b"data: a\r\n\r\ndata: b", b"c\r"]) == ["a", "bc"]
    assert await _all([b": only a comment"]) == []
    assert await _all([b"\n\n\r\n", b""]) == []
