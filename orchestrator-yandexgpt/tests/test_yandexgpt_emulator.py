"""The emulator's wire shapes, checked with a plain HTTP client (what any SDK would see)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from orchestrator.testing import LoopbackServer
from orchestrator.testing.scripting import ScriptableApp
from orchestrator_yandexgpt.emulator import (
    TEST_API_KEY,
    TEST_FOLDER_ID,
    TEST_OAUTH_TOKEN,
    YandexGPTEmulator,
)

URI = f"gpt://{TEST_FOLDER_ID}/yandexgpt-lite/latest"
KEY = {"Authorization": f"Api-Key {TEST_API_KEY}"}
BODY = {
    "modelUri": URI,
    "completionOptions": {"stream": False, "temperature": 0.3, "maxTokens": "50"},
    "messages": [{"role": "user", "text": "ping pong"}],
}


@pytest.fixture
def client(server: LoopbackServer, emulator: YandexGPTEmulator) -> Any:
    with httpx.Client(base_url=server.base_url, headers=KEY) as made:
        yield made


def test_is_a_scriptable_app() -> None:
    assert isinstance(YandexGPTEmulator(), ScriptableApp)


def test_completion_shape(client: httpx.Client, emulator: YandexGPTEmulator) -> None:
    response = client.post("/foundationModels/v1/completion", json=BODY)
    assert response.status_code == 200
    assert response.json() == {
        "result": {
            "alternatives": [
                {
                    "message": {"role": "assistant", "text": "Echo: ping pong"},
                    "status": "ALTERNATIVE_STATUS_FINAL",
                }
            ],
            "usage": {
                "inputTextTokens": "2",
                "completionTokens": "3",
                "totalTokens": "5",
                "completionTokensDetails": {"reasoningTokens": "0"},
            },
            "modelVersion": emulator.model_version,
        }
    }
    assert emulator.request_count == 1


def test_stream_is_ndjson_with_cumulative_text(client: httpx.Client) -> None:
    body = {**BODY, "completionOptions": {"stream": True}}
    response = client.post("/foundationModels/v1/completion", json=body)
    lines = [json.loads(line) for line in response.text.splitlines()]
    texts = [line["result"]["alternatives"][0]["message"]["text"] for line in lines]
    statuses = [line["result"]["alternatives"][0]["status"] for line in lines]
    assert texts == ["Echo:", "Echo: ping", "Echo: ping pong"]
    assert statuses == ["ALTERNATIVE_STATUS_PARTIAL"] * 2 + ["ALTERNATIVE_STATUS_FINAL"]


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({**BODY, "modelUri": "gpt://x"}, 400, "Invalid modelUri"),
        ({**BODY, "modelUri": f"gpt://{TEST_FOLDER_ID}/nope/latest"}, 404, "not found"),
        ({**BODY, "modelUri": "gpt://b1gother/yandexgpt/latest"}, 403, "denied"),
        ({**BODY, "messages": []}, 400, "at least one"),
        ({**BODY, "messages": [{"role": "bot", "text": "x"}]}, 400, "role must be one of"),
        ({**BODY, "completionOptions": {"temperature": 1.5}}, 400, "temperature"),
        ({**BODY, "completionOptions": {"maxTokens": "many"}}, 400, "maxTokens"),
        ({**BODY, "completionOptions": "fast"}, 400, "completionOptions"),
    ],
)
def test_validation_errors(
    client: httpx.Client, body: dict[str, Any], status: int, text: str
) -> None:
    response = client.post("/foundationModels/v1/completion", json=body)
    assert response.status_code == status
    assert text in response.json()["message"]


def test_error_shapes(client: httpx.Client, emulator: YandexGPTEmulator) -> None:
    emulator.fail_next(429, retry_after=3)
    response = client.post("/foundationModels/v1/completion", json=BODY)
    body = response.json()
    assert response.headers["retry-after"] == "3"
    assert body["code"] == 8
    assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.RequestInfo"
    emulator.error_shape = "llm"
    try:
        emulator.fail_next(401)
        body = client.post("/foundationModels/v1/completion", json=BODY).json()
    finally:
        emulator.error_shape = "grpc"
    assert body["error"]["grpcCode"] == 16
    assert body["error"]["httpCode"] == 401
    assert body["error"]["httpStatus"] == "Unauthorized"


def test_auth_checks(server: LoopbackServer, emulator: YandexGPTEmulator) -> None:
    url = server.base_url + "/foundationModels/v1/completion"
    assert httpx.post(url, json=BODY).status_code == 401
    bearer = {"Authorization": f"Bearer {TEST_API_KEY}"}
    assert httpx.post(url, json=BODY, headers=bearer).status_code == 401
    wrong_folder = {**KEY, "x-folder-id": "b1gother"}
    assert httpx.post(url, json=BODY, headers=wrong_folder).status_code == 403
    assert httpx.post(url, content=b"[]", headers=KEY).status_code == 400


def test_iam_exchange(server: LoopbackServer, emulator: YandexGPTEmulator) -> None:
    url = server.base_url + "/iam/v1/tokens"
    good = httpx.post(url, json={"yandexPassportOauthToken": TEST_OAUTH_TOKEN}).json()
    assert good["iamToken"].startswith("t1.")
    assert good["expiresAt"].endswith("Z")
    assert httpx.post(url, json={"yandexPassportOauthToken": "y0_bad"}).status_code == 401
    assert httpx.post(url, json={}).status_code == 400
    assert httpx.post(url, content=b"nope").status_code == 400
    assert httpx.post(url, json={"jwt": "a.b.c"}).status_code == 401
    assert httpx.post(url, json={"jwt": 5}).status_code == 401
    assert emulator.iam_request_count == 6
    assert emulator.request_count == 0  # IAM calls are not API calls


def test_jwt_checks(server: LoopbackServer, emulator: YandexGPTEmulator) -> None:
    import jwt as pyjwt
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = json.loads(emulator.create_service_account_key("ajeSA"))
    private = load_pem_private_key(key["private_key"].split("\n", 1)[1].encode(), None)
    url = server.base_url + "/iam/v1/tokens"

    def exchange(claims: dict[str, Any], kid: str = key["id"]) -> httpx.Response:
        token = pyjwt.encode(claims, private, algorithm="PS256", headers={"kid": kid})  # type: ignore[arg-type]
        return httpx.post(url, json={"jwt": token})

    aud = "https://iam.api.cloud.yandex.net/iam/v1/tokens"
    import time

    now = int(time.time())
    assert exchange({"iss": "ajeSA", "aud": aud, "iat": now, "exp": now + 60}).status_code == 200
    assert exchange({"iss": "other", "aud": aud, "iat": now, "exp": now + 60}).status_code == 401
    assert exchange({"iss": "ajeSA", "aud": "x", "iat": now, "exp": now + 60}).status_code == 401
    long = {"iss": "ajeSA", "aud": aud, "iat": now, "exp": now + 7200}
    assert "3600" in exchange(long).json()["message"]
    assert (
        exchange({"iss": "ajeSA", "aud": aud, "iat": now, "exp": now + 60}, "nokey").status_code
        == 401
    )


def test_operations(client: httpx.Client, emulator: YandexGPTEmulator) -> None:
    operation = client.post("/foundationModels/v1/completionAsync", json=BODY).json()
    assert operation["done"] is False
    assert operation["description"] == "Async GPT Completion"
    first = client.get(f"/operations/{operation['id']}").json()
    assert first["done"] is False
    done = client.get(f"/operations/{operation['id']}").json()
    assert done["done"] is True
    assert done["response"]["@type"].endswith("CompletionResponse")
    assert done["response"]["alternatives"][0]["message"]["text"] == "Echo: ping pong"
    assert "result" not in done["response"]
    assert client.get("/operations/unknown").status_code == 404


def test_tokenize_and_embeddings(client: httpx.Client) -> None:
    tokens = client.post(
        "/foundationModels/v1/tokenize", json={"modelUri": URI, "text": "a b"}
    ).json()
    assert [t["text"] for t in tokens["tokens"]] == ["a", " b"]
    assert all(isinstance(t["id"], str) for t in tokens["tokens"])
    assert client.post("/foundationModels/v1/tokenize", json={"modelUri": URI}).status_code == 400
    emb_uri = f"emb://{TEST_FOLDER_ID}/text-search-doc/latest"
    embedding = client.post(
        "/foundationModels/v1/textEmbedding", json={"modelUri": emb_uri, "text": "a b"}
    ).json()
    assert embedding["numTokens"] == "2"
    assert len(embedding["embedding"]) == 256
    for body, status in [
        ({"modelUri": "emb://x"}, 400),
        ({"modelUri": "emb://b1gother/text-search-doc/latest", "text": "a"}, 403),
        ({"modelUri": emb_uri}, 400),
    ]:
        assert client.post("/foundationModels/v1/textEmbedding", json=body).status_code == status


def test_latency_applies_to_api_calls(client: httpx.Client, emulator: YandexGPTEmulator) -> None:
    emulator.latency = 0.01
    assert client.post("/foundationModels/v1/completion", json=BODY).status_code == 200


STREAM = {**BODY, "completionOptions": {"stream": True}}


def test_break_next_stream_drops_the_connection(
    client: httpx.Client, emulator: YandexGPTEmulator
) -> None:
    emulator.break_next_stream(after_chunks=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/foundationModels/v1/completion", json=STREAM)
    assert client.post("/foundationModels/v1/completion", json=STREAM).status_code == 200


def test_wrong_shape_plain_and_streamed(client: httpx.Client, emulator: YandexGPTEmulator) -> None:
    emulator.wrong_shape_next()
    response = client.post("/foundationModels/v1/completion", json=BODY)
    assert response.status_code == 200
    assert response.json() == {"result": {"alternatives": [None]}}
    emulator.wrong_shape_next_stream({"result": "text"}, after_chunks=1)
    lines = [
        json.loads(line)
        for line in client.post("/foundationModels/v1/completion", json=STREAM).text.splitlines()
    ]
    assert lines[1] == {"result": "text"}
    final = lines[-1]["result"]["alternatives"][0]
    assert final["message"]["text"] == "Echo: ping pong"
    assert final["status"] == "ALTERNATIVE_STATUS_FINAL"


def test_stall_next_delays_one_call(client: httpx.Client, emulator: YandexGPTEmulator) -> None:
    emulator.stall_next(3.0)
    with pytest.raises(httpx.ReadTimeout):
        client.post("/foundationModels/v1/completion", json=BODY, timeout=0.1)
    assert client.post("/foundationModels/v1/completion", json=BODY).status_code == 200
