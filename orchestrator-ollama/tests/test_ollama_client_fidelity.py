"""Fidelity check: the official ``ollama`` client, pointed at the emulator, works unchanged.

The client is a test-only dependency (extra ``test`` of this package); without it the test
is skipped.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest

from orchestrator.testing import LoopbackServer
from orchestrator_ollama.emulator import ErrorLine, OllamaEmulator, answer_for

ollama = pytest.importorskip("ollama")

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    # asyncio only: the client's streaming generator is left to the garbage collector when a
    # stream fails, which trio reports; that is the client's business, not the emulator's.
    # Our provider runs on both (test_ollama_contract.py).
    return "asyncio"


@pytest.fixture(params=[False, True], ids=["http", "https"])
async def served(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[OllamaEmulator, object]]:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    app = OllamaEmulator()
    with LoopbackServer(app, tls=request.param) as server:
        options = {}
        if server.tls:
            options["verify"] = ssl.create_default_context(cafile=server.ca_file)
            monkeypatch.setenv("OLLAMA_HOST", server.base_url)
        else:
            # Without a scheme, as people export it: the client's own parsing.
            monkeypatch.setenv("OLLAMA_HOST", server.base_url.removeprefix("http://"))
        client = ollama.AsyncClient(**options)
        yield app, client
        await client._client.aclose()


async def test_chat(served) -> None:
    app, client = served
    reply = await client.chat(
        model="llama3.2",
        messages=[{"role": "system", "content": "brief"}, {"role": "user", "content": "Привет!"}],
        options={"temperature": 0.2, "num_predict": 100, "seed": 7, "stop": ["END"]},
    )
    assert reply.message.content == answer_for([{"role": "user", "content": "Привет!"}])
    assert reply.message.role == "assistant"
    assert reply.done is True
    assert reply.done_reason == "stop"
    assert reply.prompt_eval_count > 0 and reply.eval_count == 5
    assert reply.total_duration > 0
    sent = app.requests[-1].json()
    assert sent["stream"] is False and sent["tools"] == []
    assert sent["options"]["num_predict"] == 100


async def test_num_predict_cuts_with_length(served) -> None:
    _, client = served
    reply = await client.chat(
        model="llama3.2:latest",
        messages=[{"role": "user", "content": "a b c"}],
        options={"num_predict": 1},
    )
    assert (reply.message.content, reply.done_reason) == ("Ollama", "length")


async def test_stream(served) -> None:
    _, client = served
    parts = [
        part
        async for part in await client.chat(
            model="llama3.2", messages=[{"role": "user", "content": "stream me"}], stream=True
        )
    ]
    assert "".join(p.message.content for p in parts) == "Ollama emulator: stream me"
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert parts[-1].done_reason == "stop"
    assert parts[-1].eval_count == 5


async def test_images_and_tool_messages_are_accepted(served) -> None:
    _, client = served
    reply = await client.chat(
        model="llama3.2",
        messages=[
            {"role": "user", "content": "what is it?", "images": [b"\x89PNG fake"]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "look", "arguments": {"x": 1}}}],
            },
            {"role": "tool", "tool_name": "look", "content": "a cat"},
            {"role": "user", "content": "and now?"},
        ],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "look",
                    "description": "look",
                    "parameters": {"type": "object", "properties": {}},
                },
            }
        ],
    )
    # With tools offered and a user turn last, the emulated model calls the (first) tool.
    [call] = reply.message.tool_calls or []
    assert (call.function.name, call.function.arguments) == ("look", {})


async def test_list_and_show(served) -> None:
    app, client = served
    listed = await client.list()
    assert [m.model for m in listed.models] == list(app.models)
    first = listed.models[0]
    assert first.details is not None and first.details.family == "llama"
    assert first.size > 0 and first.modified_at is not None
    shown = await client.show("llama3.2")
    assert "completion" in shown.capabilities


async def test_model_not_found(served) -> None:
    _, client = served
    with pytest.raises(ollama.ResponseError) as info:
        await client.chat(model="mistral", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 404
    assert info.value.error == "model 'mistral' not found"
    with pytest.raises(ollama.ResponseError) as streamed:
        async for _ in await client.chat(
            model="mistral", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass
    assert streamed.value.status_code == 404


async def test_scripted_errors(served) -> None:
    app, client = served
    app.fail_next(500, message="llama runner process has terminated")
    with pytest.raises(ollama.ResponseError) as info:
        await client.chat(model="llama3.2", messages=[{"role": "user", "content": "x"}])
    assert (info.value.status_code, info.value.error) == (
        500,
        "llama runner process has terminated",
    )
    app.script(ErrorLine(after_chunks=1))
    with pytest.raises(ollama.ResponseError, match="error was encountered") as mid:
        async for _ in await client.chat(
            model="llama3.2", messages=[{"role": "user", "content": "a b c"}], stream=True
        ):
            pass
    assert mid.value.status_code == -1


async def test_bad_request(served) -> None:
    _, client = served
    with pytest.raises(ollama.ResponseError) as info:
        await client.chat(
            model="llama3.2",
            messages=[{"role": "user", "content": "x"}],
            options={"num_predict": "many"},
        )
    assert info.value.status_code == 400


# -- tools, format, embed ----------------------------------------------------------------------


def get_weather(city: str) -> str:
    """Current weather in a city.

    Args:
      city: the city
    """
    return f"18C in {city}"


async def test_tools_round_trip_with_a_python_function(served) -> None:
    app, client = served
    messages: list[object] = [{"role": "user", "content": "weather in Paris?"}]
    reply = await client.chat(model="llama3.2", messages=messages, tools=[get_weather])
    [call] = reply.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "example"}
    sent = app.requests[-1].json()["tools"][0]["function"]
    assert sent["name"] == "get_weather" and sent["parameters"]["required"] == ["city"]
    messages.append(reply.message)
    messages.append(
        {
            "role": "tool",
            "tool_name": "get_weather",
            "content": get_weather(**call.function.arguments),
        }
    )
    final = await client.chat(model="llama3.2", messages=messages, tools=[get_weather])
    assert final.message.content == "Ollama emulator: get_weather returned 18C in example"
    assert not final.message.tool_calls


async def test_streamed_tool_calls_come_whole(served) -> None:
    from orchestrator_ollama.emulator import CallTool

    app, client = served
    app.call_tools_next(CallTool("get_weather", {"city": "Казань"}), "get_weather")
    stream = await client.chat(
        model="llama3.2",
        messages=[{"role": "user", "content": "weather"}],
        tools=[get_weather],
        stream=True,
    )
    parts = [part async for part in stream]
    calls = [c for p in parts for c in (p.message.tool_calls or [])]
    assert [c.function.arguments for c in calls] == [{"city": "Казань"}, {"city": "example"}]
    assert parts[-1].done and parts[-1].done_reason == "stop"


async def test_format_schema_and_json(served) -> None:
    from pydantic import BaseModel

    class Pet(BaseModel):
        name: str
        age: int

    app, client = served
    reply = await client.chat(
        model="llama3.2",
        messages=[{"role": "user", "content": "a pet"}],
        format=Pet.model_json_schema(),
    )
    assert Pet.model_validate_json(reply.message.content or "") == Pet(name="example", age=1)
    reply = await client.chat(
        model="llama3.2", messages=[{"role": "user", "content": "hi"}], format="json"
    )
    assert reply.message.content == '{"answer": "Ollama emulator: hi"}'
    app.reply_next('{"name": 3}')
    reply = await client.chat(
        model="llama3.2", messages=[{"role": "user", "content": "a pet"}], format="json"
    )
    assert reply.message.content == '{"name": 3}'


async def test_embed(served) -> None:
    from orchestrator_ollama.emulator import embedding_for

    _, client = served
    result = await client.embed(model="nomic-embed-text", input=["hello", "мир"])
    assert [list(v) for v in result.embeddings] == [
        embedding_for(t, "nomic-embed-text", 768) for t in ["hello", "мир"]
    ]
    assert result.prompt_eval_count == 2
    short = await client.embed(model="nomic-embed-text", input="hello", dimensions=64)
    assert len(short.embeddings[0]) == 64
    with pytest.raises(ollama.ResponseError) as missing:
        await client.embed(model="all-minilm", input="x")
    assert missing.value.status_code == 404
    with pytest.raises(ollama.ResponseError, match="does not support embeddings"):
        await client.embed(model="llama3.2", input="x")
    with pytest.raises(ollama.ResponseError, match="does not support chat"):
        await client.chat(model="nomic-embed-text", messages=[{"role": "user", "content": "x"}])


async def test_string_arguments_in_history_are_refused_as_ollama_does(served) -> None:
    _, client = served
    import httpx

    body = {
        "model": "llama3.2",
        "stream": False,
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}}],
            },
        ],
    }
    response = await client._client.post("/api/chat", json=body)
    assert response.status_code == 400
    assert "cannot unmarshal string" in response.json()["error"]
    assert isinstance(response, httpx.Response)
