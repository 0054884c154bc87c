"""Fixtures for orchestrator-core's own tests."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from orchestrator.plugins import PluginRegistry
from orchestrator.testing import LoopbackServer

GUIDE_FILE = Path(__file__).parent / "guide" / "your_provider.py"


class GuideAPI:
    """The HTTP API the guide's example provider talks to: POST /completions, GET /health."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append(
            {"path": scope["path"], "headers": headers, "json": json.loads(body or b"null")}
        )
        if scope["path"] == "/health":
            status, payload = 200, {"status": "ok"}
        elif self.status != 200:
            status, payload = self.status, {"error": "scripted"}
        else:
            prompt = json.loads(body)["prompt"]
            status, payload = 200, {"text": f"guide says: {prompt}"}
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})


@pytest.fixture(scope="session")
def guide_api() -> Iterator[tuple[GuideAPI, LoopbackServer]]:
    api = GuideAPI()
    with LoopbackServer(api) as server:
        yield api, server


@pytest.fixture(scope="session")
def guide_module() -> ModuleType:
    """The guide's provider module, loaded where the guide puts it."""
    name = "orchestrator.providers.your_provider"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, GUIDE_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def registry() -> PluginRegistry:
    """A registry with the built-ins only (no installed plugins)."""
    return PluginRegistry(entry_points=False)


CtrlC = Callable[[threading.Event], AbstractContextManager[None]]


@contextlib.contextmanager
def _ctrl_c_when(event: threading.Event) -> Iterator[None]:
    """Press Ctrl-C (SIGINT to the main thread) once ``event`` is set.

    A signal that lands just before the main thread blocks on a lock waits, unseen, until
    the lock is released (CPython checks for signals only between bytecodes); a user would
    press again, and so does this, until the handler has run.
    """
    main = threading.main_thread().ident
    assert main is not None and threading.get_ident() == main, "run this in the main thread"
    pressed = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        pressed.set()
        raise KeyboardInterrupt

    def press() -> None:
        if event.wait(10):
            while not pressed.is_set():
                signal.pthread_kill(main, signal.SIGINT)
                pressed.wait(1)

    previous = signal.signal(signal.SIGINT, handler)
    thread = threading.Thread(target=press, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def ctrl_c_when() -> CtrlC:
    """``with ctrl_c_when(event): ...`` presses Ctrl-C once ``event`` is set."""
    return _ctrl_c_when
