"""Invariants of the wire mapping of tool messages (hypothesis)."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.testing import LoopbackServer
from orchestrator.types import GenerationParams, Message, ToolCall
from orchestrator_yandexgpt import YandexGPTProvider
from orchestrator_yandexgpt.emulator import YandexGPTEmulator, config_for
from orchestrator_yandexgpt.provider import wire_messages

_names = st.sampled_from(["get_weather", "get_time", "search", "calc"])
_texts = st.text(max_size=12)
_arguments = st.dictionaries(
    st.sampled_from(["a", "b", "city"]), st.integers() | _texts, max_size=3
)
_counter = itertools.count()


@st.composite
def _turn(draw: st.DrawFn) -> list[Message]:
    """A user text, an assistant text, or an assistant's calls followed by some results."""
    kind = draw(st.sampled_from(["user", "assistant", "calls"]))
    if kind != "calls":
        return [Message(kind, draw(_texts))]
    calls = [
        ToolCall(f"call_{next(_counter)}", draw(_names), draw(_arguments))
        for _ in range(draw(st.integers(1, 3)))
    ]
    answered = draw(st.lists(st.sampled_from(calls), max_size=4))
    results = [Message.tool_result(call, draw(_texts)) for call in answered]
    return [Message("assistant", draw(_texts), tuple(calls)), *results]


def _runs(messages: list[Message]) -> list[list[Message]]:
    return [list(g) for tool, g in itertools.groupby(messages, lambda m: m.role == "tool") if tool]


@given(st.lists(_turn(), min_size=1, max_size=6))
def test_tool_results_are_grouped_in_order_and_nothing_is_lost(turns: list[list[Message]]) -> None:
    messages = [m for turn in turns for m in turn]
    wire = wire_messages(messages)
    for item in wire:
        assert len({"text", "toolCallList", "toolResultList"} & set(item)) == 1
        assert item["role"] in ("system", "user", "assistant")
        if "toolResultList" in item:
            assert item["role"] == "user"
        if "toolCallList" in item:
            assert item["role"] == "assistant"
    # Each run of consecutive tool messages is one user message, with the results in order.
    grouped = [item["toolResultList"]["toolResults"] for item in wire if "toolResultList" in item]
    expected: list[list[dict[str, Any]]] = [
        [{"functionResult": {"name": m.name, "content": m.content}} for m in run]
        for run in _runs(messages)
    ]
    assert grouped == expected
    for first, second in itertools.pairwise(wire):
        assert not ("toolResultList" in first and "toolResultList" in second)
    # Every call goes, in order, with its arguments as an object.
    calls = [
        (c["functionCall"]["name"], c["functionCall"]["arguments"])
        for item in wire
        if "toolCallList" in item
        for c in item["toolCallList"]["toolCalls"]
    ]
    assert calls == [(c.name, dict(c.arguments)) for m in messages for c in m.tool_calls]
    # Texts keep their order.
    texts = [(item["role"], item["text"]) for item in wire if "text" in item]
    assert texts == [
        (m.role, m.content)
        for m in messages
        if m.role != "tool" and (m.content or not m.tool_calls)
    ]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_calls = st.lists(
    st.tuples(_names, st.dictionaries(st.text(min_size=1, max_size=6), _json, max_size=4)),
    min_size=1,
    max_size=4,
)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=_calls, stream=st.booleans())
def test_scripted_calls_come_back_whole_and_in_order_over_http(
    server: LoopbackServer, backend: str, calls: list[tuple[str, dict[str, Any]]], stream: bool
) -> None:
    """Whatever calls the model makes, the provider returns them (plain or streamed) with
    the same names and arguments, in order, each with its own id; sent back as history, the
    emulator accepts them and the results, one user message for all of them."""
    emulator: YandexGPTEmulator = server.app
    provider = YandexGPTProvider(config_for(server), environ={})
    tools = [
        {"name": name, "parameters": {"type": "object"}} for name in sorted({n for n, _ in calls})
    ]
    params = GenerationParams(tools=tools)

    async def main() -> tuple[tuple[ToolCall, ...], str]:
        async with provider:
            emulator.call_tools_next(*calls)
            if stream:
                chunks = [c async for c in provider.stream([Message("user", "go")], params)]
                got = chunks[-1].tool_calls
            else:
                got = (await provider.chat([Message("user", "go")], params)).tool_calls
            history = [
                Message("user", "go"),
                Message("assistant", "", got),
                *(Message.tool_result(call, f"result {i}") for i, call in enumerate(got)),
            ]
            answer = await provider.chat(history, params)
        return got, answer.text

    got, answer = anyio.run(main, backend=backend)
    assert [(c.name, dict(c.arguments)) for c in got] == [(n, a) for n, a in calls]
    assert len({c.id for c in got}) == len(got)
    assert answer == "Results: " + "; ".join(f"{n}: result {i}" for i, (n, _) in enumerate(calls))
