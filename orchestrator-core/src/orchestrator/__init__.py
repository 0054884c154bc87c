"""Multi-LLM Orchestrator: one interface over GigaChat, YandexGPT and any provider plugin,
with retries, failover, circuit breaking, streaming that never mixes providers, and cost.

    from orchestrator import Router
    from orchestrator.providers import MockProvider, ProviderConfig

    router = Router(strategy="round-robin")
    router.add_provider(MockProvider(ProviderConfig(name="mock")))
    print(await router.route("Hello"))

Names are imported lazily: ``import orchestrator`` loads no plugin and no HTTP client.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from orchestrator import _logging
from orchestrator.hookspecs import hookimpl
from orchestrator.lazy import lazy_exports

if TYPE_CHECKING:
    from orchestrator.config import ProviderConfig
    from orchestrator.errors import (
        AllProvidersFailedError,
        AuthenticationError,
        ConfigurationError,
        DeadlineExceededError,
        InvalidRequestError,
        InvalidToolCallError,
        NoProvidersError,
        OrchestratorError,
        ProviderError,
        RateLimitError,
        StreamInterruptedError,
        StructuredOutputError,
        UnsupportedCapabilityError,
    )
    from orchestrator.events import RequestInfo, UsageEvent
    from orchestrator.health import BreakerConfig, ProviderSlot
    from orchestrator.limits import ProviderLimits
    from orchestrator.plugins import PluginRegistry
    from orchestrator.providers.base import BaseProvider
    from orchestrator.router import Router
    from orchestrator.strategies import Strategy
    from orchestrator.sync import SyncRouter
    from orchestrator.tools import ResponseFormat, Tool
    from orchestrator.types import (
        Chunk,
        Completion,
        Embeddings,
        GenerationParams,
        Message,
        ToolCall,
        Usage,
    )

__version__ = "0.1.0"

#: Where the documentation lives (user-facing messages point here, not at repository paths).
DOCS_URL = "https://github.com/multi-llm-orchestrator/orchestrator/tree/main/docs"

# Silent unless asked: a NullHandler, and ORCHESTRATOR_LOG=debug|info for stderr output.
_logging.install(os.environ.get(_logging.ENV_VAR))

__all__ = [
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
]

_LAZY = {
    "Router": "orchestrator.router",
    "SyncRouter": "orchestrator.sync",
    "BaseProvider": "orchestrator.providers.base",
    "ProviderConfig": "orchestrator.config",
    "PluginRegistry": "orchestrator.plugins",
    "BreakerConfig": "orchestrator.health",
    "ProviderSlot": "orchestrator.health",
    "ProviderLimits": "orchestrator.limits",
    "Strategy": "orchestrator.strategies",
    "RequestInfo": "orchestrator.events",
    "UsageEvent": "orchestrator.events",
    "Chunk": "orchestrator.types",
    "Completion": "orchestrator.types",
    "GenerationParams": "orchestrator.params",
    "Message": "orchestrator.types",
    "Usage": "orchestrator.types",
    "ToolCall": "orchestrator.types",
    "Embeddings": "orchestrator.types",
    "Tool": "orchestrator.tools",
    "ResponseFormat": "orchestrator.tools",
    **dict.fromkeys(
        (
            "AllProvidersFailedError",
            "AuthenticationError",
            "ConfigurationError",
            "DeadlineExceededError",
            "InvalidRequestError",
            "InvalidToolCallError",
            "NoProvidersError",
            "OrchestratorError",
            "ProviderError",
            "RateLimitError",
            "StreamInterruptedError",
            "StructuredOutputError",
            "UnsupportedCapabilityError",
        ),
        "orchestrator.errors",
    ),
}


__getattr__ = lazy_exports(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(__all__)
