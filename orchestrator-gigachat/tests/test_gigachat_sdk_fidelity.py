"""Fidelity check: the official ``gigachat`` SDK, pointed at the emulator, works.

The SDK is a test-only dependency (extra ``test`` of this package); without it the test
is skipped.
"""

from __future__ import annotations

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
