"""The emulator's tools, structured output and embeddings on the wire (spec section 10),
with a plain HTTP client: what it accepts, what it refuses, what it answers."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from orchestrator.testing import LoopbackServer
from orchestrator.testing.schemas import example_instance, violating_instance
from orchestrator_yandexgpt.emulator import TEST_API_KEY, TEST_FOLDER_ID, YandexGPTEmulator

URI = f"gpt://{TEST_FOLDER_ID}/yandexgpt/latest"
WEATHER = {
    "function": {
        "name": "weatherTool",
        "description": "Getting current weather in the specified city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    }
}
ASK = {"role": "user", "text": "What is the weather like in Saint Petersburg?"}
CALLED = {
    "role": "assistant",
    "toolCallList": {
        "toolCalls": [
            {"functionCall": {"name": "weatherTool", "arguments": {"city": "Saint Petersburg"}}}
        ]
    },
}
RESULT = {
    "role": "user",
    "toolResultList": {
        "toolResults": [{"functionResult": {"name": "weatherTool", "content": "8°C"}}]
    },
}


@pytest.fixture
def client(server: LoopbackServer, emulator: YandexGPTEmulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Api-Key {TEST_API_KEY}"}
    with httpx.Client(base_url=server.base_url, headers=headers) as made:
        yield made


def complete(client: httpx.Client, **fields: Any) -> httpx.Response:
    body = {"modelUri": URI, "messages": [ASK], **fields}
    return client.post("/foundationModels/v1/completion", json=body)


def test_the_guide_round_trip(client: httpx.Client, emulator: YandexGPTEmulator) -> None:
    emulator.call_tools_next(("weatherTool", {"city": "Saint Petersburg"}))
    first = complete(client, tools=[WEATHER]).json()
    alternative = first["result"]["alternatives"][0]
    assert alternative == {"message": CALLED, "status": "ALTERNATIVE_STATUS_TOOL_CALLS"}
    usage = first["result"]["usage"]
    assert all(isinstance(usage[k], str) for k in ("inputTextTokens", "completionTokens"))
    final = complete(client, tools=[WEATHER], messages=[ASK, CALLED, RESULT]).json()
    alternative = final["result"]["alternatives"][0]
    assert alternative["status"] == "ALTERNATIVE_STATUS_FINAL"
    assert alternative["message"] == {"role": "assistant", "text": "Results: weatherTool: 8°C"}


def test_a_streamed_tool_call_is_one_final_line(client: httpx.Client) -> None:
    body = {
        "modelUri": URI,
        "messages": [ASK],
        "tools": [WEATHER],
        "completionOptions": {"stream": True},
    }
    response = client.post("/foundationModels/v1/completion", json=body)
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) == 1
    alternative = lines[0]["result"]["alternatives"][0]
    assert alternative["status"] == "ALTERNATIVE_STATUS_TOOL_CALLS"
    assert alternative["message"]["toolCallList"]["toolCalls"][0]["functionCall"] == {
        "name": "weatherTool",
        "arguments": {"city": "example"},
    }
    assert "[DONE]" not in response.text


def test_structured_answers_stream_cumulatively(client: httpx.Client) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    body = {
        "modelUri": URI,
        "messages": [ASK],
        "jsonSchema": {"schema": schema},
        "completionOptions": {"stream": True},
    }
    lines = client.post("/foundationModels/v1/completion", json=body).text.splitlines()
    texts = [json.loads(line)["result"]["alternatives"][0]["message"]["text"] for line in lines]
    assert len(texts) > 1
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))
    assert json.loads(texts[-1]) == {"n": 1}


def test_tool_choice_none_answers_text(client: httpx.Client) -> None:
    body = complete(client, tools=[WEATHER], toolChoice={"mode": "NONE"}).json()
    assert body["result"]["alternatives"][0]["status"] == "ALTERNATIVE_STATUS_FINAL"


def test_required_calls_even_after_results(client: httpx.Client) -> None:
    body = complete(
        client, tools=[WEATHER], toolChoice={"mode": "REQUIRED"}, messages=[ASK, CALLED, RESULT]
    ).json()
    assert body["result"]["alternatives"][0]["status"] == "ALTERNATIVE_STATUS_TOOL_CALLS"


def test_scripted_text_wins_over_tools(client: httpx.Client, emulator: YandexGPTEmulator) -> None:
    emulator.reply_next("No tools today.", times=2)
    for _ in range(2):
        body = complete(client, tools=[WEATHER], toolChoice={"mode": "REQUIRED"}).json()
        assert body["result"]["alternatives"][0]["message"]["text"] == "No tools today."
    assert (
        complete(client).json()["result"]["alternatives"][0]["message"]["text"].startswith("Echo:")
    )


def test_invalid_arguments_for_a_named_tool_and_without_tools(
    client: httpx.Client, emulator: YandexGPTEmulator
) -> None:
    emulator.invalid_arguments_next("weatherTool")
    call = complete(client, tools=[WEATHER]).json()["result"]["alternatives"][0]["message"]
    assert call["toolCallList"]["toolCalls"][0]["functionCall"]["arguments"] == {}
    emulator.invalid_arguments_next()
    call = complete(client).json()["result"]["alternatives"][0]["message"]
    assert call["toolCallList"]["toolCalls"][0]["functionCall"]["name"] == "invalid_call"


def test_scripting_needs_a_call() -> None:
    with pytest.raises(ValueError, match="at least one"):
        YandexGPTEmulator().call_tools_next()


def test_a_violated_json_object_is_not_json(
    client: httpx.Client, emulator: YandexGPTEmulator
) -> None:
    emulator.violate_schema_next()
    body = complete(client, jsonObject=True).json()
    assert body["result"]["alternatives"][0]["message"]["text"] == "This is not JSON."


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"messages": [{"role": "user"}]}, "exactly one of text"),
        ({"messages": [{"role": "user", "text": "a", **RESULT}]}, "exactly one of text"),
        ({"messages": [{"role": "user", "text": 5}]}, "text must be a string"),
        ({"messages": [ASK, {**CALLED, "role": "user"}]}, "belongs in an assistant"),
        ({"messages": [ASK, CALLED, {**RESULT, "role": "assistant"}]}, "belongs in a user"),
        (
            {"messages": [ASK, {"role": "assistant", "toolCallList": {"toolCalls": []}}]},
            "non-empty list",
        ),
        (
            {"messages": [ASK, {"role": "assistant", "toolCallList": {"toolCalls": [{}]}}]},
            "functionCall.name",
        ),
        (
            {
                "messages": [
                    ASK,
                    {
                        "role": "assistant",
                        "toolCallList": {
                            "toolCalls": [{"functionCall": {"name": "f", "arguments": "{}"}}]
                        },
                    },
                ]
            },
            "must be a JSON object",
        ),
        (
            {
                "messages": [
                    ASK,
                    CALLED,
                    {"role": "user", "toolResultList": {"toolResults": [{"functionResult": {}}]}},
                ]
            },
            "functionResult.name",
        ),
        (
            {
                "messages": [
                    ASK,
                    CALLED,
                    {
                        "role": "user",
                        "toolResultList": {
                            "toolResults": [
                                {"functionResult": {"name": "weatherTool", "content": {"c": 8}}}
                            ]
                        },
                    },
                ]
            },
            "content must be a string",
        ),
        ({"tools": {"function": {}}}, "tools must be a list"),
        ({"tools": [{"function": {"description": "x"}}]}, "function.name is required"),
        (
            {"tools": [{"function": {"name": "f", "parameters": "object"}}]},
            "parameters must be an object",
        ),
        ({"tools": [WEATHER], "toolChoice": {}}, "exactly one of mode, functionName"),
        (
            {"tools": [WEATHER], "toolChoice": {"mode": "AUTO", "functionName": "weatherTool"}},
            "exactly one of mode, functionName",
        ),
        ({"tools": [WEATHER], "toolChoice": {"mode": "ALWAYS"}}, "not a ToolChoiceMode"),
        ({"tools": [WEATHER], "toolChoice": {"functionName": "nope"}}, "not one of the tools"),
        ({"parallelToolCalls": "yes"}, "parallelToolCalls must be a boolean"),
        ({"jsonObject": "yes"}, "jsonObject must be a boolean"),
        ({"jsonObject": True, "jsonSchema": {"schema": {}}}, "only one of jsonObject"),
        ({"jsonSchema": {"schema": "x"}}, "jsonSchema.schema must be an object"),
    ],
)
def test_requests_the_api_refuses(
    client: httpx.Client, fields: dict[str, Any], message: str
) -> None:
    response = complete(client, **fields)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


def test_unspecified_mode_is_auto(client: httpx.Client) -> None:
    body = complete(
        client, tools=[WEATHER], toolChoice={"mode": "TOOL_CHOICE_MODE_UNSPECIFIED"}
    ).json()
    assert body["result"]["alternatives"][0]["status"] == "ALTERNATIVE_STATUS_TOOL_CALLS"


def test_tokenize_completion_counts_tool_messages(client: httpx.Client) -> None:
    body = {"modelUri": URI, "messages": [ASK, CALLED, RESULT]}
    response = client.post("/foundationModels/v1/tokenizeCompletion", json=body)
    assert response.status_code == 200
    assert len(response.json()["tokens"]) > len(ASK["text"].split())


# -- embeddings --------------------------------------------------------------------------------


def embed(client: httpx.Client, model: str, text: Any) -> httpx.Response:
    uri = f"emb://{TEST_FOLDER_ID}/{model}/latest"
    return client.post("/foundationModels/v1/textEmbedding", json={"modelUri": uri, "text": text})


@pytest.mark.parametrize("model", ["text-search-doc", "text-search-query"])
def test_embeddings_have_256_numbers(client: httpx.Client, model: str) -> None:
    body = embed(client, model, "Alexander Sergeyevich Pushkin").json()
    assert len(body["embedding"]) == 256
    assert all(isinstance(x, float) for x in body["embedding"])
    assert body["numTokens"] == "3"


def test_embeddings_refuse_a_list_and_a_bad_uri(client: httpx.Client) -> None:
    response = embed(client, "text-search-doc", ["a", "b"])
    assert response.status_code == 400 and "one text per request" in response.json()["message"]
    response = embed(client, "text-search-nope", "a")
    assert response.status_code == 400 and "Invalid modelUri" in response.json()["message"]
    response = embed(client, "text-search-doc", None)
    assert response.status_code == 400


@pytest.mark.parametrize(("dim", "status"), [("256", 200), (256, 200), ("128", 400)])
def test_embedding_dim_is_an_int64(client: httpx.Client, dim: Any, status: int) -> None:
    uri = f"emb://{TEST_FOLDER_ID}/text-search-doc/latest"
    body = {"modelUri": uri, "text": "x", "dim": dim}
    assert client.post("/foundationModels/v1/textEmbedding", json=body).status_code == status


# -- /v1 streams with faults --------------------------------------------------------------


def sse(client: httpx.Client, **fields: Any) -> list[str]:
    body = {"model": URI, "messages": [{"role": "user", "content": "a b c d"}], "stream": True}
    with client.stream("POST", "/v1/chat/completions", json={**body, **fields}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line for line in response.iter_lines() if line]


def test_v1_stream_faults(client: httpx.Client, emulator: YandexGPTEmulator) -> None:
    emulator.cut_next_stream(after_chunks=2)
    lines = sse(client)
    assert len(lines) == 2 and "[DONE]" not in lines[-1]
    emulator.malform_next_stream(after_chunks=1)
    assert sse(client)[-1] == "data: {not json"
    emulator.error_in_next_stream(after_chunks=1, message="boom")
    assert json.loads(sse(client)[-1][6:])["error"]["message"] == "boom"
    emulator.wrong_shape_next_stream({"choices": "x"}, after_chunks=1)
    lines = sse(client)
    assert json.loads(lines[1][6:]) == {"choices": "x"} and lines[-1] == "data: [DONE]"
    emulator.break_next_stream(after_chunks=1)
    with pytest.raises(httpx.HTTPError):
        sse(client)


def test_v1_stream_delay_and_empty_answer(
    client: httpx.Client, emulator: YandexGPTEmulator
) -> None:
    emulator.stream_delay = 0.001
    emulator.reply_next("")
    lines = sse(client)
    first = json.loads(lines[0][6:])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"messages": []}, "at least one message"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "role must be"),
        ({"messages": [{"role": "user", "content": 5}]}, "content must be a string"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id is required"),
        (
            {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "f"}]}]},
            "function.name",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"function": {"name": "f", "arguments": "{no"}}],
                    }
                ]
            },
            "arguments must be a JSON string",
        ),
        ({"tools": [{"type": "retrieval"}]}, "function tools"),
        ({"tool_choice": "sometimes"}, "not supported"),
        ({"tool_choice": 5}, "must be a string or an object"),
        ({"response_format": {"type": "json_schema"}}, "json_schema is required"),
        ({"response_format": {"type": "xml"}}, "not supported"),
        ({"response_format": "json"}, "must be an object"),
        ({"temperature": 1.5}, "temperature"),
    ],
)
def test_v1_requests_refused(client: httpx.Client, fields: dict[str, Any], message: str) -> None:
    body = {"model": URI, "messages": [{"role": "user", "content": "x"}], **fields}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert message in error["message"] and error["httpCode"] == 400


def test_v1_named_tool_choice_content_parts_and_json_object(client: httpx.Client) -> None:
    body = {
        "model": URI,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "tools": [{"type": "function", "function": WEATHER["function"]}],
        "tool_choice": {"type": "function", "function": {"name": "weatherTool"}},
        "max_completion_tokens": 10,
    }
    answer = client.post("/v1/chat/completions", json=body).json()
    assert answer["choices"][0]["message"]["tool_calls"][0]["id"] == "weatherTool"
    body = {
        "model": URI,
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_object"},
    }
    answer = client.post("/v1/chat/completions", json=body).json()
    assert json.loads(answer["choices"][0]["message"]["content"]) == {"answer": "Echo: hi"}


def test_v1_embedding_folder_is_checked(client: httpx.Client) -> None:
    body = {"model": "emb://b1gother/text-search-doc/latest", "input": "x"}
    assert client.post("/v1/embeddings", json=body).status_code == 403


# -- made-up values from schemas ---------------------------------------------------------


class Inner(BaseModel):
    label: str
    weight: float | None = None


class Outer(BaseModel):
    name: str
    count: int
    flags: list[bool]
    inner: Inner
    maybe: Inner | None
    mode: str = "fast"


SCHEMAS: list[dict[str, Any]] = [
    Outer.model_json_schema(),
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 3}}},
    {"type": "object", "properties": {"x": {"type": "number", "exclusiveMinimum": 2}}},
    {"type": "object", "properties": {"s": {"type": "string", "minLength": 20}}},
    {"type": "object", "properties": {"c": {"const": 3}, "e": {"enum": ["a", "b"]}}},
    {"type": "object", "properties": {"t": {"type": ["null", "integer"]}, "z": {"type": "null"}}},
    {"type": "object", "properties": {"a": {"allOf": [{"type": "integer"}, {"minimum": 2}]}}},
    {"type": "object", "properties": {"l": {"items": {"type": "string"}, "minItems": 2}}},
    {"type": "object", "properties": {"o": {"properties": {"p": {"type": "boolean"}}}}},
    {"type": "object"},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_examples_match_and_violations_do_not(schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    example = example_instance(schema)
    if "maximum" not in json.dumps(schema):  # min 5 and max 3 cannot both hold
        assert not list(validator.iter_errors(example)), example
    assert list(validator.iter_errors(violating_instance(schema)))


def test_deep_or_broken_refs_give_up_quietly() -> None:
    loop = {"$defs": {"A": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}
    assert example_instance(loop) == "example"
    deep: dict[str, Any] = {"type": "object", "properties": {}, "required": ["a"]}
    node = deep
    for _ in range(12):
        child: dict[str, Any] = {"type": "object", "properties": {}, "required": ["a"]}
        node["properties"]["a"] = child
        node = child
    assert isinstance(example_instance(deep), dict)
    assert example_instance({"type": "weird"}) is None
    assert example_instance(None) == "example"


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.sampled_from(
            [{"type": t} for t in ("string", "integer", "number", "boolean", "array", "object")]
        ),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_generated_flat_schemas(properties: dict[str, Any], require: bool) -> None:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if require:
        schema["required"] = sorted(properties)
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(example_instance(schema)))
    assert list(validator.iter_errors(violating_instance(schema)))
