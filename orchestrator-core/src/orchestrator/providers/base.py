"""The provider contract: :class:`BaseProvider`, plus the names the custom-provider guide
imports from here (``from .base import AuthenticationError, ..., TimeoutError``).

A provider implements two methods, ``generate(prompt, params) -> str`` and
``health_check() -> bool``. Richer calls have defaults that bridge to ``generate``:
``chat(messages, params) -> Completion`` and ``stream(messages, params) -> AsyncIterator[Chunk]``.
Vendor providers override them to return usage, finish reasons and real streaming.

HTTP: ``self.http_client()`` returns one pooled ``httpx.AsyncClient`` per running event loop
(asyncio or trio). It is created lazily with the provider's timeout and TLS settings, reused
for every call on that loop, closed by ``aclose()``, and closed automatically when its loop
ends (also a loop closed without shutting down). Its requests go through one core transport
wrapper that keeps the connection pool usable under native asyncio cancellation
(``orchestrator.providers._transport``). A client created in ``__init__`` instead is bound
to the first loop that uses it and
fails with "Event loop is closed" under ``asyncio.run``-per-call; keep such clients for
single-loop programs only.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import sys
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import anyio
import sniffio

from orchestrator._secrets import get_logger
from orchestrator.capabilities import Capabilities, EmbeddingSpace
from orchestrator.config import ProviderConfig
from orchestrator.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    ProviderError,
    RateLimitError,
    TimeoutError,  # noqa: A004 - the guide imports this name from here
)
from orchestrator.pricing import Price
from orchestrator.retry import RetryPolicy, retries_managed_by_caller
from orchestrator.types import (
    Chunk,
    Completion,
    EmbeddingKind,
    Embeddings,
    GenerationParams,
    Message,
)

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = [
    "AuthenticationError",
    "BaseProvider",
    "GenerationParams",
    "InvalidRequestError",
    "ProviderConfig",
    "ProviderError",
    "RateLimitError",
    "TimeoutError",
    "map_transport_error",
    "render_transcript",
]

T = TypeVar("T")

_sniffio_local = sniffio.thread_local


def render_transcript(messages: Sequence[Message]) -> str:
    """Flatten a conversation into one prompt for providers that only take a prompt.

    A single user message is passed through unchanged; anything else becomes a labelled
    transcript ending with ``Assistant:`` so no message is dropped.
    """
    if len(messages) == 1 and messages[0].role == "user":
        return messages[0].content
    lines = [f"{m.role.capitalize()}: {m.content}" for m in messages]
    lines.append("Assistant:")
    return "\n\n".join(lines)


def map_transport_error(exc: BaseException, provider: str | None) -> ProviderError | None:
    """The typed error for an ``httpx`` exception, or None if ``exc`` is not one.

    Re-exported from :func:`orchestrator.boundary.map_transport_error` (the one map), without
    importing ``httpx`` here: an exception cannot be an httpx one before httpx is imported.
    """
    if "httpx" not in sys.modules:
        return None
    from orchestrator.boundary import map_transport_error as mapped

    return mapped(exc, provider)


_FOREVER = 100 * 365 * 86400.0  # seconds: a timer that never fires


def _loop_key() -> object:
    """The running event loop: the asyncio loop, or the trio run's root task.

    Reads sniffio's thread-local marker (trio sets it for the length of a run) rather than
    calling ``sniffio.current_async_library()``: the same answer at a quarter of the cost.
    """
    if _sniffio_local.name == "trio":
        import trio

        return trio.lowlevel.current_root_task()
    return asyncio.get_running_loop()


def _wants_aiohttp(config: ProviderConfig) -> bool:
    """Whether ``config.http_transport`` asks for aiohttp (and it can be had)."""
    choice = config.http_transport
    if choice == "httpx":
        return False
    import importlib.util

    installed = importlib.util.find_spec("aiohttp") is not None
    if choice == "aiohttp" and not installed:
        raise ConfigurationError(
            f"Provider {config.name!r} has http_transport='aiohttp' but the aiohttp transport "
            "is not installed: pip install 'orchestrator-core[aiohttp]', or set "
            "http_transport='auto' (aiohttp when installed) or 'httpx'"
        )
    return installed


@dataclass(slots=True, weakref_slot=True, eq=False)
class _LoopState:
    """What a provider keeps per event loop: its HTTP client and its locks."""

    #: The loop (asyncio) or root task (trio), weakly: a closed loop must not be kept alive.
    key: weakref.ref[object]
    client: httpx.AsyncClient | None = None
    locks: dict[str, anyio.Lock] = field(default_factory=dict)
    #: The provider's ``_loops`` dict, to forget this loop once it ends.
    owner: dict[int, _LoopState] | None = None


def _noop() -> None:
    pass


class _LoopCleanup:
    """Closes every provider's client of one event loop when that loop shuts down.

    An async generator started on a loop is finalized by the loop itself as it shuts down
    (asyncio.run, anyio.run and trio.run all do), while its sockets are still usable. One
    such generator per loop, held here (not by a provider), so a provider dropped mid-run
    leaves no unfinalized generator behind.

    An asyncio loop can also be closed without that shutdown (``loop.close()`` without
    ``loop.shutdown_asyncgens()``): then no async code can run on it again. A timer that
    never fires is parked on the loop; ``close()`` drops it, and its finalizer closes the
    clients' sockets synchronously and forgets the loop, so neither the loop nor the
    clients outlive it.
    """

    _by_loop: ClassVar[dict[int, _LoopCleanup]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, key: object) -> None:
        self.key_id = id(key)
        self.states: weakref.WeakSet[_LoopState] = weakref.WeakSet()
        self._closed_loop: weakref.finalize[[], None] | None = None
        if isinstance(key, asyncio.AbstractEventLoop):
            # The loop's timer heap holds the only reference to the handle.
            timer: Any = key.call_later(_FOREVER, _noop)
            self._closed_loop = weakref.finalize(timer, self._abandon)
            self._closed_loop.atexit = False
        self._finalizer = self._run()
        with contextlib.suppress(StopIteration):
            self._finalizer.asend(None).send(None)

    @classmethod
    def register(cls, key: object, state: _LoopState) -> None:
        with cls._lock:
            cleanup = cls._by_loop.get(id(key))
            if cleanup is None:
                cleanup = cls._by_loop[id(key)] = cls(key)
            cleanup.states.add(state)

    def _forget(self) -> list[httpx.AsyncClient]:
        with self._lock:
            if self._by_loop.get(self.key_id) is self:
                del self._by_loop[self.key_id]
        clients = []
        for state in list(self.states):
            if state.owner is not None and state.owner.get(self.key_id) is state:
                del state.owner[self.key_id]
            client, state.client = state.client, None
            if client is not None:
                clients.append(client)
        self.states = weakref.WeakSet()
        return clients

    def _abandon(self) -> None:
        """The loop was closed without shutting down: release everything synchronously."""
        from orchestrator.providers._transport import close_abandoned

        for client in self._forget():
            close_abandoned(client)

    async def _run(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if self._closed_loop is not None:
                self._closed_loop.detach()
            for client in self._forget():
                with anyio.CancelScope(shield=True):
                    await client.aclose()


class BaseProvider(abc.ABC):
    """Base class of every provider.

    Subclasses implement :meth:`generate` and :meth:`health_check`; vendor providers also
    override :meth:`chat` and :meth:`stream`, and :meth:`embed` when the vendor has
    embeddings. :meth:`capabilities` derives what it serves from what it implements.
    """

    #: The config class this provider needs; a plain ``ProviderConfig`` is upgraded to it.
    config_class: ClassVar[type[ProviderConfig]] = ProviderConfig
    #: ``chat``/``stream`` send ``params.tools`` and return the model's tool calls
    #: (``Completion.tool_calls``; whole calls on stream chunks), take ``tool`` messages
    #: and assistant messages with ``tool_calls``, and honour ``tool_choice``.
    supports_tools: ClassVar[bool] = False
    #: ...and several calls in one answer / one assistant message.
    supports_parallel_tool_calls: ClassVar[bool] = False
    #: ``chat``/``stream`` send ``params.response_format`` (the router validates the answer).
    supports_structured_output: ClassVar[bool] = False
    #: Sends ``params.model`` (a per-request model) instead of ``config.model`` when given.
    supports_model_override: ClassVar[bool] = False
    #: Default prices in roubles per 1,000 tokens, by model (``"*"`` for any other model);
    #: the router's ``prices`` argument overrides them.
    prices: ClassVar[Mapping[str, Price]] = {}
    #: ``"module:factory"`` of an emulator of this vendor's API (a ScriptableApp factory),
    #: used by ``orchestrator emulate`` and the demo; None when the plugin ships none.
    emulator: ClassVar[str | None] = None

    def __init__(
        self,
        config: ProviderConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(config, ProviderConfig):
            raise TypeError(
                f"{type(self).__name__} needs a ProviderConfig, got {type(config).__name__}"
            )
        self.config = config.upgrade(self.config_class)
        self.logger = get_logger(f"orchestrator.providers.{self.config.name}")
        self._transport = transport
        self._loops: dict[int, _LoopState] = {}
        self._loops_lock = threading.Lock()
        #: Send through aiohttp on asyncio (``config.http_transport``); never on trio, and
        #: never instead of a transport given here.
        self._aiohttp = transport is None and _wants_aiohttp(self.config)

    # -- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """This provider instance's name (``config.name``)."""
        return self.config.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.config.name!r} model={self.config.model!r}>"

    # -- the contract -------------------------------------------------------------------

    @abc.abstractmethod
    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        """Return the model's answer to ``prompt``."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement "
            "`async def generate(self, prompt, params=None) -> str`"
        )

    @abc.abstractmethod
    async def health_check(self) -> bool:
        """Return True if the provider can serve requests; never raise, never bill."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `async def health_check(self) -> bool`"
        )

    async def chat(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Completion:
        """Answer a conversation. The default bridges to :meth:`generate`."""
        text = await self.generate(render_transcript(messages), params)
        if not isinstance(text, str):
            raise TypeError(
                f"{type(self).__name__}.generate() returned {type(text).__name__}, not str"
            )
        return Completion(text=text, provider=self.config.name, model=self.config.model)

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> AsyncIterator[Chunk]:
        """Stream an answer. The default yields :meth:`chat`'s answer as one chunk."""
        completion = await self.chat(messages, params)
        yield Chunk(
            delta=completion.text,
            provider=completion.provider,
            model=completion.model,
            finish_reason=completion.finish_reason or "stop",
            usage=completion.usage,
            request_id=completion.request_id,
            tool_calls=completion.tool_calls,
        )

    async def embed(self, texts: Sequence[str], *, kind: EmbeddingKind = "document") -> Embeddings:
        """Embed ``texts`` (at most ``embedding_space().max_batch`` of them), one vector per
        text in order, all of ``embedding_space().dimension`` numbers. Override it (and
        :meth:`embedding_space`) when the vendor has embeddings."""
        raise NotImplementedError(f"{type(self).__name__} has no embeddings")

    def embedding_space(self) -> EmbeddingSpace | None:
        """The vector space :meth:`embed` answers in. Providers of one space may answer for
        each other; the router never mixes two spaces. None: this instance has no
        embeddings (the router then never asks it, even though the class has ``embed``)."""
        return None

    @classmethod
    def capabilities(cls) -> Capabilities:
        """What this provider class serves, from what it implements (and says it does)."""
        chat = cls.chat is not BaseProvider.chat
        tools = chat and cls.supports_tools
        return Capabilities(
            chat=chat,
            streaming=cls.stream is not BaseProvider.stream,
            tools=tools,
            parallel_tool_calls=tools and cls.supports_parallel_tool_calls,
            structured_output=chat and cls.supports_structured_output,
            embeddings=cls.embed is not BaseProvider.embed,
        )

    @classmethod
    def config_from_env(cls, name: str) -> ProviderConfig | None:
        """A config built from this vendor's environment variables, or None when the
        environment holds no credentials for it (what ``Router.from_env()`` asks).

        Override it to read the names the vendor's own SDK reads (e.g. ``GIGACHAT_*``);
        ``name`` is the registered provider name, to use as ``config.name``.
        """
        return None

    def validate_params(self, params: GenerationParams) -> None:
        """Reject parameters this provider cannot honour, before any network call.

        The default accepts everything ``GenerationParams`` accepts except a per-request
        ``model``, which only a provider with ``supports_model_override = True`` sends (a
        provider that ignored it would answer from another model than the one asked for).
        Override to narrow it and raise :class:`InvalidRequestError` saying what to change.
        """
        if params.model is not None and not self.supports_model_override:
            raise InvalidRequestError(
                f"{type(self).__name__} cannot switch models per request; drop params.model "
                f"or set the model in its config (now {self.config.model!r})",
                provider=self.config.name,
            )

    def ssl_context(self, ca_bundle_file: str | None = None) -> ssl.SSLContext:
        """A TLS context for this provider's clients: certifi's roots, plus the PEM
        ``ca_bundle_file`` when given; no verification at all when ``config.verify_ssl`` is
        False (logged as a warning). Build it once (in ``__init__``), not per client."""
        import ssl

        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
        if ca_bundle_file:
            try:
                context.load_verify_locations(cafile=ca_bundle_file)
            except (ssl.SSLError, OSError) as exc:
                raise ConfigurationError(
                    f"ca_bundle_file {ca_bundle_file!r} is not a readable PEM CA bundle "
                    f"({type(exc).__name__}); give the path of a PEM file"
                ) from None
        if not self.config.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self.logger.warning(
                "%s: TLS certificate verification is OFF (verify_ssl=False); development only",
                self.config.name,
            )
        return context

    # -- HTTP client per event loop -------------------------------------------------------

    def _create_http_client(self) -> httpx.AsyncClient:
        """Build the pooled client for one event loop; override to add headers or TLS."""
        import httpx

        return httpx.AsyncClient(
            timeout=self.config.timeout,
            verify=self.config.verify_ssl,
            transport=self._transport,
            follow_redirects=False,
        )

    def _loop_state(self) -> _LoopState:
        key = _loop_key()
        state = self._loops.get(id(key))
        if state is None or state.key() is not key:
            state = self._new_loop_state(key)
        return state

    def _new_loop_state(self, key: object) -> _LoopState:
        with self._loops_lock:
            state = self._loops.get(id(key))
            if state is None or state.key() is not key:
                state = self._loops[id(key)] = _LoopState(weakref.ref(key), owner=self._loops)
                _LoopCleanup.register(key, state)
        return state

    def http_client(self) -> httpx.AsyncClient:
        """The pooled HTTP client of the running event loop (created on first use).

        Its transport (and any mounted one) is wrapped in one
        :class:`~orchestrator.providers._transport.ProviderTransport`, which keeps the
        connection pool usable after native asyncio cancellations (``asyncio.wait_for``,
        ``asyncio.timeout``, ``Task.cancel``) at any point of a call or a stream.
        """
        key = _loop_key()
        state = self._loops.get(id(key))
        if state is not None and state.key() is key:
            client = state.client
            if client is not None and not client.is_closed:
                return client
        else:
            state = self._new_loop_state(key)
        from orchestrator.providers._transport import use_aiohttp, wrap_transports

        client = self._create_http_client()
        if self._aiohttp and _sniffio_local.name != "trio":
            use_aiohttp(client)
        wrap_transports(client)
        state.client = client
        return client

    def loop_lock(self, name: str) -> anyio.Lock:
        """An ``anyio.Lock`` private to this provider and the running event loop.

        Use it for single-flight work such as a token refresh: a lock shared across loops
        would be bound to the first loop that waited on it.
        """
        locks = self._loop_state().locks
        lock = locks.get(name)
        if lock is None:
            lock = locks[name] = anyio.Lock()
        return lock

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop (clients of ended loops are closed)."""
        key = _loop_key()
        state = self._loops.get(id(key))
        if state is not None and state.key() is key and state.client is not None:
            client, state.client = state.client, None
            await client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- retries --------------------------------------------------------------------------

    def retry_policy(self) -> RetryPolicy:
        """The backoff policy from ``config`` (``max_retries``, ``backoff_base/max``)."""
        return RetryPolicy(
            max_retries=self.config.max_retries,
            base=self.config.backoff_base,
            cap=self.config.backoff_max,
        )

    def _stamp(self, exc: ProviderError) -> ProviderError:
        if exc.provider is None:
            exc.provider = self.config.name
        return exc

    async def _retry_with_backoff(
        self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        """Call ``fn``; retry transient :class:`ProviderError`\\ s with jittered backoff.

        ``max_retries`` counts retries after the first attempt. ``httpx`` transport errors
        are mapped to :class:`TransportError` / :class:`TimeoutError` first. Inside a
        :class:`~orchestrator.Router` the router owns retries, so this makes one attempt.
        """
        policy = None if retries_managed_by_caller.get() else self.retry_policy()
        retry = 0
        while True:
            started = time.monotonic()
            try:
                return await fn(*args, **kwargs)
            except ProviderError as exc:
                error = self._stamp(exc)
            except Exception as exc:
                mapped = map_transport_error(exc, self.config.name)
                if mapped is None:
                    raise
                mapped.__cause__ = exc
                error = mapped
            if policy is None or not error.transient:
                raise error
            retry += 1
            delay = policy.delay(retry, error.retry_after)
            if delay is None:
                raise error
            self.logger.info(
                "%s: %s after %.3fs; retry %d/%d in %.2fs",
                self.config.name,
                type(error).__name__,
                time.monotonic() - started,
                retry,
                policy.max_retries,
                delay,
            )
            await anyio.sleep(delay)
