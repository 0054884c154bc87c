"""The wire mapping of functions, results, state ids, streamed calls and embeddings: unit
tests, and hypothesis for the invariants (what goes out comes back the same)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import InvalidRequestError, InvalidToolCallError, StructuredOutputError
from orchestrator.params import GenerationParams
from orchestrator.tools import ResponseFormat, Tool, new_call_id
from orchestrator.types import Message, ToolCall
from orchestrator_gigachat.functions import (
    FunctionCallParts,
    answer_function_for,
    call_id_for,
    function_call_for,
    function_content,
    functions_for,
    message_to_wire,
    response_format_for,
    state_id_of,
    tool_call_from_wire,
)
from orchestrator_gigachat.provider import parse_completion, parse_embeddings, parse_event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=5)


@given(json_objects, st.uuids() | st.none())
def test_arguments_and_state_id_round_trip_through_the_wire(
    arguments: dict[str, Any], state: uuid.UUID | None
) -> None:
    call = ToolCall(call_id_for(None if state is None else str(state)), "f", arguments)
    wire = json.loads(json.dumps(message_to_wire(Message("assistant", "", (call,)), "g")))
    assert isinstance(wire["function_call"]["arguments"], dict)  # an object, not a string
    assert wire.get("functions_state_id") == (None if state is None else str(state))
    back = tool_call_from_wire(wire["function_call"], wire.get("functions_state_id"))
    assert (back.name, back.arguments) == (call.name, call.arguments)
    if state is not None:  # the id carries the state id: stable across the round trip
        assert back.id == call.id


@given(json_objects, st.data())
def test_a_call_split_over_events_is_reassembled(arguments: dict[str, Any], data: Any) -> None:
    keys = list(arguments)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(keys)), max_size=3)))
    parts = FunctionCallParts()
    parts.add({"name": "f", "arguments": {}})
    for start, end in zip([0, *cuts], [*cuts, len(keys)], strict=True):
        parts.add({"arguments": {k: arguments[k] for k in keys[start:end]}})
    assert parts.function_call() == {"name": "f", "arguments": arguments}

    text = json.dumps(arguments)
    cut = data.draw(st.integers(0, len(text)))
    strings = FunctionCallParts()
    strings.add({"name": "f", "arguments": text[:cut]}, state_id="s")
    strings.add({"arguments": text[cut:]})
    assert strings.function_call() == {"name": "f", "arguments": arguments}
    assert strings.state_id == "s"


@given(st.text())
def test_a_result_always_goes_out_as_json(content: str) -> None:
    sent = function_content(content)
    try:
        json.loads(content)
    except ValueError:
        assert json.loads(sent) == content
    else:
        assert sent == content


@given(st.permutations(range(5)))
def test_embeddings_come_back_in_input_order(order: list[int]) -> None:
    data = {
        "data": [
            {"index": i, "embedding": [float(i)] * 3, "usage": {"prompt_tokens": i}} for i in order
        ]
    }
    parsed = parse_embeddings(data, 5, 3)
    assert parsed is not None
    vectors, usage = parsed
    assert [v[0] for v in vectors] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert usage is not None and usage.prompt_tokens == usage.total_tokens == 10


def test_call_ids() -> None:
    state = str(uuid.uuid4())
    assert state_id_of(call_id_for(state)) == state
    assert state_id_of(new_call_id()) is None
    assert state_id_of(call_id_for("not-a-uuid")) is None
    assert state_id_of(call_id_for(5)) is None


def test_messages_on_the_wire() -> None:
    assert message_to_wire(Message("user", "hi"), "g") == {"role": "user", "content": "hi"}
    call = ToolCall("call_x", "f", {"a": 1})
    assert message_to_wire(Message.tool_result(call, {"ok": True}), "g") == {
        "role": "function",
        "name": "f",
        "content": '{"ok": true}',
    }
    two = Message("assistant", "", (call, ToolCall("call_y", "f", {})))
    with pytest.raises(InvalidRequestError, match="one function call per assistant message"):
        message_to_wire(two, "g")


def test_functions_choice_and_formats() -> None:
    tool = Tool("f", "F.", {"type": "object", "properties": {"a": {"type": "integer"}}})
    assert functions_for((tool,)) == [
        {"name": "f", "description": "F.", "parameters": dict(tool.parameters)}
    ]
    assert function_call_for(GenerationParams(tools=[tool]), "g") is None
    assert function_call_for(GenerationParams(tools=[tool], tool_choice="f"), "g") == {"name": "f"}
    assert response_format_for(ResponseFormat()) == {
        "type": "json_schema",
        "schema": {"type": "object"},
    }
    answer = answer_function_for(ResponseFormat())
    assert answer["parameters"] == {"type": "object", "properties": {}}


def test_tool_call_from_wire_errors() -> None:
    with pytest.raises(InvalidToolCallError, match="without a function name"):
        tool_call_from_wire({"arguments": {}}, None)
    with pytest.raises(InvalidToolCallError):
        tool_call_from_wire("f", None)


def test_function_call_parts_errors() -> None:
    parts = FunctionCallParts()
    assert not parts
    parts.add(None, state_id="s")
    assert not parts and parts.state_id == "s"
    with pytest.raises(ValueError, match="not an object"):
        parts.add("f")
    with pytest.raises(ValueError, match="neither an object nor a string"):
        parts.add({"name": "f", "arguments": 5})
    parts.add({"arguments": {"a": {"b": 1}}})
    parts.add({"arguments": {"a": {"c": 2}}})
    assert parts.function_call()["arguments"] == {"a": {"b": 1, "c": 2}}  # nested merge


def answer(message: dict[str, Any], finish: str = "function_call") -> dict[str, Any]:
    return {"choices": [{"message": message, "finish_reason": finish}], "model": "GigaChat"}


def test_parse_completion_with_a_function_call() -> None:
    state = str(uuid.uuid4())
    completion = parse_completion(
        answer(
            {
                "role": "assistant",
                "content": "",
                "function_call": {"name": "f", "arguments": {"a": 1}},
                "functions_state_id": state,
            }
        ),
        provider="g",
        model="m",
        request_id="r",
    )
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == (ToolCall(call_id_for(state), "f", {"a": 1}),)
    assert completion.extra["functions_state_id"] == state

    as_answer = parse_completion(
        answer({"content": "", "function_call": {"name": "R", "arguments": {"a": 1}}}),
        provider="g",
        model="m",
        request_id="r",
        answer_function="R",
    )
    assert (as_answer.text, as_answer.tool_calls, as_answer.finish_reason) == (
        '{"a": 1}',
        (),
        "stop",
    )

    with pytest.raises(InvalidToolCallError) as caught:
        parse_completion(
            answer({"content": "oops"}, "error"), provider="g", model="m", request_id="r"
        )
    assert caught.value.raw_text == "oops" and caught.value.request_id == "r"
    with pytest.raises(StructuredOutputError) as structured:
        parse_completion(
            answer({"content": ""}, "error"),
            provider="g",
            model="m",
            request_id=None,
            answer_function="R",
        )
    assert not isinstance(structured.value, InvalidToolCallError)


def test_parse_event_with_a_function_call() -> None:
    event = {
        "choices": [
            {
                "delta": {
                    "content": "",
                    "function_call": {"name": "f", "arguments": {}},
                    "functions_state_id": "s",
                },
                "finish_reason": "function_call",
            }
        ]
    }
    fields = parse_event(json.dumps(event))
    assert fields is not None
    assert (fields.function_call, fields.state_id) == ({"name": "f", "arguments": {}}, "s")
    plain = parse_event('{"choices": [{"delta": {"content": "x"}}]}')
    assert plain is not None and plain.function_call is None


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"data": {}},
        {"data": [1]},
        {"data": [{"index": 5, "embedding": [1.0]}]},
        {"data": [{"index": True, "embedding": [1.0]}]},
        {"data": [{"index": 0, "embedding": [1.0, 2.0]}]},
        {"data": [{"index": 0, "embedding": ["x"]}]},
    ],
)
def test_parse_embeddings_refuses_other_shapes(data: Any) -> None:
    assert parse_embeddings(data, 1, 1) is None


def test_parse_embeddings_without_usage() -> None:
    parsed = parse_embeddings({"data": [{"embedding": [1]}]}, 1, 1)
    assert parsed == ([[1.0]], None)
    duplicate = {"data": [{"index": 0, "embedding": [1]}, {"index": 0, "embedding": [1]}]}
    assert parse_embeddings(duplicate, 2, 1) is None
