"""The provider class from the custom-provider guide, verbatim, works in a Router."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import pytest

from orchestrator import Router
from orchestrator.errors import AllProvidersFailedError, AuthenticationError
from orchestrator.providers import ProviderConfig

pytestmark = pytest.mark.anyio


def make(guide_module: ModuleType, server_url: str, name: str = "your-provider") -> object:
    config = ProviderConfig(name=name, api_key="guide-secret-key", model="your-model")
    provider = guide_module.YourProvider(config)
    provider.config.base_url = server_url  # the guide's own assignment style
    return provider


async def test_guide_provider_routes_over_real_http(guide_api, guide_module) -> None:
    api, server = guide_api
    router = Router(strategy="round-robin")
    provider = make(guide_module, server.base_url)
    router.add_provider(provider)  # type: ignore[arg-type]
    async with provider:  # type: ignore[attr-defined]
        assert await router.route("Hello, world!") == "guide says: Hello, world!"
        seen = api.requests[-1]
        assert seen["path"] == "/completions"
        assert seen["headers"]["authorization"] == "Bearer guide-secret-key"
        assert seen["json"] == {
            "prompt": "Hello, world!",
            "model": "your-model",
        }


async def test_guide_provider_every_router_call(guide_api, guide_module) -> None:
    _, server = guide_api
    router = Router()
    provider = make(guide_module, server.base_url)
    router.add_provider(provider)  # type: ignore[arg-type]
    async with provider:  # type: ignore[attr-defined]
        completion = await router.chat(
            [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}]
        )
        assert completion.text == "guide says: System: Be brief\n\nUser: Hi\n\nAssistant:"
        assert completion.provider == "your-provider"
        assert completion.latency > 0
        text = "".join([t async for t in router.route_stream("streamed")])
        assert text == "guide says: streamed"
        params_reply = await router.route("p", {"temperature": 0.2, "max_tokens": 5})
        assert params_reply == "guide says: p"
        assert await router.health_check() == {"your-provider": True}
        assert await provider.health_check() is True  # type: ignore[attr-defined]


async def test_guide_provider_errors_fail_over(guide_api, guide_module) -> None:
    api, server = guide_api
    router = Router(strategy="first-available")
    provider = make(guide_module, server.base_url)
    router.add_provider(provider)  # type: ignore[arg-type]
    api.status = 401
    try:
        async with provider:  # type: ignore[attr-defined]
            with pytest.raises(AllProvidersFailedError) as info:
                await router.route("x")
    finally:
        api.status = 200
    (attempt,) = info.value.attempts
    assert isinstance(attempt.error, AuthenticationError)
    assert attempt.error.provider == "your-provider"
    assert "guide-secret-key" not in str(info.value)


def test_guide_import_paths(guide_module) -> None:
    from orchestrator.providers import YourProvider  # type: ignore[attr-defined]
    from orchestrator.providers.base import TimeoutError  # noqa: A004

    assert YourProvider is guide_module.YourProvider
    assert issubclass(TimeoutError, builtins_timeout())


def builtins_timeout() -> type[BaseException]:
    import builtins

    return builtins.TimeoutError


def test_guide_config_rejects_custom_field() -> None:
    config = ProviderConfig(name="provider", api_key="key", timeout=60, max_retries=5)
    with pytest.raises(ValueError, match="custom_field"):
        config.custom_field = "value"  # type: ignore[attr-defined]


def test_guide_provider_single_loop_program(guide_api, guide_module) -> None:
    """The guide keeps its own client: fine when the program runs one event loop."""
    _, server = guide_api

    async def main() -> list[str]:
        router = Router()
        provider = make(guide_module, server.base_url)
        router.add_provider(provider)  # type: ignore[arg-type]
        async with provider:  # type: ignore[attr-defined]
            return [await router.route(f"q{i}") for i in range(5)]

    assert asyncio.run(main()) == [f"guide says: q{i}" for i in range(5)]


def test_router_from_threads_with_asyncio_run() -> None:
    """Bots call asyncio.run(router.route(...)) from worker threads: all 20 succeed."""
    from orchestrator.providers import MockProvider

    router = Router()
    router.add_provider(MockProvider(ProviderConfig(name="a")))
    router.add_provider(MockProvider(ProviderConfig(name="b")))
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda i: asyncio.run(router.route(f"n{i}")), range(20)))
    assert results == [f"Mock response to: n{i}" for i in range(20)]
