"""YandexGPT for the Multi-LLM Orchestrator.

Installing ``orchestrator-yandexgpt`` registers :class:`YandexGPTProvider` under the name
``"yandexgpt"`` through the ``orchestrator.providers`` entry point::

    from orchestrator import Router
    from orchestrator_yandexgpt import YandexGPTConfig, YandexGPTProvider

    router = Router()
    router.add_provider(YandexGPTProvider(YandexGPTConfig(name="yandex", api_key="...",
                                                          folder_id="b1g...")))

The emulator of the API for offline tests is :mod:`orchestrator_yandexgpt.emulator`.
"""

from __future__ import annotations

from typing import Any

import orchestrator
from orchestrator.pricing import load_price_list
from orchestrator_yandexgpt.config import ENV_VARS, YandexGPTConfig
from orchestrator_yandexgpt.provider import Token, YandexGPTProvider

__all__ = ["ENV_VARS", "Token", "YandexGPTConfig", "YandexGPTProvider", "register_providers"]

#: The vendor's list prices as data (``prices.toml`` here, every figure with its source and
#: date): the router prices synchronous completions with them unless a config overrides.
YandexGPTProvider.prices = load_price_list(__name__)


@orchestrator.hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`YandexGPTProvider` as ``yandexgpt``."""
    register(YandexGPTProvider, name="yandexgpt")
