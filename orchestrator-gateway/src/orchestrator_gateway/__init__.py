"""An OpenAI-compatible HTTP gateway over the Multi-LLM Orchestrator's router.

``orchestrator serve --config orchestrator.toml`` runs it; :func:`create_app` gives the ASGI
app to mount in your own server. See docs/deploying.md.
"""

from __future__ import annotations

from orchestrator_gateway.app import Gateway, Target, create_app
from orchestrator_gateway.config import GatewaySettings, KeySettings, VirtualModel, hash_key
from orchestrator_gateway.errors import GatewayError
from orchestrator_gateway.keys import Client, KeyState, LocalKeyState, SharedKeyState

__all__ = [
    "Client",
    "Gateway",
    "GatewayError",
    "GatewaySettings",
    "KeySettings",
    "KeyState",
    "LocalKeyState",
    "SharedKeyState",
    "Target",
    "VirtualModel",
    "create_app",
    "hash_key",
]
