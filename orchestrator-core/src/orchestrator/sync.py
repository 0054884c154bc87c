"""The synchronous API, for scripts, notebooks, bots and web frameworks without async.

    from orchestrator.sync import SyncRouter

    router = SyncRouter.from_config("orchestrator.toml")
    print(router.route("Hello"))
    for text in router.stream("Tell me a story"):
        print(text, end="", flush=True)
    router.close()

Every call runs on **one** persistent event loop in a background thread (an anyio blocking
portal), started on first use: no loop or TLS set-up per call, connection pools are reused,
and no HTTP client is ever used from a loop it was not created on. So it works the same from
plain scripts, from many threads at once, and from code that already runs an event loop
(a Jupyter cell, a thread of an async bot) where ``asyncio.run`` would refuse to start.

``close()`` (or ``with SyncRouter(...)``) closes the HTTP clients and stops the loop; a router
still open at interpreter exit is closed then. Do not call it from inside the router's own
loop (a hook implementation): that would wait on itself, and raises ``RuntimeError``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

    from orchestrator.router import MessagesInput, Router
    from orchestrator.types import Chunk, Completion, Embeddings, GenerationParams

__all__ = ["SyncRouter"]

P = ParamSpec("P")
T = TypeVar("T")


class _LoopThread:
    """A daemon thread running an event loop that serves a blocking portal.

    A daemon thread (rather than anyio's ``start_blocking_portal`` executor thread) lets the
    interpreter reach the ``atexit`` handler that closes it, instead of waiting on it forever.
    """

    def __init__(self, backend: str) -> None:
        self.portal: BlockingPortal | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(backend,), name="orchestrator-sync-loop", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self, backend: str) -> None:
        import anyio
        from anyio.from_thread import BlockingPortal

        async def serve() -> None:
            async with BlockingPortal() as portal:
                self.portal = portal
                self._ready.set()
                await portal.sleep_until_stopped()

        try:
            anyio.run(serve, backend=backend)
        except BaseException as exc:  # pragma: no cover - only a broken backend gets here
            self._error = exc
            self._ready.set()

    def stop(self) -> None:
        portal = self.portal
        if portal is not None:
            with contextlib.suppress(RuntimeError):  # already stopped
                portal.call(portal.stop)
        self._thread.join(timeout=10)


def _close_at_exit(ref: weakref.ref[SyncRouter]) -> None:
    router = ref()
    if router is not None:
        router.close()


class SyncRouter:
    """A blocking facade over a :class:`~orchestrator.Router`.

    ``router`` is the router to drive; ``backend`` is ``"asyncio"`` (default) or ``"trio"``.
    The same router may still be used from async code elsewhere: providers keep one HTTP
    client per event loop.
    """

    def __init__(self, router: Router, *, backend: Literal["asyncio", "trio"] = "asyncio") -> None:
        self.router = router
        self.backend = backend
        self._loop: _LoopThread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._atexit: Callable[[], None] | None = None

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_config(cls, source: Any, **options: Any) -> SyncRouter:
        """``SyncRouter(Router.from_config(source))``."""
        from orchestrator.settings import router_from_config

        return cls(router_from_config(source), **options)

    @classmethod
    def from_env(cls, **options: Any) -> SyncRouter:
        """``SyncRouter(Router.from_env(**options))``."""
        from orchestrator.settings import router_from_env

        return cls(router_from_env(**options))

    # -- the loop -------------------------------------------------------------------------

    def _portal(self) -> BlockingPortal:
        loop = self._loop
        if loop is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError("This SyncRouter is closed; create a new one")
                loop = self._loop
                if loop is None:
                    loop = self._loop = _LoopThread(self.backend)
                    self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
                    atexit.register(self._atexit)
        assert loop.portal is not None
        return loop.portal

    def _call(self, fn: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> Any:
        return _wait(self._portal(), functools.partial(fn, *args, **kwargs))

    # -- calls ------------------------------------------------------------------------------

    def route(
        self,
        prompt: str,
        params: GenerationParams | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> str:
        """``Router.route`` (``deadline=``, ``provider=``), blocking."""
        result: str = self._call(self.router.route, prompt, params, **options)
        return result

    def chat(
        self,
        messages: MessagesInput,
        params: GenerationParams | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Completion:
        """``Router.chat``, blocking: a :class:`~orchestrator.Completion`."""
        result: Completion = self._call(self.router.chat, messages, params, **options)
        return result

    def stream(
        self,
        prompt: str,
        params: GenerationParams | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Generator[str, None, None]:
        """``Router.route_stream``, as an iterator of text deltas."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be str, got {type(prompt).__name__}")
        # Iterate chat_stream directly, so leaving early closes the provider's stream at
        # once rather than when a wrapping generator is garbage-collected.
        with contextlib.closing(
            self._iterate(self.router.chat_stream, prompt, params, **options)
        ) as chunks:
            for chunk in chunks:
                if chunk.delta:
                    yield chunk.delta

    def chat_stream(
        self,
        messages: MessagesInput,
        params: GenerationParams | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Generator[Chunk, None, None]:
        """``Router.chat_stream``, as an iterator of :class:`~orchestrator.Chunk`\\ s."""
        return self._iterate(self.router.chat_stream, messages, params, **options)

    def embed(self, texts: str | Sequence[str], **options: Any) -> Embeddings:
        """``Router.embed`` (``kind=``, ``space=``, ``provider=``, ``deadline=``), blocking."""
        result: Embeddings = self._call(self.router.embed, texts, **options)
        return result

    def _iterate(
        self, factory: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Generator[Any, None, None]:
        portal = self._portal()
        # The async generator is created, advanced and closed on the portal's loop only; the
        # lock makes closing wait for an advance that Ctrl-C cancelled to let go of it.
        stream, lock = portal.call(functools.partial(_start, factory, *args, **kwargs))
        try:
            while True:
                done, item = _wait(portal, functools.partial(_advance, stream, lock))
                if done:
                    return
                yield item
        finally:
            # Leaving early (break, an exception) closes the HTTP response at once.
            if self._loop is not None and not self._closed:
                portal.call(_close, stream, lock)

    def health_check(self) -> dict[str, bool]:
        """``Router.health_check``, blocking."""
        result: dict[str, bool] = self._call(self.router.health_check)
        return result

    def stats(self) -> dict[str, Any]:
        """``Router.stats()`` (a JSON-ready snapshot)."""
        return self.router.stats()

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the providers' HTTP clients and stop the background loop (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, self._loop = self._loop, None
            if self._atexit is not None:
                atexit.unregister(self._atexit)
                self._atexit = None
        if loop is None:
            return
        assert loop.portal is not None
        try:
            loop.portal.call(self.router.aclose)
        finally:
            loop.stop()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._closed

    def __enter__(self) -> SyncRouter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._loop else "idle"
        names = ", ".join(p.config.name for p in self.router.providers)
        return f"<SyncRouter {state} backend={self.backend} providers=[{names}]>"


class _Cancellable:
    """One call on the portal's loop that the waiting thread can cancel, wherever its
    Ctrl-C lands: before the call started, while it runs, or while it is being spawned."""

    __slots__ = ("cancelled", "finished", "scope")

    def __init__(self) -> None:
        self.scope: Any = None
        self.cancelled = False
        self.finished = False

    async def run(self, fn: Callable[[], Any]) -> Any:
        import anyio

        try:
            with anyio.CancelScope() as self.scope:
                if self.cancelled:
                    self.scope.cancel()
                return await fn()
        finally:
            self.finished = True

    def cancel(self) -> None:  # on the loop
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


def _wait(portal: BlockingPortal, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on the portal's loop and wait for it. If the wait is interrupted (Ctrl-C in
    a script, "interrupt kernel" in a notebook), the call is cancelled on the loop as well
    rather than left running, and billing, in the background."""
    call = _Cancellable()
    try:
        return portal.call(call.run, fn)
    except BaseException:
        if not call.finished:  # interrupted here, not an error of the call itself
            with contextlib.suppress(RuntimeError):  # the portal has stopped
                portal.call(call.cancel)
        raise


async def _start(factory: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    import anyio

    return factory(*args, **kwargs), anyio.Lock()


async def _advance(stream: Any, lock: Any) -> tuple[bool, Any]:
    async with lock:
        try:
            return False, await stream.__anext__()
        except StopAsyncIteration:
            return True, None


async def _close(stream: Any, lock: Any) -> None:
    async with lock:
        await stream.aclose()
