"""The emulator's wire fidelity, driven with plain httpx over a real socket."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest

from orchestrator.testing import LoopbackServer
from orchestrator.testing.scripting import ScriptableApp
from orchestrator_gigachat.emulator import (
    TEST_AUTHORIZATION_KEY,
    CallFunction,
    ExpireTokens,
    GigaChatEmulator,
    InvalidArguments,
    Reply,
    Stall,
    WrongShape,
    answer_for,
    main,
)


@pytest.fixture
def client(server: LoopbackServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url) as http:
        yield http


def oauth(client: httpx.Client, **overrides: object) -> httpx.Response:
    headers = {"Authorization": f"Basic {TEST_AUTHORIZATION_KEY}", "RqUID": str(uuid.uuid4())}
    headers.update(overrides.pop("headers", {}))  # type: ignore[arg-type]
    data = overrides.pop("data", {"scope": "GIGACHAT_API_PERS"})
    return client.post("/api/v2/oauth", headers=headers, data=data)  # type: ignore[arg-type]


def bearer(client: httpx.Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {oauth(client).json()['access_token']}"}


def test_is_a_scriptable_app(emulator: GigaChatEmulator) -> None:
    assert isinstance(emulator, ScriptableApp)


def test_oauth_success_shape(client: httpx.Client) -> None:
    response = oauth(client)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_at"}
    assert body["expires_at"] > 10**12  # milliseconds


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"headers": {"RqUID": "not-a-uuid"}}, 400, 400),
        ({"headers": {"Authorization": "Bearer x"}}, 401, 4),
        ({"headers": {"Authorization": "Basic !!!"}}, 401, 4),
        ({"headers": {"Authorization": "Basic d3Jvbmc6a2V5"}}, 401, 6),
        ({"data": {"scope": ""}}, 400, 5),
        ({"data": {"scope": "GIGACHAT_API_FOO"}}, 400, 1),
        ({"data": {"scope": "GIGACHAT_API_CORP"}}, 400, 7),
    ],
)
def test_oauth_errors(client, overrides, status, code) -> None:
    response = oauth(client, **overrides)
    assert response.status_code == status
    assert response.json()["code"] == code


def test_api_needs_a_valid_token(client, emulator) -> None:
    assert client.get("/api/v1/models").status_code == 401
    headers = bearer(client)
    assert client.get("/api/v1/models", headers=headers).status_code == 200
    emulator.script(ExpireTokens())
    response = client.get("/api/v1/models", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"status": 401, "message": "Unauthorized"}


def test_chat_shape_and_headers(client) -> None:
    headers = {**bearer(client), "X-Request-ID": "my-id", "X-Session-ID": "my-session"}
    body = {"model": "GigaChat-2-Max", "messages": [{"role": "user", "content": "Hi"}]}
    response = client.post("/api/v1/chat/completions", headers=headers, json=body)
    assert response.headers["x-request-id"] == "my-id"
    assert response.headers["x-session-id"] == "my-session"
    data = response.json()
    assert "id" not in data
    assert data["object"] == "chat.completion"
    assert data["model"] == "GigaChat-2-Max:2.0.28.2"
    assert data["choices"][0]["message"] == {
        "content": "GigaChat emulator: Hi",
        "role": "assistant",
    }
    assert set(data["usage"]) == {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "precached_prompt_tokens",
    }
    generated = client.get("/api/v1/models", headers=bearer(client)).headers
    uuid.UUID(generated["x-request-id"])
    uuid.UUID(generated["x-session-id"])


def test_stream_wire_format(client) -> None:
    body = {
        "model": "GigaChat",
        "stream": True,
        "messages": [{"role": "user", "content": "one two three"}],
    }
    response = client.post("/api/v1/chat/completions", headers=bearer(client), json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    parsed = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert parsed[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in p["choices"][0]["delta"] for p in parsed[1:])
    assert all(p["object"] == "chat.completion" for p in parsed)
    last = parsed[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["choices"][0]["delta"]["content"] == ""
    assert "usage" in last and all("usage" not in p for p in parsed[:-1])
    text = "".join(p["choices"][0]["delta"]["content"] for p in parsed)
    assert text == answer_for(body["messages"])[0]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {
                "model": "GigaChat",
                "messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}],
            },
            422,
            "Invalid params: system message must be the first message",
        ),
        (
            {
                "model": "GigaChat",
                "messages": [{"role": "user", "content": "a"}],
                "repetition_penalty": 0,
            },
            422,
            "Invalid params: repetition_penalty must be in range (0, +inf)",
        ),
        (
            {"model": "GigaChat", "messages": [{"role": "user", "content": "a"}], "temperature": 0},
            422,
            "Invalid params: temperature must be in range (0, +inf)",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}]},
            422,
            "Invalid params: model is required",
        ),
        ({"model": "GigaChat", "messages": []}, 422, "Invalid params: messages must not be empty"),
        (
            {"model": "GigaChat", "messages": [{"role": "bot", "content": "a"}]},
            422,
            "Invalid params: messages[0].role is invalid",
        ),
        (
            {"model": "GigaChat", "messages": [{"role": "user", "content": 5}]},
            422,
            "Invalid params: messages[0].content must be a string",
        ),
        ({"model": "Nope", "messages": [{"role": "user", "content": "a"}]}, 404, "No such model"),
        ([], 400, "Bad request"),
    ],
)
def test_chat_validation(client, body, status, message) -> None:
    response = client.post("/api/v1/chat/completions", headers=bearer(client), json=body)
    assert response.status_code == status
    assert response.json() == {"status": status, "message": message}


def test_models_tokens_embeddings_balance(client) -> None:
    headers = bearer(client)
    models = client.get("/api/v1/models", headers=headers).json()
    assert models["object"] == "list"
    assert models["data"][0] == {
        "id": "GigaChat",
        "object": "model",
        "owned_by": "salutedevices",
        "type": "chat",
    }
    assert client.get("/api/v1/models/Embeddings", headers=headers).json()["type"] == "embedder"
    missing = client.get("/api/v1/models/Nope", headers=headers)
    assert missing.status_code == 404 and missing.json() == {
        "status": 404,
        "message": "No such model",
    }
    counts = client.post(
        "/api/v1/tokens/count", headers=headers, json={"model": "GigaChat", "input": ["a b", "c"]}
    ).json()
    assert counts == [
        {"object": "tokens", "tokens": 2, "characters": 3},
        {"object": "tokens", "tokens": 1, "characters": 1},
    ]
    for bad, status in (
        ({"input": ["a"]}, 422),
        ({"model": "GigaChat", "input": [1]}, 422),
        ({"model": "Nope", "input": "a"}, 404),
    ):
        assert client.post("/api/v1/tokens/count", headers=headers, json=bad).status_code == status
    emb = client.post(
        "/api/v1/embeddings", headers=headers, json={"input": ["hello"], "model": "Embeddings"}
    ).json()
    assert emb["object"] == "list" and emb["model"] == "Embeddings"
    assert emb["data"][0]["object"] == "embedding" and len(emb["data"][0]["embedding"]) == 1024
    assert emb["data"][0]["usage"] == {"prompt_tokens": 1}
    assert (
        client.post(
            "/api/v1/embeddings", headers=headers, json={"input": "x", "model": "GigaChat"}
        ).status_code
        == 404
    )
    assert client.post("/api/v1/embeddings", headers=headers, json={}).status_code == 422
    assert client.get("/api/v1/balance", headers=headers).json()["balance"][0]["usage"]


def test_faults_apply_to_every_endpoint(client, emulator) -> None:
    headers = bearer(client)
    for path in ("/api/v1/models/GigaChat", "/api/v1/balance"):
        emulator.fail_next(503, retry_after=2)
        response = client.get(path, headers=headers)
        assert response.status_code == 503 and response.headers["retry-after"] == "2"
    for path in ("/api/v1/tokens/count", "/api/v1/embeddings"):
        emulator.outage = True
        assert client.post(path, headers=headers, json={}).status_code == 503
        emulator.outage = False


def test_password_token_endpoint(client, emulator) -> None:
    ok = client.post("/api/v1/token", auth=(emulator.user, emulator.password))
    assert set(ok.json()) == {"tok", "exp"}
    assert ok.json()["exp"] > 10**12  # milliseconds, as the official SDK compares it
    assert client.post("/api/v1/token", auth=("x", "y")).status_code == 401
    assert client.post("/api/v1/token", headers={"Authorization": "Basic ***"}).status_code == 401
    emulator.oauth_outage = True
    assert client.post("/api/v1/token", auth=(emulator.user, emulator.password)).status_code == 503


def test_invalid_scope_rejected() -> None:
    with pytest.raises(ValueError, match="scope must be one of"):
        GigaChatEmulator(scope="PERS")


def test_command_line(capsys) -> None:
    stop = threading.Event()
    stop.set()
    assert main(["--tls"], stop=stop) == 0
    out = capsys.readouterr().out
    assert "export GIGACHAT_BASE_URL=https://127.0.0.1:" in out
    assert f"export GIGACHAT_CREDENTIALS={TEST_AUTHORIZATION_KEY}" in out
    assert "export GIGACHAT_MODEL=GigaChat-2" in out
    assert "GIGACHAT_CA_BUNDLE_FILE" in out


CHAT = {"model": "GigaChat", "messages": [{"role": "user", "content": "one two three"}]}


def test_stall_delays_one_call(client, emulator) -> None:
    headers = bearer(client)
    emulator.script(Stall(3.0))
    with pytest.raises(httpx.ReadTimeout):
        client.post("/api/v1/chat/completions", headers=headers, json=CHAT, timeout=0.1)
    assert client.post("/api/v1/chat/completions", headers=headers, json=CHAT).status_code == 200


def test_wrong_shape_plain_and_streamed(client, emulator) -> None:
    headers = bearer(client)
    emulator.script(WrongShape())
    response = client.post("/api/v1/chat/completions", headers=headers, json=CHAT)
    assert response.status_code == 200 and response.json() == {"choices": [None]}
    emulator.script(WrongShape({"choices": [{"delta": "text"}]}, after_chunks=1))
    streamed = client.post(
        "/api/v1/chat/completions", headers=headers, json={**CHAT, "stream": True}
    )
    events = [e.removeprefix("data: ") for e in streamed.text.split("\n\n") if e]
    parsed = [json.loads(e) for e in events[:-1]]
    assert parsed[1] == {"choices": [{"delta": "text"}]}
    rest = parsed[:1] + parsed[2:]
    assert (
        "".join(p["choices"][0]["delta"]["content"] for p in rest)
        == (
            answer_for(CHAT["messages"])[0]  # type: ignore[arg-type]
        )
    )


def test_answer_prefix_names_the_instance() -> None:
    app = GigaChatEmulator(answer_prefix="Second GigaChat")
    with LoopbackServer(app) as running, httpx.Client(base_url=running.base_url) as http:
        response = http.post("/api/v1/chat/completions", headers=bearer(http), json=CHAT)
    assert response.json()["choices"][0]["message"]["content"] == "Second GigaChat: one two three"


# -- functions, structured output, embeddings (spec section 9) --------------------------------

USER = [{"role": "user", "content": "Погода в Казани"}]
WEATHER = {
    "name": "weather_forecast",
    "description": "Погода",
    "parameters": {
        "type": "object",
        "properties": {
            "location": {"type": "string"},
            "num_days": {"type": "integer", "minimum": 3},
            "format": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location"],
    },
}


def chat(client: httpx.Client, **body: object) -> httpx.Response:
    payload = {"model": "GigaChat-2", "messages": USER, **body}
    return client.post("/api/v1/chat/completions", headers=bearer(client), json=payload)


def test_function_call_answer_shape(client) -> None:
    body = chat(client, functions=[WEATHER], function_call={"name": "weather_forecast"}).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "function_call"
    message = choice["message"]
    assert message["content"] == ""
    assert message["function_call"] == {
        "name": "weather_forecast",
        "arguments": {"location": "Погода в Казани", "num_days": 3, "format": "celsius"},
    }
    uuid.UUID(message["functions_state_id"])
    assert body["usage"]["completion_tokens"] > 0


def test_function_result_and_state_id_are_accepted(client) -> None:
    history = [
        *USER,
        {
            "role": "assistant",
            "content": "",
            "function_call": {"name": "weather_forecast", "arguments": {"location": "Казань"}},
            "functions_state_id": str(uuid.uuid4()),
        },
        {"role": "function", "name": "weather_forecast", "content": '{"t": 27}'},
    ]
    body = chat(client, messages=history, functions=[WEATHER]).json()
    assert body["choices"][0]["message"]["content"] == (
        'GigaChat emulator: weather_forecast returned {"t": 27}'
    )
    assert body["choices"][0]["finish_reason"] == "stop"


def test_auto_calls_the_function_named_in_the_question(client) -> None:
    other = {**WEATHER, "name": "kazan"}
    asked = [{"role": "user", "content": "Use Kazan"}]
    body = chat(client, messages=asked, functions=[WEATHER, other], function_call="auto").json()
    assert body["choices"][0]["message"]["function_call"]["name"] == "kazan"
    body = chat(client, messages=asked, functions=[WEATHER, other]).json()
    assert body["choices"][0]["message"]["function_call"]["name"] == "kazan"
    none = chat(client, functions=[WEATHER], function_call="none").json()
    assert "function_call" not in none["choices"][0]["message"]
    builtin = chat(client, function_call={"name": "text2image"}).json()
    assert builtin["choices"][0]["message"]["function_call"]["name"] == "text2image"


ASSISTANT_CALL = {"role": "assistant", "content": "", "function_call": {"name": "f"}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"functions": [{**WEATHER, "name": "1st"}]}, "functions[0].name must be Latin letters"),
        ({"functions": [{**WEATHER, "name": "погода"}]}, "functions[0].name must be Latin"),
        ({"functions": {"name": "x"}}, "functions must be an array"),
        ({"functions": [{**WEATHER, "parameters": "x"}]}, "functions[0].parameters must be"),
        ({"functions": [{**WEATHER, "description": 1}]}, "functions[0].description must be"),
        ({"function_call": "required"}, "function_call must be 'auto', 'none' or an object"),
        ({"function_call": {"name": "nope"}}, "function_call.name 'nope' is not described"),
        (
            {
                "functions": [WEATHER],
                "function_call": {"name": WEATHER["name"], "partial_arguments": 1},
            },
            "function_call.partial_arguments must be an object",
        ),
        (
            {
                "messages": [
                    *USER,
                    {**ASSISTANT_CALL, "function_call": {"name": "f", "arguments": "{}"}},
                ]
            },
            "messages[1].function_call.arguments must be an object",
        ),
        ({"messages": [*USER, {**ASSISTANT_CALL, "function_call": "f"}]}, "must be an object with"),
        (
            {"messages": [{"role": "user", "content": "", "function_call": {"name": "f"}}]},
            "messages[0].function_call is allowed on assistant messages only",
        ),
        (
            {"messages": [*USER, {**ASSISTANT_CALL, "functions_state_id": "x"}]},
            "messages[1].functions_state_id is not a uuid",
        ),
        (
            {"messages": [{**USER[0], "functions_state_id": str(uuid.uuid4())}]},
            "functions_state_id is allowed on assistant messages only",
        ),
        (
            {"messages": [*USER, {"role": "function", "name": "", "content": "{}"}]},
            "messages[1].name must be a non-empty string",
        ),
        ({"response_format": {"type": "json_object"}}, "response_format.type must be"),
        ({"response_format": {"type": "text", "schema": {}}}, "type text takes no other fields"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
            "response_format.schema must be an object (the flat shape)",
        ),
        (
            {"response_format": {"type": "json_schema", "schema": {}, "strict": "yes"}},
            "response_format.strict must be a boolean",
        ),
        ({"response_format": {"type": "regex"}}, "response_format.regex must be a string"),
    ],
)
def test_function_validation(client, body, message) -> None:
    response = chat(client, **body)
    assert response.status_code == 422
    assert response.json()["status"] == 422
    assert response.json()["message"].startswith("Invalid params: ")
    assert message in response.json()["message"]


def test_strict_function_content() -> None:
    app = GigaChatEmulator(strict_function_content=True)
    with LoopbackServer(app) as server, httpx.Client(base_url=server.base_url) as client:
        history = [*USER, {"role": "function", "name": "f", "content": "not json"}]
        response = chat(client, messages=history)
        assert response.status_code == 422
        assert "must be a JSON string" in response.json()["message"]
        assert chat(client, messages=[*USER, {**history[1], "content": '"ok"'}]).is_success


def test_streamed_function_call_is_in_the_last_event(client) -> None:
    response = chat(client, stream=True, functions=[WEATHER], function_call="auto")
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    (last,) = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert last["object"] == "chat.completion" and "usage" in last
    choice = last["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["delta"]["function_call"]["name"] == "weather_forecast"
    assert isinstance(choice["delta"]["function_call"]["arguments"], dict)
    uuid.UUID(choice["delta"]["functions_state_id"])


def test_scripted_answers(client, emulator) -> None:
    emulator.script(CallFunction("weather_forecast", {"location": "Омск"}, state_id="fixed"))
    message = chat(client, functions=[WEATHER]).json()["choices"][0]["message"]
    assert message["function_call"]["arguments"] == {"location": "Омск"}
    assert message["functions_state_id"] == "fixed"
    emulator.call_function_next("weather_forecast", {"a": 1, "b": 2}, split=True)
    events = [e for e in chat(client, stream=True).text.split("\n\n") if e][:-1]
    deltas = [json.loads(e.removeprefix("data: "))["choices"][0]["delta"] for e in events]
    assert [d.get("function_call") for d in deltas] == [
        {"name": "weather_forecast", "arguments": {}},
        {"arguments": {"a": 1}},
        {"arguments": {"b": 2}},
        None,
    ]
    emulator.call_function_next("f", '{"a": 1}', split=True, state_id=None)
    events = [e for e in chat(client, stream=True).text.split("\n\n") if e][:-1]
    parts = [json.loads(e.removeprefix("data: "))["choices"][0]["delta"] for e in events]
    assert "".join(p["function_call"]["arguments"] for p in parts[1:3]) == '{"a": 1}'
    emulator.invalid_arguments_next()
    choice = chat(client, functions=[WEATHER]).json()["choices"][0]
    assert choice["finish_reason"] == "error"
    assert choice["message"]["function_call"]["name"] == "weather_forecast"
    emulator.script(InvalidArguments())
    assert chat(client).json()["choices"][0]["message"]["function_call"]["name"] == "function"
    emulator.reply_next("plain text", times=2)
    assert chat(client, functions=[WEATHER]).json()["choices"][0]["message"]["content"] == (
        "plain text"
    )
    emulator.script(Reply("x"))  # an answer step on another endpoint is a Pass
    assert client.get("/api/v1/models", headers=bearer(client)).is_success


def test_response_format_answers_a_json_string(client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string", "minLength": 20},
            "n": {"type": "integer", "maximum": 0},
            "ratio": {"type": "number", "exclusiveMinimum": 2},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            "fixed": {"const": 7},
            "default": {"type": "string", "default": "d"},
            "nothing": {"type": "null"},
            "several": {"type": ["null", "integer"]},
            "free": {"type": "object"},
        },
        "$defs": {"Tag": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }
    body = chat(client, response_format={"type": "json_schema", "schema": schema, "strict": True})
    content = body.json()["choices"][0]["message"]["content"]
    assert isinstance(content, str) and content.startswith("{\n    ")
    assert json.loads(content) == {
        "answer": "Погода в Казани" * 2,  # the user's words, repeated to minLength
        "n": 0,
        "ratio": 3.0,
        "ok": True,
        "tags": [{"name": "Погода в Казани"}],
        "maybe": "Погода в Казани",
        "fixed": 7,
        "default": "d",
        "nothing": None,
        "several": 1,
        "free": {},
    }
    text = chat(client, response_format={"type": "text"}).json()["choices"][0]["message"]
    assert text["content"] == "GigaChat emulator: Погода в Казани"
    regex = chat(client, response_format={"type": "regex", "regex": "a+"})
    assert regex.json()["choices"][0]["message"]["content"] == text["content"]


def test_embeddings_shape(client) -> None:
    body = client.post(
        "/api/v1/embeddings",
        headers=bearer(client),
        json={"input": ["один", "два три"], "model": "Embeddings"},
    ).json()
    assert body["object"] == "list" and body["model"] == "Embeddings" and "usage" not in body
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert [d["usage"] for d in body["data"]] == [{"prompt_tokens": 1}, {"prompt_tokens": 2}]
    assert all(len(d["embedding"]) == 1024 for d in body["data"])
