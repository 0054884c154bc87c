"""``on_attempt_start`` receives the provider's slot and ``on_attempt_success`` the attempt's
Completion (what telemetry plugins read: model, server, usage, vendor request id); hooks
written before these parameters existed keep working."""

from __future__ import annotations

from typing import Any

import pytest

import orchestrator
from orchestrator import Router
from orchestrator.health import ProviderSlot
from orchestrator.plugins import PluginRegistry
from orchestrator.providers.mock import MockConfig, MockProvider
from orchestrator.types import Completion

pytestmark = pytest.mark.anyio


class Reader:
    def __init__(self) -> None:
        self.slots: list[ProviderSlot] = []
        self.results: list[Completion] = []
        self.old_style: list[str] = []

    @orchestrator.hookimpl
    def on_attempt_start(self, provider: str, slot: ProviderSlot) -> None:
        assert slot.name == provider
        self.slots.append(slot)

    @orchestrator.hookimpl
    def on_attempt_success(self, provider: str, result: Completion) -> None:
        self.results.append(result)


class OldStyle:
    @orchestrator.hookimpl
    def on_attempt_success(self, provider: str, attempt: int, latency: float) -> None:
        self.seen = (provider, attempt)


def router_with(*plugins: Any) -> Router:
    registry = PluginRegistry(entry_points=False)
    for plugin in plugins:
        registry.register_plugin(plugin)
    return Router(registry=registry)


async def test_chat_hooks_get_the_slot_and_the_completion() -> None:
    reader, old = Reader(), OldStyle()
    router = router_with(reader, old)
    router.add_provider(MockProvider(MockConfig(name="m")))
    completion = await router.chat("hello")
    assert reader.slots == router.slots
    [result] = reader.results
    assert result is completion  # the very Completion the caller gets
    assert old.seen == ("m", 1)


async def test_stream_success_gets_the_assembled_completion() -> None:
    reader = Reader()
    router = router_with(reader)
    router.add_provider(MockProvider(MockConfig(name="m")))
    chunks = [c async for c in router.chat_stream("hello there")]
    [result] = reader.results
    assert result.text == "".join(c.delta for c in chunks)
    assert result.provider == "m"
    assert result.model == "mock-1"
    assert result.finish_reason == "stop"
    assert result.usage == chunks[-1].usage
    assert result.request_id == chunks[-1].request_id
    assert result.latency > 0
