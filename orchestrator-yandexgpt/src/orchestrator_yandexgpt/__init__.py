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

from typing import TYPE_CHECKING, Any

import orchestrator
from orchestrator.lazy import lazy_exports

if TYPE_CHECKING:
    from orchestrator_yandexgpt.config import ENV_VARS, YandexGPTConfig
    from orchestrator_yandexgpt.provider import Token, YandexGPTProvider

__all__ = ["ENV_VARS", "Token", "YandexGPTConfig", "YandexGPTProvider", "register_providers"]

_LAZY = {
    "ENV_VARS": "orchestrator_yandexgpt.config",
    "YandexGPTConfig": "orchestrator_yandexgpt.config",
    "Token": "orchestrator_yandexgpt.provider",
    "YandexGPTProvider": "orchestrator_yandexgpt.provider",
}


@orchestrator.hookimpl
def register_providers(register: Any) -> None:
    """Register :class:`YandexGPTProvider` as ``yandexgpt`` (named: imported on first use)."""
    register(
        "orchestrator_yandexgpt.provider:YandexGPTProvider",
        name="yandexgpt",
        emulator="orchestrator_yandexgpt.emulator:YandexGPTEmulator",
    )


# The names above are imported on first use: loading the plugin (what every registry, and
# `orchestrator providers`, does) imports neither the provider nor pydantic nor httpx.
__getattr__ = lazy_exports(__name__, _LAZY)
