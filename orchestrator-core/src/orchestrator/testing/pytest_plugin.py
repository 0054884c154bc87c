"""pytest plugin of multi-llm-orchestrator-core (registered through the ``pytest11`` entry point).

It must stay cheap to import: pytest loads it in every project that installs
multi-llm-orchestrator-core, so everything heavy is imported inside the fixtures.

Fixtures:

- ``loopback_server`` — a factory: ``loopback_server(app, tls=False)`` serves an ASGI app on
  a real loopback socket and stops it after the test.
- ``fake_openai_server`` — a started server running a fresh
  :class:`~orchestrator.testing.fake.FakeOpenAIServer` (``server.app`` scripts it).
- ``plugin_registry`` — a ``PluginRegistry(entry_points=False)``: the built-in providers and
  strategies only, none of the installed plugins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from orchestrator.plugins import PluginRegistry
    from orchestrator.testing.server import LoopbackServer


@pytest.fixture
def loopback_server() -> Iterator[Callable[..., LoopbackServer]]:
    """Factory: ``loopback_server(app, tls=False)`` -> a started ``LoopbackServer``."""
    from orchestrator.testing.server import LoopbackServer

    started: list[LoopbackServer] = []

    def serve(app: Any, *, tls: bool = False) -> LoopbackServer:
        server = LoopbackServer(app, tls=tls).start()
        started.append(server)
        return server

    yield serve
    for server in reversed(started):
        server.stop()


@pytest.fixture
def fake_openai_server(
    loopback_server: Callable[..., LoopbackServer],
) -> LoopbackServer:
    """A fresh fake OpenAI-compatible API on loopback; script it through ``.app``."""
    from orchestrator.testing.fake import FakeOpenAIServer

    return loopback_server(FakeOpenAIServer())


@pytest.fixture
def plugin_registry() -> PluginRegistry:
    """A plugin registry with the built-ins only (no installed plugins are loaded)."""
    from orchestrator.plugins import PluginRegistry

    return PluginRegistry(entry_points=False)
