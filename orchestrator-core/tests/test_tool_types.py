"""Tool definitions, tool calls, tool messages and response formats: validated on creation,
so bad input fails before any network call."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from orchestrator import GenerationParams, Message, ResponseFormat, Tool, ToolCall
from orchestrator.errors import InvalidToolCallError, StructuredOutputError
from orchestrator.tools import ToolCallAssembler, as_response_format, as_tool, parse_arguments
from orchestrator.types import coerce_messages


def get_weather(city: str, days: int = 3) -> str:
    """Weather forecast for a city.

    Longer text that is not part of the description.
    """
    return f"{city}: sunny for {days} days"


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str
    age: int


def test_tool_from_function_reads_signature_and_docstring() -> None:
    tool = Tool.from_function(get_weather)
    assert tool.name == "get_weather"
    assert tool.description == "Weather forecast for a city."
    assert tool.parameters["type"] == "object"
    assert tool.parameters["required"] == ["city"]
    assert tool.parameters["properties"]["days"]["type"] == "integer"
    assert as_tool(get_weather) == tool


def test_tool_from_model_and_dicts() -> None:
    tool = as_tool(Person)
    assert (tool.name, tool.description) == ("Person", "A person mentioned in the text.")
    assert set(tool.parameters["required"]) == {"name", "age"}
    openai_shape = {
        "type": "function",
        "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}},
    }
    assert as_tool(openai_shape) == Tool("lookup", "d", {"type": "object"})
    assert as_tool({"name": "flat"}).parameters == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"name": "9lives"}, "not allowed"),
        ({"name": "a b"}, "not allowed"),
        ({"name": "auto"}, "tool_choice mode"),
        ({"name": "x", "parameters": {"type": "array"}}, "JSON object"),
        ({"name": "x", "parameters": {"type": "object", "properties": 3}}, "not a valid JSON"),
        ({"name": "x", "extra": 1}, "unsupported keys"),
        ({"description": "no name"}, "needs a 'name'"),
        ({"type": "code_interpreter"}, "only functions"),
    ],
)
def test_bad_tools_are_refused(value: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        as_tool(value)


def test_tool_needs_named_parameters() -> None:
    def spread(*args: int) -> None:
        """Nope."""

    with pytest.raises(ValueError, match="named parameters"):
        Tool.from_function(spread)
    with pytest.raises(TypeError, match="a tool must be"):
        as_tool(42)


def test_params_take_tools_and_check_tool_choice() -> None:
    params = GenerationParams(tools=[get_weather, Person], tool_choice="Person")
    assert params.tools is not None
    assert [t.name for t in params.tools] == ["get_weather", "Person"]
    assert params.tool("Person") is params.tools[1]
    assert GenerationParams(tools=[]).tools is None
    with pytest.raises(ValidationError, match="tool_choice 'nope'"):
        GenerationParams(tools=[get_weather], tool_choice="nope")
    with pytest.raises(ValidationError, match="'required' needs tools"):
        GenerationParams(tool_choice="required")
    with pytest.raises(ValidationError, match="two tools are named"):
        GenerationParams(tools=[get_weather, get_weather])
    with pytest.raises(ValidationError, match="at most 128"):
        GenerationParams(tools=[{"name": f"t{i}"} for i in range(129)])
    with pytest.raises(ValidationError, match="list of tools"):
        GenerationParams(tools="get_weather")


def test_tool_call_and_messages() -> None:
    call = ToolCall("call_1", "get_weather", {"city": "Moscow"})
    assert json.loads(call.arguments_json()) == {"city": "Moscow"}
    result = Message.tool_result(call, {"temp": 8})
    assert (result.role, result.tool_call_id, result.name) == ("tool", "call_1", "get_weather")
    assert json.loads(result.content) == {"temp": 8}
    assert Message.tool_result(call, "8°C").content == "8°C"
    with pytest.raises(ValueError, match="non-empty"):
        ToolCall("", "x", {})
    with pytest.raises(TypeError, match="must be a dict"):
        ToolCall("1", "x", "{}")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only an assistant"):
        Message("user", "", (call,))
    with pytest.raises(ValueError, match="needs the tool_call_id"):
        Message("tool", "8")
    with pytest.raises(ValueError, match="belong on a tool message"):
        Message("user", "x", tool_call_id="call_1")
    with pytest.raises(ValueError, match="belong on a tool message"):
        coerce_messages([{"role": "user", "content": "x", "name": "Ann"}])  # never dropped
    with pytest.raises(TypeError, match="ToolCall objects"):
        Message("assistant", "", ({"id": "1"},))  # type: ignore[arg-type]
    assert Message("assistant", "", [call]).tool_calls == (call,)  # type: ignore[arg-type]


def test_conversation_links_results_to_calls() -> None:
    call = ToolCall("c1", "get_weather", {"city": "Moscow"})
    openai_dicts = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Moscow"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "8°C"},
    ]
    messages = coerce_messages(openai_dicts)
    assert messages[1].tool_calls == (call,)
    assert messages[2].name == "get_weather"  # filled in from the call it answers
    # Message objects without the name get it too.
    objects = [Message("assistant", "", (call,)), Message("tool", "8", tool_call_id="c1")]
    assert coerce_messages(objects)[1].name == "get_weather"
    with pytest.raises(ValueError, match="no earlier assistant message made that call"):
        coerce_messages([Message("tool", "8", tool_call_id="c9", name="x")])
    with pytest.raises(ValueError, match="but is named 'other'"):
        coerce_messages([objects[0], Message("tool", "8", tool_call_id="c1", name="other")])
    with pytest.raises(ValueError, match="not valid JSON"):
        coerce_messages(
            [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"id": "1", "name": "x", "arguments": "{"}],
                }
            ]
        )


def test_response_format_parses_and_validates() -> None:
    person = as_response_format(Person)
    assert person.model is Person and person.name == "Person"
    assert person.parse('{"name": "Ann", "age": 30}') == Person(name="Ann", age=30)
    assert person.parse('```json\n{"name": "Ann", "age": 30}\n```') == Person(name="Ann", age=30)
    with pytest.raises(StructuredOutputError, match="does not match Person") as info:
        person.parse('{"name": "Ann"}')
    assert info.value.raw_text == '{"name": "Ann"}'
    assert any("age" in e for e in info.value.errors)
    with pytest.raises(StructuredOutputError, match="not JSON"):
        person.parse("Ann, 30")
    with pytest.raises(StructuredOutputError, match="not an object"):
        person.parse("[1, 2]")

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    for shape in (
        schema,
        {"type": "json_schema", "json_schema": {"name": "numbers", "schema": schema}},
        {"type": "json_schema", "schema": schema},
        {"type": "json_schema", "json_schema": schema},
    ):
        fmt = as_response_format(shape)
        assert fmt.parse('{"n": 3}') == {"n": 3}
        with pytest.raises(StructuredOutputError, match="n: 'x' is not of type 'integer'"):
            fmt.parse('{"n": "x"}')
    any_object = as_response_format({"type": "json_object"})
    assert any_object == as_response_format("json_object") == ResponseFormat()
    assert any_object.parse('{"a": [1]}') == {"a": [1]}
    with pytest.raises(ValueError, match="leave response_format unset"):
        as_response_format({"type": "text"})
    with pytest.raises(TypeError, match="response_format must be"):
        as_response_format(3)
    assert GenerationParams(response_format=Person).response_format == person


def test_tool_validates_call_arguments() -> None:
    tool = Tool.from_function(get_weather)
    tool.validate_call(ToolCall("1", "get_weather", {"city": "Moscow"}))
    with pytest.raises(InvalidToolCallError, match="'city' is a required property") as info:
        tool.validate_call(ToolCall("1", "get_weather", {"days": 2}))
    assert json.loads(info.value.raw_text) == {"days": 2}


def test_parse_arguments() -> None:
    assert parse_arguments({"a": 1}, "t") == {"a": 1}
    assert parse_arguments('{"a": 1}', "t") == {"a": 1}
    assert parse_arguments("", "t") == parse_arguments(None, "t") == {}
    with pytest.raises(InvalidToolCallError, match="not a JSON object") as info:
        parse_arguments('{"a": ', "t")
    assert info.value.raw_text == '{"a": '
    with pytest.raises(InvalidToolCallError, match="not a JSON object"):
        parse_arguments("[1]", "t")
    with pytest.raises(InvalidToolCallError, match="of type int"):
        parse_arguments(5, "t")


@given(
    arguments=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(st.integers(), st.text(max_size=20), st.booleans(), st.none()),
        max_size=5,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
    calls=st.integers(min_value=1, max_value=3),
)
def test_streamed_deltas_reassemble_to_whole_calls(
    arguments: dict[str, Any], cuts: list[int], calls: int
) -> None:
    """However the arguments string is split into deltas (and calls interleaved), the
    assembler returns each call whole, in index order."""
    text = json.dumps(arguments, ensure_ascii=False)
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    pieces = [text[a:b] for a, b in itertools.pairwise(points)] or [""]
    assembler = ToolCallAssembler()
    assert not assembler
    for index in range(calls):
        assembler.add([{"index": index, "id": f"c{index}", "function": {"name": f"f{index}"}}])
    for piece in pieces:
        assembler.add([{"index": i, "function": {"arguments": piece}} for i in range(calls)])
    result = assembler.calls()
    assert [c.id for c in result] == [f"c{i}" for i in range(calls)]
    assert [c.name for c in result] == [f"f{i}" for i in range(calls)]
    assert all(dict(c.arguments) == arguments for c in result)


def test_assembler_refuses_incomplete_calls() -> None:
    assembler = ToolCallAssembler()
    assembler.add([{"index": 0, "function": {"arguments": "{}"}}])
    with pytest.raises(InvalidToolCallError, match="without a function name"):
        assembler.calls()
    objects = ToolCallAssembler()
    objects.add([{"function": {"name": "f", "arguments": {"a": 1}}}])
    (call,) = objects.calls()
    assert call.id.startswith("call_") and dict(call.arguments) == {"a": 1}
