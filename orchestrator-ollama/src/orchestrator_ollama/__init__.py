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

from typing import TYPE_CHECKING, Any

import orchestrator
from orchestrator.lazy import lazy_exports

if TYPE_CHECKING:
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

_LAZY = {
    "DEFAULT_BASE_URL": "orchestrator_ollama.config",
    "ENV_VARS": "orchestrator_ollama.config",
    "OllamaConfig": "orchestrator_ollama.config",
    "parse_host": "orchestrator_ollama.config",
    "OllamaModel": "orchestrator_ollama.provider",
    "OllamaProvider": "orchestrator_ollama.provider",
}


@orchestrator.hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`OllamaProvider` as ``ollama`` (named: imported on first use)."""
    register(
        "orchestrator_ollama.provider:OllamaProvider",
        name="ollama",
        emulator="orchestrator_ollama.emulator:OllamaEmulator",
    )


# The names above are imported on first use: loading the plugin (what every registry, and
# `orchestrator providers`, does) imports neither the provider nor pydantic nor httpx.
__getattr__ = lazy_exports(__name__, _LAZY)
