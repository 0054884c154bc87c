"""The public names are a promise: this fails when one appears or disappears (httpx's
``tests/test_exported_members.py`` does the same)."""

from __future__ import annotations

import importlib

import pytest

import orchestrator

PUBLIC = {
    "orchestrator": [
        "AllProvidersFailedError",
        "AuthenticationError",
        "BaseProvider",
        "BreakerConfig",
        "Chunk",
        "Completion",
        "ConfigurationError",
        "DeadlineExceededError",
        "Embeddings",
        "GenerationParams",
        "InvalidRequestError",
        "InvalidToolCallError",
        "Message",
        "NoProvidersError",
        "OrchestratorError",
        "PluginRegistry",
        "ProviderConfig",
        "ProviderError",
        "ProviderLimits",
        "ProviderSlot",
        "RateLimitError",
        "RequestInfo",
        "ResponseFormat",
        "Router",
        "Strategy",
        "StreamInterruptedError",
        "StructuredOutputError",
        "SyncRouter",
        "Tool",
        "ToolCall",
        "UnsupportedCapabilityError",
        "Usage",
        "UsageEvent",
        "__version__",
        "hookimpl",
    ],
    "orchestrator.providers": [
        "BaseProvider",
        "GenerationParams",
        "MockConfig",
        "MockProvider",
        "ProviderConfig",
    ],
    "orchestrator.events": ["Outcome", "RequestInfo", "UsageCallback", "UsageEvent"],
    "orchestrator.tools": [
        "ResponseFormat",
        "Tool",
        "ToolCallAssembler",
        "ToolChoice",
        "as_response_format",
        "as_tool",
        "new_call_id",
        "parse_arguments",
    ],
    "orchestrator.capabilities": [
        "Capabilities",
        "Capability",
        "EmbeddingSpace",
        "required_capabilities",
    ],
    "orchestrator.sse": ["EventReader", "LineSplitter", "drain", "release"],
    "orchestrator.lazy": ["lazy_exports"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_are_pinned(module: str) -> None:
    assert sorted(importlib.import_module(module).__all__) == sorted(PUBLIC[module])


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_public_name_resolves(module: str) -> None:
    imported = importlib.import_module(module)
    for name in imported.__all__:
        assert getattr(imported, name) is not None


def test_lazy_names_match_all() -> None:
    assert dir(orchestrator) == sorted(orchestrator.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = orchestrator.Nope


def test_lazy_exports_imports_on_first_use_and_keeps_the_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    from orchestrator.lazy import lazy_exports

    package = types.ModuleType("lazy_demo")
    monkeypatch.setitem(sys.modules, "lazy_demo", package)
    getattr_ = lazy_exports("lazy_demo", {"dumps": "json"})
    assert "dumps" not in vars(package)
    import json

    assert getattr_("dumps") is json.dumps
    assert vars(package)["dumps"] is json.dumps  # kept: the next use is a plain attribute
    with pytest.raises(AttributeError, match="'lazy_demo' has no attribute 'loads'"):
        getattr_("loads")
