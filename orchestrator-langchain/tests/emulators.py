"""The vendor emulators as backends of the standard suites: each served over loopback
(real HTTP, the vendor's wire format) behind a Router with that vendor's provider. Each
emulator is an orchestrator.testing.ScriptableModel: its "model" answers as scripted."""

from __future__ import annotations

from scripted import Backend

from orchestrator import BaseProvider, Router
from orchestrator.testing import LoopbackServer, ScriptableModel


def _backend(
    name: str, server: LoopbackServer, provider: BaseProvider, model_override: str
) -> Backend:
    app = server.app
    assert isinstance(app, ScriptableModel), f"the {name} emulator scripts no model"
    app.reset()
    router = Router()
    router.add_provider(provider)
    return Backend(name, router, [app], model_override=model_override)


def openai_backend(server: LoopbackServer) -> Backend:
    from orchestrator_openai import OpenAIProvider
    from orchestrator_openai.emulator import config_for

    provider = OpenAIProvider(config_for(server, max_retries=0))
    # The default model is gpt-4o-mini: the answer names gpt-4.1-mini only when the per-call
    # model reached the wire.
    return _backend("openai", server, provider, "gpt-4.1-mini")


def gigachat_backend(server: LoopbackServer) -> Backend:
    from orchestrator_gigachat import GigaChatProvider
    from orchestrator_gigachat.emulator import config_for

    provider = GigaChatProvider(config_for(server, max_retries=0))
    return _backend("gigachat", server, provider, "GigaChat-2-Max")  # default GigaChat-2


def yandexgpt_backend(server: LoopbackServer) -> Backend:
    from orchestrator_yandexgpt import YandexGPTProvider
    from orchestrator_yandexgpt.emulator import config_for

    provider = YandexGPTProvider(config_for(server, max_retries=0))
    return _backend("yandexgpt", server, provider, "llama")  # default yandexgpt-lite
