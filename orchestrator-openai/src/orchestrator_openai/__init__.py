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

from collections.abc import Callable

import orchestrator
from orchestrator_openai.config import (
    DEFAULT_BASE_URL,
    ENV_VARS,
    YANDEX_BASE_URL,
    OpenAIConfig,
)
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


@orchestrator.hookimpl
def register_providers(register: Callable[..., None]) -> None:
    """Register :class:`OpenAIProvider` as ``openai``."""
    register(OpenAIProvider, name="openai")
