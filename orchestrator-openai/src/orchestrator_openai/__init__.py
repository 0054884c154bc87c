"""OpenAI, and any OpenAI-compatible server, for the Multi-LLM Orchestrator.

Installing ``orchestrator-openai`` registers :class:`OpenAIProvider` under the name
``"openai"`` through the ``orchestrator.providers`` entry point (this module holds the hook
implementation), so ``create_provider("openai", ...)``, config files and
``from orchestrator.providers import OpenAIProvider`` all find it::

    from orchestrator import Router
    from orchestrator_openai import OpenAIConfig, OpenAIProvider

    router = Router(strategy="round-robin")
    router.add_provider(OpenAIProvider(OpenAIConfig(api_key=OPENAI_API_KEY)))
    router.add_provider(OpenAIProvider(OpenAIConfig(name="vllm", base_url="http://gpu:8000/v1",
                                                    model="Qwen/Qwen2.5-7B-Instruct")))

``orchestrator_openai.emulator`` (extra ``emulator``) is an OpenAI API emulator the official
``openai`` client accepts, to test against offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orchestrator
from orchestrator.lazy import lazy_exports

if TYPE_CHECKING:
    from orchestrator_openai.config import DEFAULT_BASE_URL, ENV_VARS, YANDEX_BASE_URL, OpenAIConfig
    from orchestrator_openai.provider import OpenAIModel, OpenAIProvider

__all__ = [
    "DEFAULT_BASE_URL",
    "ENV_VARS",
    "YANDEX_BASE_URL",
    "OpenAIConfig",
    "OpenAIModel",
    "OpenAIProvider",
    "register_providers",
]

_LAZY = {
    "DEFAULT_BASE_URL": "orchestrator_openai.config",
    "ENV_VARS": "orchestrator_openai.config",
    "YANDEX_BASE_URL": "orchestrator_openai.config",
    "OpenAIConfig": "orchestrator_openai.config",
    "OpenAIModel": "orchestrator_openai.provider",
    "OpenAIProvider": "orchestrator_openai.provider",
}


@orchestrator.hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`OpenAIProvider` as ``openai`` (named: imported on first use)."""
    register(
        "orchestrator_openai.provider:OpenAIProvider",
        name="openai",
        emulator="orchestrator_openai.emulator:OpenAIEmulator",
    )


# The names above are imported on first use: loading the plugin (what every registry, and
# `orchestrator providers`, does) imports neither the provider nor pydantic nor httpx.
__getattr__ = lazy_exports(__name__, _LAZY)
