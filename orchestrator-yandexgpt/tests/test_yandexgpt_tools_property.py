"""Invariants of the wire mapping of tool messages (hypothesis)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.types import Message, ToolCall
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
