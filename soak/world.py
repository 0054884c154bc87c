"""The world a soak runs in: three vendor emulators on loopback, a provider for each, a router.

- ``gigachat``: the GigaChat emulator over HTTP (OAuth tokens, SSE);
- ``yandexgpt``: the YandexGPT emulator over HTTP, with an OAuth token exchanged for IAM
  tokens (so token expiry is a fault it meets too; NDJSON streams);
- ``gigachat-b``: a second GigaChat emulator over HTTPS, answering under another name.

Every emulator's answer names it and echoes the prompt, so the soak knows the exact text
(and usage) each one sends for a prompt: a stream that mixed two providers, or ended early
and still looked finished, cannot go unnoticed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from orchestrator import BreakerConfig, Router
from orchestrator.limits import ProviderLimits
from orchestrator.providers.base import BaseProvider
from orchestrator.testing import LoopbackServer
from orchestrator_gigachat import GigaChatProvider
from orchestrator_gigachat import emulator as giga
from orchestrator_yandexgpt import YandexGPTProvider
from orchestrator_yandexgpt import emulator as yandex

if TYPE_CHECKING:
    from orchestrator.state import SharedState

#: Provider settings: fast retries so a run meets many faults quickly.
MAX_RETRIES = 2
BACKOFF_BASE = 0.02
BACKOFF_MAX = 0.5
#: Router settings for the chaos run.
DEADLINE = 4.0
ATTEMPT_TIMEOUT = 1.5
FIRST_CHUNK_TIMEOUT = 1.0
MAX_IN_FLIGHT = 40
BREAKER = BreakerConfig(
    consecutive_failures=8,
    failure_rate=0.5,
    min_samples=20,
    window=5.0,
    cooldown=0.25,
    max_cooldown=1.0,
    half_open_probes=3,
)


@dataclass(frozen=True, slots=True)
class Tokens:
    """Token counts as the vendor reports them."""

    prompt: int
    completion: int
    total: int


@dataclass(eq=False)
class Backend:
    """One vendor emulator served on loopback, and what it answers."""

    name: str
    vendor: str  # "gigachat" | "yandexgpt"
    app: Any
    server: LoopbackServer

    def answer(self, prompt: str) -> str:
        """The full text this emulator sends for a one-message ``prompt``."""
        if self.vendor == "gigachat":
            messages = [{"role": "user", "content": prompt}]
            return giga.answer_for(messages, self.app.answer_prefix)[0]
        # YandexGPT emulator: "Echo: " and the words of the last user message.
        return "Echo: " + " ".join(prompt.split())

    def usage(self, prompt: str) -> Tokens:
        """The usage this emulator reports for ``prompt`` (its documented token counts)."""
        text = self.answer(prompt)
        if self.vendor == "gigachat":
            prompt_tokens = giga.count_tokens(prompt) + 1  # +1 per message, as GigaChat does
            completion = giga.count_tokens(text)
        else:  # one token per word, whitespace attached
            prompt_tokens = len(re.findall(r"\s*\S+", prompt))
            completion = len(re.findall(r"\s*\S+", text))
        return Tokens(prompt_tokens, completion, prompt_tokens + completion)

    def make_provider(self) -> BaseProvider:
        common: dict[str, Any] = {
            "name": self.name,
            "max_retries": MAX_RETRIES,
            "backoff_base": BACKOFF_BASE,
            "backoff_max": BACKOFF_MAX,
            "timeout": 10.0,
        }
        if self.vendor == "gigachat":
            return GigaChatProvider(giga.config_for(self.server, **common))
        return YandexGPTProvider(
            yandex.config_for(self.server, oauth_token=yandex.TEST_OAUTH_TOKEN, **common)
        )

    def reset(self) -> None:
        """Forget scripted faults (and issued tokens: the next call refreshes its token)."""
        self.app.reset()

    @property
    def request_count(self) -> int:
        return int(self.app.request_count)


class World:
    """The three backends on loopback; start/stop them as a unit."""

    def __init__(self) -> None:
        self.backends = [
            _backend("gigachat", "gigachat", giga.GigaChatEmulator(), tls=False),
            _backend("yandexgpt", "yandexgpt", yandex.YandexGPTEmulator(), tls=False),
            _backend(
                "gigachat-b",
                "gigachat",
                giga.GigaChatEmulator(answer_prefix="GigaChat-B emulator"),
                tls=True,
            ),
        ]
        self.by_name = {b.name: b for b in self.backends}

    def start(self) -> None:
        for backend in self.backends:
            backend.server.start()

    def stop(self) -> None:
        for backend in self.backends:
            backend.server.stop()

    def reset(self) -> None:
        for backend in self.backends:
            backend.reset()

    def providers(self) -> dict[str, BaseProvider]:
        """A fresh provider per backend (fresh tokens and per-loop HTTP clients)."""
        return {b.name: b.make_provider() for b in self.backends}

    async def outage(self, backend: Backend, seconds: float) -> None:
        """Stop ``backend``'s server (connections are refused), then serve again on the same
        port after ``seconds``. Runs the blocking stop/start on a worker thread."""
        server = backend.server
        await anyio.to_thread.run_sync(server.stop)
        try:
            await anyio.sleep(seconds)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_restart, server)


def _backend(name: str, vendor: str, app: Any, *, tls: bool) -> Backend:
    return Backend(name, vendor, app, LoopbackServer(app, tls=tls))


def _restart(server: LoopbackServer) -> None:
    if server.tls:
        # stop() removed the certificates; start() makes new ones, which the provider's
        # SSL context (built once) would not trust: keep serving the old ones instead.
        raise RuntimeError("restart a plain-HTTP backend only")
    server.start()


def build_router(
    providers: dict[str, BaseProvider],
    *,
    strategy: Any = "round-robin",
    deadline: float | None = DEADLINE,
    timeout: float | None = ATTEMPT_TIMEOUT,
    first_chunk_timeout: float | None = FIRST_CHUNK_TIMEOUT,
    priorities: dict[str, int] | None = None,
    state: SharedState | None = None,
) -> Router:
    """A router over ``providers`` with the soak's fast breaker and a concurrency limit
    (and ``state`` shared through Redis with ``--redis``)."""
    router = Router(
        strategy,
        deadline=deadline,
        first_chunk_timeout=first_chunk_timeout,
        breaker=BREAKER,
        state=state,
    )
    for name, provider in providers.items():
        router.add_provider(
            provider,
            timeout=timeout,
            limits=ProviderLimits(max_in_flight=MAX_IN_FLIGHT),
            priority=None if priorities is None else priorities[name],
        )
    return router
