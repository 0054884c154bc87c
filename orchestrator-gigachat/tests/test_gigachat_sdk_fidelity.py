"""Fidelity check: the official ``gigachat`` SDK, pointed at the emulator, works.

The SDK is a test-only dependency (extra ``test`` of this package); without it the test
is skipped.
"""

from __future__ import annotations

import json
import ssl

import pytest

from orchestrator.testing import LoopbackServer
from orchestrator_gigachat.emulator import GigaChatEmulator, answer_for

gigachat = pytest.importorskip("gigachat")


@pytest.mark.parametrize("tls", [False, True])
def test_sdk_chat_stream_and_token_refresh(tls: bool) -> None:
    app = GigaChatEmulator()
    with LoopbackServer(app, tls=tls) as server:
        # ssl_context rather than ca_bundle_file: the SDK passes the latter to httpx as
        # verify=<str>, which httpx 0.28 deprecates (a warning, an error under our config).
        tls_options = (
            {"ssl_context": ssl.create_default_context(cafile=server.ca_file)} if tls else {}
        )
        with gigachat.GigaChat(
            base_url=f"{server.base_url}/api/v1",
            auth_url=f"{server.base_url}/api/v2/oauth",
            credentials=app.authorization_key,
            scope="GIGACHAT_API_PERS",
            model="GigaChat-2",
            **tls_options,
        ) as sdk:
            expected = answer_for([{"role": "user", "content": "Привет!"}])[0]
            reply = sdk.chat("Привет!")
            assert reply.choices[0].message.content == expected
            assert reply.choices[0].finish_reason == "stop"
            assert reply.usage.total_tokens > 0
            assert app.oauth_count == 1

            streamed = "".join(
                chunk.choices[0].delta.content or "" for chunk in sdk.stream("Привет!")
            )
            assert streamed == expected

            app.expire_tokens()  # the SDK meets a 401, refreshes once and retries
            assert sdk.chat("again").choices[0].message.content == "GigaChat emulator: again"
            assert app.oauth_count == 2

            models = sdk.get_models()
            assert "GigaChat-2-Max" in {m.id_ for m in models.data}
            assert sdk.tokens_count(["a b"])[0].tokens == 2
            assert len(sdk.embeddings(["hello"]).data[0].embedding) == 1024


def _sdk(server: LoopbackServer, app: GigaChatEmulator, **options: object) -> object:
    credentials = {} if "user" in options else {"credentials": app.authorization_key}
    return gigachat.GigaChat(
        base_url=f"{server.base_url}/api/v1",
        auth_url=f"{server.base_url}/api/v2/oauth",
        scope="GIGACHAT_API_PERS",
        model="GigaChat-2",
        **credentials,
        **options,
    )


WEATHER = {
    "name": "weather_forecast",
    "description": "Возвращает температуру на заданный период",
    "parameters": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "Местоположение"},
            "format": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "num_days": {"type": "integer"},
        },
        "required": ["location", "num_days"],
    },
    "few_shot_examples": [
        {"request": "Какая погода в Москве", "params": {"location": "Moscow", "num_days": 3}}
    ],
}


def test_sdk_function_calling_flow() -> None:
    """The official SDK's function-calling example, unchanged, against the emulator."""
    from gigachat.models import Chat, ChatFunctionCall, Function, Messages, MessagesRole

    app = GigaChatEmulator(strict_function_content=True)
    with LoopbackServer(app) as server, _sdk(server, app) as sdk:  # type: ignore[attr-defined]
        chat = Chat(
            messages=[Messages(role=MessagesRole.USER, content="Погода в Манжероке на 10 дней")],
            functions=[Function.model_validate(WEATHER)],
            function_call="auto",
        )
        reply = sdk.chat(chat)
        choice = reply.choices[0]
        assert choice.finish_reason == "function_call"
        assert choice.message.content == ""
        call = choice.message.function_call
        assert call.name == "weather_forecast"
        assert call.arguments == {
            "location": "Погода в Манжероке на 10 дней",
            "format": "celsius",
            "num_days": 1,
        }
        assert choice.message.functions_state_id
        chat.messages.append(choice.message)
        chat.messages.append(
            Messages(
                role=MessagesRole.FUNCTION,
                name="weather_forecast",
                content=json.dumps({"temperature": "27"}),
            )
        )
        final = sdk.chat(chat)
        assert final.choices[0].finish_reason == "stop"
        assert final.choices[0].message.content == (
            'GigaChat emulator: weather_forecast returned {"temperature": "27"}'
        )
        # The history went back as the SDK sends it: arguments an object, the state id kept.
        sent = json.loads(app.requests[-1].body)["messages"]
        assert sent[1]["function_call"]["arguments"]["num_days"] == 1
        assert sent[1]["functions_state_id"] == choice.message.functions_state_id

        chat.messages = chat.messages[:1]
        chat.function_call = ChatFunctionCall(name="weather_forecast")
        streamed = list(sdk.stream(chat))
        assert streamed[-1].choices[0].finish_reason == "function_call"
        assert streamed[-1].choices[0].delta.function_call.name == "weather_forecast"
        assert app.oauth_count == 1  # expires_at in ms: the token is reused


def test_sdk_password_auth_reuses_its_token() -> None:
    app = GigaChatEmulator()
    with (
        LoopbackServer(app) as server,
        _sdk(server, app, user=app.user, password=app.password) as sdk,  # type: ignore[attr-defined]
    ):
        for _ in range(3):
            assert sdk.chat("hi").choices[0].finish_reason == "stop"
    # "exp" in milliseconds: the SDK's expiry check (ms) keeps the token.
    assert app.oauth_count == 1


def test_langchain_bind_tools_unchanged() -> None:
    """langchain-gigachat's ``bind_tools`` against the emulator (sync API: its async one
    runs on asyncio only, and the HTTP path is the same)."""
    chat_models = pytest.importorskip("langchain_gigachat.chat_models")
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    app = GigaChatEmulator(strict_function_content=True)
    with LoopbackServer(app) as server:
        llm = chat_models.GigaChat(
            base_url=f"{server.base_url}/api/v1",
            auth_url=f"{server.base_url}/api/v2/oauth",
            credentials=app.authorization_key,
            scope="GIGACHAT_API_PERS",
            model="GigaChat-2",
        )
        try:
            bound = llm.bind_tools([get_weather])
            question = HumanMessage("What is the weather in Kazan?")
            answer = bound.invoke([question])
            assert [c["name"] for c in answer.tool_calls] == ["get_weather"]
            call = answer.tool_calls[0]
            assert call["args"] == {"city": "What is the weather in Kazan?"}
            result = ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
            final = bound.invoke([question, answer, result])
            assert final.content == (
                'GigaChat emulator: get_weather returned "sunny in What is the weather in Kazan?"'
            )
            forced = llm.bind_tools([get_weather], tool_choice="get_weather").invoke([question])
            assert forced.tool_calls[0]["name"] == "get_weather"
            streamed = list(bound.stream([question]))
            assert sum(streamed[1:], streamed[0]).tool_calls[0]["name"] == "get_weather"  # type: ignore[attr-defined]
            assert app.oauth_count == 1
        finally:
            llm._client.close()  # its sockets, before the server stops
