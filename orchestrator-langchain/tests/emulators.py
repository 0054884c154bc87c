"""The vendor emulators as backends of the standard suites: each served over loopback
(real HTTP, the vendor's wire format) behind a Router with that vendor's provider."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from scripted import Backend

from orchestrator import Router
from orchestrator.testing import LoopbackServer


class Scripter:
    """orchestrator.testing.ScriptableModel (``call_tools_next((name, arguments), ...)``,
    ``reply_next(text)``) over an emulator, whichever spelling of it the emulator has."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def call_tools_next(self, *calls: tuple[str, Mapping[str, Any]], times: int = 1) -> None:
        app = self.app
        if type(app).__module__.startswith("orchestrator_openai"):
            from orchestrator_openai.emulator import CallTool  # its calls are CallTool objects

            app.call_tools_next(*[CallTool(n, dict(a)) for n, a in calls], times=times)
        elif hasattr(app, "call_tools_next"):
            app.call_tools_next(*[(n, dict(a)) for n, a in calls], times=times)
        else:  # GigaChat's own spelling: one function call per answer
            ((name, arguments),) = calls
            for _ in range(times):
                app.call_function_next(name, dict(arguments))

    def reply_next(self, text: str, *, times: int = 1) -> None:
        reply = getattr(self.app, "reply_next", None) or self.app.answer_next
        reply(text, times=times)


def _backend(
    name: str, server: LoopbackServer, provider: Callable[..., Any], model_override: str
) -> Backend:
    server.app.reset()
    router = Router()
    router.add_provider(provider)
    return Backend(name, router, [Scripter(server.app)], model_override=model_override)


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
