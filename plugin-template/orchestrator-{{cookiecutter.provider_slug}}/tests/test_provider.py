"""Tests of what is particular to this provider (the contract is in test_contract.py):
{{ cookiecutter.provider_name }}."""

import pytest
from orchestrator import GenerationParams, ProviderConfig
from orchestrator.errors import AuthenticationError
from orchestrator.testing import FakeOpenAIServer, LoopbackServer

from {{ cookiecutter.import_name }} import (
    {{ cookiecutter.class_name }},
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_provider(
    server: LoopbackServer,
) -> {{ cookiecutter.class_name }}:
    assert isinstance(server.app, FakeOpenAIServer)
    config = ProviderConfig(
        name="{{ cookiecutter.provider_slug }}",
        api_key=server.app.api_key,
        base_url=f"{server.base_url}/v1",
    )
    return {{ cookiecutter.class_name }}(config)


async def test_params_and_model_are_sent(fake_openai_server: LoopbackServer) -> None:
    app = fake_openai_server.app
    assert isinstance(app, FakeOpenAIServer)
    params = GenerationParams(temperature=0.2, max_tokens=50, top_p=0.9, stop=["\n\n"])
    async with make_provider(fake_openai_server) as provider:
        await provider.generate("Hi", params)
    body = app.requests[-1].body
    assert body["model"] == {{ cookiecutter.class_name }}.DEFAULT_MODEL
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["stop"]) == (
        0.2,
        50,
        0.9,
        ["\n\n"],
    )


async def test_missing_api_key_fails_before_any_request(
    fake_openai_server: LoopbackServer,
) -> None:
    config = ProviderConfig(
        name="{{ cookiecutter.provider_slug }}",
        base_url=fake_openai_server.base_url,
    )
    provider = {{ cookiecutter.class_name }}(config)
    with pytest.raises(AuthenticationError, match="api_key"):
        await provider.generate("Hi")
    assert fake_openai_server.app.request_count == 0
