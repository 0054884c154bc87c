"""Property: however a server splits tool-call arguments into streamed deltas (any cut points,
several fragments per chunk, two calls interleaved), the provider's stream gives the caller
the same whole calls - on the last chunk only - as the unsplit answer."""

from __future__ import annotations

import itertools
import json
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.types import Chunk, Message, ToolCall
from orchestrator_openai import OpenAIConfig, OpenAIProvider

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
ARGUMENTS = st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4)


@st.composite
def split(draw: st.DrawFn, text: str) -> list[str]:
    """``text`` cut at arbitrary points (empty pieces allowed: servers send them)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[ToolCall], list[list[dict[str, Any]]]]:
    """Whole calls, and the chunks' ``delta.tool_calls`` lists that carry them."""
    count = draw(st.integers(1, 2))
    calls = [ToolCall(f"call_{i}", f"tool_{i}", draw(ARGUMENTS)) for i in range(count)]
    queues: list[list[dict[str, Any]]] = []
    for index, call in enumerate(calls):
        text = json.dumps(call.arguments, ensure_ascii=draw(st.booleans()))
        pieces = draw(split(text))
        head: dict[str, Any] = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name},
        }
        if draw(st.booleans()):  # the first fragment rides with the name
            head["function"]["arguments"] = pieces.pop(0) if pieces else ""
        queue = [head] + [{"index": index, "function": {"arguments": p}} for p in pieces]
        queues.append(queue)
    # Interleave the calls' fragments (each call's own order kept), then group into chunks.
    order = draw(st.permutations([i for i, q in enumerate(queues) for _ in q]))
    fragments = [queues[i].pop(0) for i in order]
    chunks: list[list[dict[str, Any]]] = []
    while fragments:
        size = draw(st.integers(1, 3))
        chunks.append(fragments[:size])
        fragments = fragments[size:]
    return calls, chunks


def sse(chunks: list[list[dict[str, Any]]]) -> bytes:
    def event(delta: dict[str, Any], finish: str | None = None) -> str:
        body = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n"

    lines = [event({"role": "assistant", "content": None})]
    lines += [event({"tool_calls": deltas}) for deltas in chunks]
    lines += [event({}, "tool_calls"), "data: [DONE]\n\n"]
    return "".join(lines).encode()


async def reassemble(body: bytes) -> list[Chunk]:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    config = OpenAIConfig(api_key="sk-test", base_url="http://server.test/v1", max_retries=0)
    provider = OpenAIProvider(config, transport=httpx.MockTransport(answer))
    try:
        return [chunk async for chunk in provider.stream([Message("user", "go")])]
    finally:
        await provider.aclose()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams())
def test_any_split_of_the_arguments_reassembles_to_the_same_calls(
    backend: str, stream: tuple[list[ToolCall], list[list[dict[str, Any]]]]
) -> None:
    calls, chunks = stream
    received = anyio.run(reassemble, sse(chunks), backend=backend)
    assert all(not chunk.tool_calls for chunk in received[:-1])
    assert received[-1].finish_reason == "tool_calls"
    assert received[-1].tool_calls == tuple(calls)
