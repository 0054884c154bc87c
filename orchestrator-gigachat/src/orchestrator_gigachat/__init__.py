"""Sber GigaChat for the Multi-LLM Orchestrator.

Installing ``orchestrator-gigachat`` registers :class:`GigaChatProvider` under the name
``"gigachat"`` through the ``orchestrator.providers`` entry point (this module holds the
hook implementation), so ``create_provider("gigachat", ...)``, config files and
``from orchestrator.providers import GigaChatProvider`` all find it::

    from orchestrator import Router
    from orchestrator_gigachat import GigaChatConfig, GigaChatProvider

    router = Router(strategy="round-robin")
    router.add_provider(GigaChatProvider(GigaChatConfig(api_key=AUTHORIZATION_KEY)))

``orchestrator_gigachat.emulator`` (extra ``emulator``) is a protocol-faithful GigaChat API
to test against offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orchestrator
from orchestrator.lazy import lazy_exports

if TYPE_CHECKING:
    from orchestrator_gigachat.auth import AccessToken
    from orchestrator_gigachat.config import ENV_VARS, SCOPES, GigaChatConfig
    from orchestrator_gigachat.provider import GigaChatModel, GigaChatProvider, TokenCount

__all__ = [
    "ENV_VARS",
    "SCOPES",
    "AccessToken",
    "GigaChatConfig",
    "GigaChatModel",
    "GigaChatProvider",
    "TokenCount",
    "register_providers",
]

_LAZY = {
    "AccessToken": "orchestrator_gigachat.auth",
    "ENV_VARS": "orchestrator_gigachat.config",
    "SCOPES": "orchestrator_gigachat.config",
    "GigaChatConfig": "orchestrator_gigachat.config",
    "GigaChatModel": "orchestrator_gigachat.provider",
    "GigaChatProvider": "orchestrator_gigachat.provider",
    "TokenCount": "orchestrator_gigachat.provider",
}


@orchestrator.hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`GigaChatProvider` as ``gigachat`` (named: imported on first use)."""
    register(
        "orchestrator_gigachat.provider:GigaChatProvider",
        name="gigachat",
        emulator="orchestrator_gigachat.emulator:GigaChatEmulator",
    )


# The names above are imported on first use: loading the plugin (what every registry, and
# `orchestrator providers`, does) imports neither the provider nor pydantic nor httpx.
__getattr__ = lazy_exports(__name__, _LAZY)
