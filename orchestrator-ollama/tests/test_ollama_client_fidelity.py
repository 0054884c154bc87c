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
