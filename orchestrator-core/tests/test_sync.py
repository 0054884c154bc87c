"""SyncRouter: one persistent background loop, usable from anywhere, closed cleanly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

import anyio
import pytest

from orchestrator import Router
from orchestrator.errors import AllProvidersFailedError, StreamInterruptedError
from orchestrator.plugins import PluginRegistry
from orchestrator.providers import BaseProvider, GenerationParams, ProviderConfig
from orchestrator.providers.mock import MockConfig, MockProvider
from orchestrator.sync import SyncRouter
from orchestrator.types import Chunk, Completion, Message

CtrlC = Callable[[threading.Event], AbstractContextManager[None]]


def make_router(registry: PluginRegistry, **settings: Any) -> Router:
    router = Router(registry=registry)
    router.add_provider(MockProvider(MockConfig(name="m", **settings)))
    return router


@pytest.fixture
def sync(registry: PluginRegistry) -> Any:
    with SyncRouter(make_router(registry)) as sync:
        yield sync


def test_route_chat_stream(sync: SyncRouter) -> None:
    assert sync.route("hello") == "Mock response to: hello"
    completion = sync.chat([{"role": "user", "content": "hi"}], {"temperature": 0.1})
    assert isinstance(completion, Completion) and completion.provider == "m"
    assert "".join(sync.stream("one two three")) == "Mock response to: one two three"
    chunks = list(sync.chat_stream("abc"))
    assert all(isinstance(c, Chunk) for c in chunks) and chunks[-1].finish_reason == "stop"
    assert sync.health_check() == {"m": True}
    stats = sync.stats()
    assert stats["providers"]["m"]["successes"] == 4


def test_one_loop_thread_for_every_call(sync: SyncRouter) -> None:
    sync.route("first")
    loop = sync._loop
    assert loop is not None
    for _ in range(5):
        sync.route("again")
    assert sync._loop is loop
    assert [t.name for t in threading.enumerate()].count("orchestrator-sync-loop") >= 1


def test_errors_propagate(registry: PluginRegistry) -> None:
    router = make_router(registry, mode="server_error", max_retries=0)
    with SyncRouter(router) as sync, pytest.raises(AllProvidersFailedError):
        sync.route("x")


def test_stream_error_propagates_with_partial_text(registry: PluginRegistry) -> None:
    router = make_router(registry, mode="stream_failure", fail_after_chunks=2)
    with SyncRouter(router) as sync:
        received: list[str] = []
        with pytest.raises(StreamInterruptedError) as info:
            for text in sync.stream("a b c d e f"):
                received.append(text)
        assert info.value.partial_text == "".join(received)


def test_breaking_out_of_a_stream_closes_it(sync: SyncRouter) -> None:
    """Leaving the iterator early acloses the router's stream at once, on its loop."""
    closed: list[bool] = []
    real = sync.router.chat_stream

    async def spy(*args: Any, **kwargs: Any) -> Any:
        try:
            async for chunk in real(*args, **kwargs):
                yield chunk
        finally:
            closed.append(True)

    sync.router.chat_stream = spy  # type: ignore[method-assign]
    stream = sync.stream("one two three four five six")
    assert next(stream)
    stream.close()  # what `break` does
    assert closed == [True]
    chunks = sync.chat_stream("a b c d")
    next(chunks)
    chunks.close()
    assert closed == [True, True]
    assert sync.route("still works")


class Hanging(BaseProvider):
    """Answers nothing: its calls wait until cancelled, and say when they start and end."""

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.waiting = threading.Event()
        self.cancelled = threading.Event()

    async def _hang(self) -> None:
        self.waiting.set()
        try:
            await anyio.sleep_forever()
        finally:
            self.cancelled.set()

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        await self._hang()
        raise AssertionError("unreachable")

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        yield Chunk(delta="first ", provider=self.config.name)
        await self._hang()

    async def health_check(self) -> bool:
        return True


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("call", ["route", "stream"])
def test_ctrl_c_cancels_the_call_on_the_loop(
    registry: PluginRegistry, backend: Any, call: str, ctrl_c_when: CtrlC
) -> None:
    """Ctrl-C while waiting (a script, or "interrupt kernel" in a notebook) raises
    KeyboardInterrupt here and cancels the call on the loop, instead of leaving it running
    (and billing) in the background; a stream's response is closed; the router goes on."""
    provider = Hanging(ProviderConfig(name="hang"))
    router = Router(registry=registry)
    router.add_provider(provider)
    router.add_provider(MockProvider(MockConfig(name="m")))
    received: list[str] = []
    with SyncRouter(router, backend=backend) as sync:
        with ctrl_c_when(provider.waiting), pytest.raises(KeyboardInterrupt):
            if call == "route":
                sync.route("x", provider="hang")
            else:
                received.extend(sync.stream("x", provider="hang"))
        assert provider.cancelled.wait(10), "the call kept running on the loop"
        assert sync.route("after", provider="m") == "Mock response to: after"
    assert received == ([] if call == "route" else ["first "])


def test_called_inside_a_running_asyncio_loop(sync: SyncRouter) -> None:
    """The Jupyter case: code already inside a running event loop calls the sync API."""

    async def cell() -> str:
        return sync.route("from a notebook cell")

    assert asyncio.run(cell()) == "Mock response to: from a notebook cell"


def test_called_inside_a_running_trio_loop(sync: SyncRouter) -> None:
    import trio

    async def main() -> list[str]:
        return list(sync.stream("from trio"))

    assert "".join(trio.run(main)) == "Mock response to: from trio"


def test_from_a_thread_that_runs_a_loop(sync: SyncRouter) -> None:
    results: list[str] = []

    def bot_thread() -> None:
        async def handler() -> None:
            results.append(sync.route("from a bot thread"))

        asyncio.run(handler())

    thread = threading.Thread(target=bot_thread)
    thread.start()
    thread.join()
    assert results == ["Mock response to: from a bot thread"]


def test_many_threads_at_once(sync: SyncRouter) -> None:
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: sync.route(f"q{i}"), range(40)))
    assert answers == [f"Mock response to: q{i}" for i in range(40)]


def test_trio_backend(registry: PluginRegistry) -> None:
    with SyncRouter(make_router(registry), backend="trio") as sync:
        assert sync.route("on trio") == "Mock response to: on trio"
        assert repr(sync).startswith("<SyncRouter running backend=trio")


def test_close_is_idempotent_and_final(registry: PluginRegistry) -> None:
    sync = SyncRouter(make_router(registry))
    assert "idle" in repr(sync)
    sync.route("x")
    sync.close()
    sync.close()
    assert sync.closed and "closed" in repr(sync)
    with pytest.raises(RuntimeError, match="closed"):
        sync.route("after close")


def test_close_without_use_starts_nothing(registry: PluginRegistry) -> None:
    before = threading.active_count()
    sync = SyncRouter(make_router(registry))
    sync.close()
    assert threading.active_count() == before


def test_close_stops_the_loop_thread(registry: PluginRegistry) -> None:
    sync = SyncRouter(make_router(registry))
    sync.route("x")
    loop = sync._loop
    assert loop is not None
    sync.close()
    assert not loop._thread.is_alive()


def test_constructors(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "orchestrator.toml"
    path.write_text('[providers.mock]\nresponse = "configured"\n')
    with SyncRouter.from_config(path) as sync:
        assert sync.route("x") == "configured"
    from orchestrator import settings

    monkeypatch.setattr(
        settings, "router_from_env", lambda **options: make_router(PluginRegistry(False))
    )
    with SyncRouter.from_env() as sync:
        assert sync.route("y") == "Mock response to: y"


def run_script(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_open_router_is_closed_at_interpreter_exit() -> None:
    result = run_script(
        """
        from orchestrator import Router
        from orchestrator.providers.mock import MockConfig, MockProvider
        from orchestrator.sync import SyncRouter

        class Closing(MockProvider):
            async def aclose(self):
                print("closed at exit", flush=True)

        router = Router()
        router.add_provider(Closing(MockConfig(name="m")))
        sync = SyncRouter(router)
        print(sync.route("bye"), flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["Mock response to: bye", "closed at exit"]
    assert result.stderr == ""


@pytest.mark.slow
def test_asyncio_run_then_sync_in_a_script() -> None:
    """The pattern that used to end in "Event loop is closed": asyncio.run per call, with
    the sync API in between, in one process with warnings as errors."""
    result = run_script(
        """
        import asyncio
        from orchestrator import Router
        from orchestrator.providers.mock import MockConfig, MockProvider
        from orchestrator.sync import SyncRouter

        router = Router()
        router.add_provider(MockProvider(MockConfig(name="m")))
        sync = SyncRouter(router)
        for i in range(3):
            asyncio.run(router.route(f"async {i}"))
            sync.route(f"sync {i}")
        async def inside():
            return sync.route("inside")
        print(asyncio.run(inside()))
        sync.close()
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Mock response to: inside"
