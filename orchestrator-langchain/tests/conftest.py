"""Fixtures of the LangChain suites (run by `nox -s langchain`, pytest-asyncio in auto mode)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from scripted import Backend, ScriptedConfig, ScriptedProvider

from orchestrator import Router
from orchestrator_langchain import _runtime


def release(router: Router) -> None:
    """Stop the background loop that served ``router``'s synchronous calls, if one did."""
    runner = _runtime._sync_routers.pop(router, None)
    if runner is not None:
        runner.close()


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider(ScriptedConfig(name="scripted"))


@pytest.fixture
def router(provider: ScriptedProvider) -> Iterator[Router]:
    router = Router()
    router.add_provider(provider)
    yield router
    release(router)


@pytest.fixture
def backend(router: Router, provider: ScriptedProvider) -> Backend:
    return Backend("scripted", router, [provider], model_override="scripted-2")
