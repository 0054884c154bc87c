"""Ollama for the Multi-LLM Orchestrator, over its native API.

Installing ``orchestrator-ollama`` registers :class:`OllamaProvider` under the name
``"ollama"`` through the ``orchestrator.providers`` entry point (this module holds the hook
implementation), so ``create_provider("ollama", ...)``, config files and
``from orchestrator.providers import OllamaProvider`` all find it::

    from orchestrator import Router
    from orchestrator_ollama import OllamaConfig, OllamaProvider

    router = Router(strategy="first-available")
    router.add_provider(OllamaProvider(OllamaConfig(model="llama3.2")))

``orchestrator_ollama.emulator`` (extra ``emulator``) is an Ollama API emulator the official
``ollama`` client accepts, to test against offline.
"""

from __future__ import annotations

from collections.abc import Callable

import orchestrator
from orchestrator_ollama.config import DEFAULT_BASE_URL, ENV_VARS, OllamaConfig, parse_host
from orchestrator_ollama.provider import OllamaModel, OllamaProvider

__all__ = [
    "DEFAULT_BASE_URL",
    "ENV_VARS",
    "OllamaConfig",
    "OllamaModel",
    "OllamaProvider",
    "parse_host",
    "register_providers",
]


@orchestrator.hookimpl
def register_providers(register: Callable[..., None]) -> None:
    """Register :class:`OllamaProvider` as ``ollama``."""
    register(OllamaProvider, name="ollama")
