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

from collections.abc import Callable

import orchestrator
from orchestrator.pricing import load_price_list
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

#: The vendor's list prices as data (``prices.toml`` here, every figure with its source and
#: date): none for GigaChat today, so a missing price is reported instead of guessed.
GigaChatProvider.prices = load_price_list(__name__)


@orchestrator.hookimpl
def register_providers(register: Callable[..., None]) -> None:
    """Register :class:`GigaChatProvider` as ``gigachat``."""
    register(GigaChatProvider, name="gigachat")
