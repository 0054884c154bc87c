"""Invariants, with hypothesis: the SSE writer never loses or reorders text and numbers tool
calls 0, 1, 2...; the per-key limiter never lets more than its limit through in any minute."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import Chunk, ToolCall, Usage
from orchestrator_gateway import KeySettings, LocalKeyState
from orchestrator_gateway.errors import GatewayError
from orchestrator_gateway.keys import WINDOW, Client
from orchestrator_gateway.wire import ChunkWriter

texts = st.lists(st.text(max_size=8), max_size=12)
calls = st.lists(st.lists(st.sampled_from(["f", "g", "h"]), max_size=3), max_size=4)


@given(texts, calls, st.booleans())
def test_chunk_writer_keeps_every_piece_in_order(
    pieces: list[str], call_groups: list[list[str]], include_usage: bool
) -> None:
    writer = ChunkWriter("m", include_usage)
    chunks = [Chunk(piece, "p", "m") for piece in pieces]
    n = 0
    for group in call_groups:
        batch = []
        for name in group:
            batch.append(ToolCall(f"c{n}", name, {"n": n}))
            n += 1
        chunks.append(Chunk("", "p", "m", tool_calls=tuple(batch)))
    chunks.append(Chunk("", "p", "m", "stop", Usage(1, 2, 3)))
    events: list[dict[str, Any]] = [e for chunk in chunks for e in writer.chunk(chunk)]
    deltas = [e["choices"][0]["delta"] for e in events]
    assert "".join(d.get("content") or "" for d in deltas) == "".join(pieces)
    entries = [t for d in deltas for t in d.get("tool_calls", [])]
    assert [t["index"] for t in entries] == list(range(n))
    assert [t["id"] for t in entries] == [f"c{i}" for i in range(n)]
    assert deltas[0]["role"] == "assistant"
    assert sum("role" in d for d in deltas) == 1
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert len({e["id"] for e in events}) == 1
    final = writer.usage_event()
    if include_usage:
        assert final is not None and final["usage"]["total_tokens"] == 3
        assert all(e["usage"] is None for e in events)
    else:
        assert final is None and all("usage" not in e for e in events)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 5),
    st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=60),
)
def test_no_minute_admits_more_than_the_limit(limit: int, gaps: list[float]) -> None:
    clock = [0.0]
    state = LocalKeyState(clock=lambda: clock[0])
    client = Client("k", KeySettings(key_sha256="f" * 64, requests_per_minute=limit))
    admitted: list[float] = []

    async def run() -> None:
        for gap in gaps:
            clock[0] += gap
            try:
                await state.admit(client)
            except GatewayError as exc:
                assert exc.status == 429
                recent = [t for t in admitted if t > clock[0] - WINDOW]
                assert len(recent) == limit  # refused only when the minute is full...
                # ...and told to wait until its oldest request leaves the window.
                assert exc.retry_after == pytest.approx(recent[0] + WINDOW - clock[0])
                continue
            admitted.append(clock[0])

    anyio.run(run)
    for i, start in enumerate(admitted):
        in_window = [t for t in admitted[i:] if t < start + WINDOW]
        assert len(in_window) <= limit
