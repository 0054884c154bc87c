"""Issue 8: the sync API from inside running event loops, for every shipped provider.

Each provider talks to its emulator over real loopback sockets (the mock needs none). The
scenarios are the ones that used to end in "Event loop is closed": a SyncRouter called from a
thread that already runs an asyncio loop (a Jupyter kernel, an async bot), from inside
``trio.run``, and from several such threads at once. pytest runs with warnings as errors, so
an unclosed client or socket fails the test; after ``close()`` the emulator holds no
connection.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from orchestrator import Router
from orchestrator.plugins import default_registry
from orchestrator.providers.mock import MockConfig, MockProvider
from orchestrator.sync import SyncRouter
from orchestrator.testing import LoopbackServer

PROVIDERS = ["gigachat", "yandexgpt", "mock"]


@dataclass
class Setup:
    router: Router
    server: LoopbackServer | None


@pytest.fixture(params=PROVIDERS)
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    name = request.param
    if name == "mock":
        router = Router()
        router.add_provider(MockProvider(MockConfig(name="mock")))
        yield Setup(router, None)
        return
    emulator = pytest.importorskip(f"orchestrator_{name}.emulator")
    info = default_registry().provider_info(name)
    module_name, _, factory = (info.cls.emulator or "").partition(":")
    app = getattr(importlib.import_module(module_name), factory)()
    with LoopbackServer(app) as server:
        router = Router()
        router.add_provider(info.cls(emulator.config_for(server, name=name)))
        yield Setup(router, server)


def wait_for_no_connections(server: LoopbackServer | None) -> None:
    if server is None:
        return
    deadline = time.monotonic() + 5
    while server.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.open_connections == 0


def test_sync_api_inside_a_thread_running_an_asyncio_loop(setup: Setup) -> None:
    sync = SyncRouter(setup.router)
    results: list[Any] = []

    def notebook_kernel() -> None:
        async def cell() -> None:
            for i in range(3):
                results.append(sync.route(f"question {i}"))
            results.append("".join(sync.stream("stream please")))

        asyncio.run(cell())

    thread = threading.Thread(target=notebook_kernel)
    thread.start()
    thread.join(timeout=60)
    assert len(results) == 4 and all(isinstance(r, str) and r for r in results)
    sync.close()
    wait_for_no_connections(setup.server)


def test_sync_api_inside_trio_run(setup: Setup) -> None:
    with SyncRouter(setup.router) as sync:

        async def main() -> tuple[str, str]:
            return sync.route("from trio"), "".join(sync.stream("trio stream"))

        answer, streamed = trio.run(main)
        assert answer and streamed
    wait_for_no_connections(setup.server)


def test_sync_api_from_five_looping_threads(setup: Setup) -> None:
    with SyncRouter(setup.router) as sync:

        def bot_worker(i: int) -> str:
            async def handler() -> str:
                return sync.route(f"user {i}")

            return asyncio.run(handler())

        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(bot_worker, range(20)))
        assert len(answers) == 20 and all(answers)
        assert sync.stats()["providers"][setup.router.providers[0].name]["successes"] == 20
    wait_for_no_connections(setup.server)


def test_sync_api_next_to_asyncio_run_per_call(setup: Setup) -> None:
    """The same router, used by asyncio.run per call and by the sync API in turn."""
    with SyncRouter(setup.router) as sync:
        for i in range(3):
            assert asyncio.run(setup.router.route(f"async {i}"))
            assert sync.route(f"sync {i}")
    wait_for_no_connections(setup.server)
