"""The provider contract kit: the standard tests every provider package should pass.

Subclass :class:`ProviderContract` in your package's tests (the class name must start with
``Test`` so pytest collects it) and say which provider to test::

    from orchestrator.testing import ProviderContract

    from orchestrator_acme import AcmeProvider


    class TestAcmeContract(ProviderContract):
        provider_class = AcmeProvider
        entry_point = "acme"

That runs every standard test on asyncio and on trio, against the kit's fake
OpenAI-compatible server (:class:`~orchestrator.testing.fake.FakeOpenAIServer`) on a real
loopback socket. A provider for another wire format serves its own emulator instead: override
:meth:`ProviderContract.make_app` (any :class:`~orchestrator.testing.ScriptableApp`) and
:meth:`ProviderContract.make_config` (a config pointing the provider at the served app).

What the standard tests check:

- ``generate`` returns ``str``, ``chat`` a :class:`~orchestrator.types.Completion`, ``stream``
  :class:`~orchestrator.types.Chunk`\\ s whose text reassembles to the chat answer and whose
  last chunk carries ``finish_reason``;
- each HTTP failure maps to its typed error (401, 403, 400, 422, 429 with ``retry_after``,
  5xx transient), carrying the status and the provider's name;
- parameters ``validate_params`` rejects fail on a direct call too, before any request;
- transient failures are retried by ``_retry_with_backoff``; ``Retry-After`` is honoured
  (a hold longer than ``backoff_max`` is not waited out); non-transient ones are not retried;
- a truncated stream is an error, for the provider and for the router;
- cancelling a call or closing a stream early releases the connection;
- ``health_check`` returns a bool and never raises (serving, outage, server down);
- credentials never appear in logs, error texts or reprs;
- the provider is registered under its entry point, and a ``Router`` routes to it;
- for each capability it declares (:meth:`BaseProvider.capabilities`): a tool round trip
  (the model calls a tool, the result goes back, the model answers), a streamed tool call
  that arrives whole, several calls in one answer, structured output parsed and an invalid
  answer refused with its raw text, embeddings one per text, in order, of the declared
  dimension. These need the app to be a :class:`~orchestrator.testing.ScriptableModel`
  (``call_tools_next``, ``reply_next``); they are not collected for capabilities the
  provider does not declare, and appear when it does.

A standard test you cannot pass yet must be overridden and marked, never deleted::

    @pytest.mark.xfail(reason="the vendor's /models answers 200 during outages (ticket 123)")
    async def test_health_check_false_during_outage(self, server, app):
        await super().test_health_check_false_during_outage(server, app)

(An override of a parametrized standard test repeats its ``@pytest.mark.parametrize``, e.g.
with :data:`ERROR_STATUSES`.)

Deleting a standard test (``test_x = None``) or overriding it without an ``xfail``/``skip``
mark that gives a reason fails when the class is created.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import pytest

from orchestrator._secrets import PREFIX_LENGTH, redact, reveals
from orchestrator.boundary import error_class_for_status, is_transient_status
from orchestrator.config import ProviderConfig, Secret
from orchestrator.errors import (
    AllProvidersFailedError,
    InvalidRequestError,
    OrchestratorError,
    ProviderError,
    RateLimitError,
    StreamError,
    StructuredOutputError,
)
from orchestrator.plugins import PluginRegistry
from orchestrator.testing.server import LoopbackServer
from orchestrator.tools import Tool
from orchestrator.types import Chunk, Completion, GenerationParams, Message, ToolCall

if TYPE_CHECKING:
    from orchestrator.capabilities import Capability
    from orchestrator.providers.base import BaseProvider
    from orchestrator.testing.scripting import ScriptableApp, ScriptableModel

__all__ = [
    "ERROR_STATUSES",
    "STREAM_ERROR_STATUSES",
    "ProviderContract",
    "StandardTestRemovedError",
]


def _trio_installed() -> bool:
    try:
        import trio  # noqa: F401
    except ImportError:
        return False
    return True


_BACKENDS = [
    "asyncio",
    pytest.param(
        "trio",
        marks=pytest.mark.skipif(
            not _trio_installed(), reason="trio is not installed: `pip install trio`"
        ),
    ),
]

#: Parameters at the edges of what vendors support: each is either rejected by the
#: provider's ``validate_params`` (and then by ``chat``/``stream``, before the network) or
#: served.
PARAM_PROBES: tuple[GenerationParams, ...] = (
    GenerationParams(stop=["END"]),
    GenerationParams(temperature=0.0),
    GenerationParams(temperature=2.0),
    GenerationParams(max_tokens=1),
    GenerationParams(top_p=0.05),
)

#: (HTTP status, the error class it must map to) for the error-mapping test, from the core's
#: one status table (:data:`orchestrator.boundary.STATUS_ERRORS`).
ERROR_STATUSES: list[tuple[int, type[ProviderError]]] = [
    (status, error_class_for_status(status)) for status in (400, 401, 403, 422, 429, 500, 503)
]
#: The same, for a stream refused before its first chunk.
STREAM_ERROR_STATUSES: list[tuple[int, type[ProviderError]]] = [
    (status, error_class_for_status(status)) for status in (401, 429, 503)
]
_RETRY_AFTER = 0.05


def _rejection(provider: BaseProvider, params: GenerationParams) -> InvalidRequestError | None:
    """The error ``validate_params`` raises for ``params``, or None if it accepts them."""
    try:
        provider.validate_params(params)
    except InvalidRequestError as exc:
        return exc
    return None


class _AppSwitch:
    """An ASGI app forwarding to whichever app the current test plugged in."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self.app
        if app is None:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"no test is running"})
            return
        await app(scope, receive, send)


class StandardTestRemovedError(TypeError):
    """A contract subclass deleted or silently overrode a standard test."""


def _marked_with_reason(func: Any) -> bool:
    for mark in getattr(func, "pytestmark", []):
        if mark.name not in ("xfail", "skip"):
            continue
        reason = mark.kwargs.get("reason")
        if reason is None and mark.name == "skip" and mark.args:
            reason = mark.args[0]
        if isinstance(reason, str) and reason.strip():
            return True
    return False


def _secret_values(config: ProviderConfig) -> list[str]:
    return [
        str(value)
        for value in (getattr(config, key) for key in type(config).model_fields)
        if isinstance(value, Secret)
    ]


def _error_texts(error: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        current = current.__cause__ or current.__context__


class ProviderContract:
    """The standard tests of the provider contract; subclass it as ``Test...``.

    Set :attr:`provider_class` and :attr:`entry_point`; override :meth:`make_app` and
    :meth:`make_config` to test against your vendor's emulator instead of the fake
    OpenAI-compatible server.
    """

    #: The provider under test.
    provider_class: ClassVar[type[BaseProvider]]
    #: The name it is registered under (the ``orchestrator.providers`` entry-point name).
    entry_point: ClassVar[str]
    #: The credential the fake server expects (a :class:`~orchestrator.config.SecretStr`).
    api_key: ClassVar[str] = "sk-contract-kit-9f3c2e71b5d04a68"
    #: Serve the app over HTTPS (the config must then trust ``server.ca_file``).
    tls: ClassVar[bool] = False
    #: The prompt of every standard call; the answer should have several words.
    prompt: ClassVar[str] = "Say hello to the provider contract kit"
    #: Seconds any single standard test may take before it fails as hung.
    call_timeout: ClassVar[float] = 30.0

    _standard_tests: ClassVar[frozenset[str]] = frozenset()
    #: Every test (standard or yours) runs under anyio, on asyncio and on trio.
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.anyio]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        provider_class = getattr(cls, "provider_class", None)
        declared = set() if provider_class is None else set(provider_class.capabilities().names())
        for name in ProviderContract._standard_tests:
            capability = _CAPABILITY_TESTS.get(name)
            if capability is not None and capability not in declared:
                # Not declared: not collected (it appears once the provider declares it).
                if name not in cls.__dict__:
                    setattr(cls, name, None)
                continue
            value = getattr(cls, name, None)
            if value is None:
                raise StandardTestRemovedError(
                    f"{cls.__name__} removes the standard test {name}; override it and mark "
                    "it @pytest.mark.xfail(reason=...) instead"
                )
            if value is not ProviderContract.__dict__[name] and not _marked_with_reason(value):
                raise StandardTestRemovedError(
                    f"{cls.__name__} overrides the standard test {name} without "
                    "@pytest.mark.xfail(reason=...) (or skip(reason=...)); mark it so the "
                    "gap stays visible"
                )

    # -- what a subclass customises ----------------------------------------------------

    def make_app(self) -> ScriptableApp:
        """The app to serve: by default the kit's fake OpenAI-compatible server."""
        from orchestrator.testing.fake import FakeOpenAIServer

        return FakeOpenAIServer(api_key=self.api_key)

    def make_config(self, server: LoopbackServer) -> ProviderConfig:
        """A config pointing the provider at ``server`` (the served :meth:`make_app`)."""
        config_class = self.provider_class.config_class
        return config_class(
            name=self.entry_point, api_key=self.api_key, base_url=f"{server.base_url}/v1"
        )

    def make_registry(self) -> PluginRegistry:
        """The registry the registration test looks the provider up in."""
        return PluginRegistry()

    # -- helpers ---------------------------------------------------------------------------

    def make_provider(self, server: LoopbackServer, **settings: Any) -> BaseProvider:
        """The provider under test, pointed at ``server``, with ``settings`` applied.

        By default retries are off and backoff is short, so tests are fast and counted.
        """
        settings = {
            "max_retries": 0,
            "backoff_base": 0.01,
            "backoff_max": 1.0,
            "timeout": 10.0,
            **settings,
        }
        config = self.make_config(server).model_copy(update=settings)
        return self.provider_class(config)

    def messages(self) -> list[Message]:
        """The conversation every standard chat and stream call sends."""
        return [Message("user", self.prompt)]

    @staticmethod
    async def wait_until(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
        """Poll ``condition`` until true; fail saying ``what`` did not happen."""
        with anyio.move_on_after(limit):
            # Polling: the condition is the server thread's state, nothing can signal it.
            while not condition():  # noqa: ASYNC110
                await anyio.sleep(0.01)
            return
        pytest.fail(f"{what} within {limit:g}s")

    # -- fixtures --------------------------------------------------------------------------

    @pytest.fixture(params=_BACKENDS)
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        """Every standard test runs on asyncio and on trio."""
        return str(request.param)

    @pytest.fixture
    def app(self) -> ScriptableApp:
        """A fresh scriptable app per test."""
        return self.make_app()

    @pytest.fixture(scope="class")
    @classmethod
    def _shared_server(cls) -> Iterator[tuple[_AppSwitch, LoopbackServer]]:
        # One socket per test class (starting uvicorn costs ~0.2s); each test plugs in its
        # own fresh app.
        switch = _AppSwitch()
        with LoopbackServer(switch, tls=cls.tls) as server:
            yield switch, server

    @pytest.fixture
    def server(
        self, app: ScriptableApp, _shared_server: tuple[_AppSwitch, LoopbackServer]
    ) -> Iterator[LoopbackServer]:
        """``app`` served on a real loopback socket."""
        if not hasattr(type(self), "provider_class") or not hasattr(type(self), "entry_point"):
            pytest.fail(
                f"{type(self).__name__} must set `provider_class` and `entry_point` "
                "(the name the provider is registered under)"
            )
        switch, server = _shared_server
        switch.app = app
        try:
            yield server
        finally:
            switch.app = None

    @contextmanager
    def private_server(self, app: ScriptableApp) -> Iterator[LoopbackServer]:
        """``app`` on a server of its own (for tests that stop it)."""
        with LoopbackServer(app, tls=self.tls) as server:
            yield server

    # -- return types ----------------------------------------------------------------------

    async def test_generate_returns_text(self, server: LoopbackServer) -> None:
        """``generate(prompt)`` returns a non-empty ``str``."""
        async with self.make_provider(server) as provider:
            with anyio.fail_after(self.call_timeout):
                text = await provider.generate(self.prompt)
        assert isinstance(text, str), f"generate() returned {type(text).__name__}, not str"
        assert text, "generate() returned an empty string for a normal prompt"

    async def test_chat_returns_completion(self, server: LoopbackServer) -> None:
        """``chat(messages)`` returns a ``Completion`` naming this provider, with a finish."""
        async with self.make_provider(server) as provider:
            with anyio.fail_after(self.call_timeout):
                completion = await provider.chat(self.messages())
        assert isinstance(completion, Completion), (
            f"chat() returned {type(completion).__name__}, not Completion"
        )
        assert isinstance(completion.text, str)
        assert completion.text, "chat() returned an empty answer for a normal prompt"
        assert completion.provider == provider.config.name, (
            "Completion.provider must be the provider's config.name"
        )
        assert completion.finish_reason is not None, "a finished answer has a finish_reason"

    async def test_stream_yields_chunks(self, server: LoopbackServer) -> None:
        """``stream`` yields ``Chunk``\\ s; only the last carries ``finish_reason``."""
        async with self.make_provider(server) as provider:
            with anyio.fail_after(self.call_timeout):
                chunks = [chunk async for chunk in provider.stream(self.messages())]
        assert chunks, "stream() yielded nothing"
        for chunk in chunks:
            assert isinstance(chunk, Chunk), f"stream() yielded {type(chunk).__name__}"
            assert isinstance(chunk.delta, str)
        assert chunks[-1].finish_reason is not None, (
            "the last chunk of a complete stream must carry finish_reason"
        )
        assert all(c.finish_reason is None for c in chunks[:-1]), (
            "only the last chunk may carry finish_reason"
        )

    async def test_stream_reassembles_chat_text(self, server: LoopbackServer) -> None:
        """The streamed deltas join to exactly the text ``chat`` returns (deltas are new
        text only, never cumulative)."""
        async with self.make_provider(server) as provider:
            with anyio.fail_after(self.call_timeout):
                completion = await provider.chat(self.messages())
                chunks = [chunk async for chunk in provider.stream(self.messages())]
        assert "".join(c.delta for c in chunks) == completion.text

    # -- errors ----------------------------------------------------------------------------

    @pytest.mark.parametrize(("status", "expected"), ERROR_STATUSES)
    async def test_http_errors_map_to_typed_errors(
        self,
        server: LoopbackServer,
        app: ScriptableApp,
        status: int,
        expected: type[ProviderError],
    ) -> None:
        """Each HTTP failure maps to its typed error, with status, provider and
        ``retry_after``; 5xx and 429 are transient."""
        # times=3: a provider may legitimately re-authenticate once after a 401.
        app.fail_next(status, times=3, retry_after=_RETRY_AFTER if status == 429 else None)
        async with self.make_provider(server) as provider:
            with anyio.fail_after(self.call_timeout), pytest.raises(ProviderError) as info:
                await provider.chat(self.messages())
        error = info.value
        assert isinstance(error, expected), (
            f"HTTP {status} raised {type(error).__name__}; it must raise {expected.__name__}"
        )
        assert error.status_code == status, f"the error must carry status_code={status}"
        assert error.provider == provider.config.name, "the error must name the provider"
        assert str(error), "the error message is empty"
        if status == 429:
            assert error.retry_after == pytest.approx(_RETRY_AFTER), (
                "a 429's Retry-After header must become RateLimitError.retry_after"
            )
        if is_transient_status(status):  # the core's table: 408, 429 and 5xx
            assert error.transient, f"HTTP {status} is transient (retrying may succeed)"
        else:
            assert not error.transient, f"HTTP {status} is not transient"

    @pytest.mark.parametrize(("status", "expected"), STREAM_ERROR_STATUSES)
    async def test_stream_http_errors_map_to_typed_errors(
        self,
        server: LoopbackServer,
        app: ScriptableApp,
        status: int,
        expected: type[ProviderError],
    ) -> None:
        """A stream refused before its first chunk raises the same typed errors."""
        app.fail_next(status, times=3, retry_after=_RETRY_AFTER if status == 429 else None)
        async with self.make_provider(server) as provider:
            with anyio.fail_after(self.call_timeout), pytest.raises(ProviderError) as info:
                async for _ in provider.stream(self.messages()):
                    pass
        assert isinstance(info.value, expected), (
            f"a stream refused with HTTP {status} raised {type(info.value).__name__}; "
            f"it must raise {expected.__name__}"
        )
        assert info.value.status_code == status

    # -- retries ---------------------------------------------------------------------------

    async def test_transient_errors_are_retried(
        self, server: LoopbackServer, app: ScriptableApp
    ) -> None:
        """Two 503s then success: ``max_retries=2`` turns them into one answer."""
        app.fail_next(503, times=2)
        async with self.make_provider(server, max_retries=2) as provider:
            with anyio.fail_after(self.call_timeout):
                completion = await provider.chat(self.messages())
        assert completion.text
        assert app.request_count == 3, (
            f"expected 3 API calls (2 failures + 1 success), got {app.request_count}; "
            "wrap the HTTP call in self._retry_with_backoff"
        )

    async def test_retry_after_is_honoured(
        self, server: LoopbackServer, app: ScriptableApp
    ) -> None:
        """A short ``Retry-After`` is waited out and retried; one longer than
        ``backoff_max`` is not (the error surfaces so the router can fail over)."""
        app.fail_next(429, retry_after=_RETRY_AFTER)
        async with self.make_provider(server, max_retries=1) as provider:
            with anyio.fail_after(self.call_timeout):
                completion = await provider.chat(self.messages())
        assert completion.text
        assert app.request_count == 2, "a 429 with a short Retry-After must be retried"

        app.fail_next(429, retry_after=30)
        async with self.make_provider(server, max_retries=3, backoff_max=1.0) as provider:
            with anyio.fail_after(self.call_timeout), pytest.raises(RateLimitError) as info:
                await provider.chat(self.messages())
        assert info.value.retry_after == pytest.approx(30)
        assert app.request_count == 3, (
            "a Retry-After longer than backoff_max must not be retried early: put the header "
            "into RateLimitError(retry_after=...) so the backoff policy can honour it"
        )

    async def test_non_transient_errors_are_not_retried(
        self, server: LoopbackServer, app: ScriptableApp
    ) -> None:
        """A 400 is the caller's mistake: it is raised at once, not retried."""
        app.fail_next(400, times=5)
        async with self.make_provider(server, max_retries=3) as provider:
            with anyio.fail_after(self.call_timeout), pytest.raises(InvalidRequestError):
                await provider.chat(self.messages())
        assert app.request_count == 1, f"a 400 was sent {app.request_count} times"

    async def test_rejected_params_fail_before_the_network(
        self, server: LoopbackServer, app: ScriptableApp
    ) -> None:
        """What ``validate_params`` rejects fails the same way on a direct ``chat`` and
        ``stream``, with :class:`InvalidRequestError` and no request sent (nothing is silently
        dropped); what it accepts is served."""
        async with self.make_provider(server) as provider:
            for params in PARAM_PROBES:
                rejected = _rejection(provider, params)
                if rejected is None:
                    with anyio.fail_after(self.call_timeout):
                        completion = await provider.chat(self.messages(), params)
                    assert isinstance(completion, Completion), (
                        f"chat with {params!r} (accepted by validate_params) failed"
                    )
                    continue
                assert str(rejected), f"validate_params({params!r}) raised with no message"
                sent = app.request_count
                with anyio.fail_after(self.call_timeout):
                    with pytest.raises(InvalidRequestError):
                        await provider.chat(self.messages(), params)
                    with pytest.raises(InvalidRequestError):
                        async for _ in provider.stream(self.messages(), params):
                            pass
                assert app.request_count == sent, (
                    f"{params!r} is rejected by validate_params but chat/stream sent it; "
                    "call self.validate_params(params) before building the request"
                )

    # -- streams ---------------------------------------------------------------------------

    async def test_truncated_stream_is_an_error(
        self, server: LoopbackServer, app: ScriptableApp
    ) -> None:
        """A stream cut before its final event raises a ``ProviderError`` (ideally
        ``StreamError``) or at least ends without a chunk carrying ``finish_reason``."""
        app.cut_next_stream(after_chunks=1, times=3)
        chunks: list[Chunk] = []
        async with self.make_provider(server) as provider:
            with anyio.fail_after(self.call_timeout):
                try:
                    async for chunk in provider.stream(self.messages()):
                        chunks.append(chunk)
                except ProviderError:
                    return
        assert not chunks or chunks[-1].finish_reason is None, (
            "a truncated stream ended as if complete (its last chunk has finish_reason "
            f"{chunks[-1].finish_reason!r}); raise StreamError when the final event is missing"
        )

    async def test_router_rejects_truncated_stream(
        self, server: LoopbackServer, app: ScriptableApp
    ) -> None:
        """Through a ``Router`` a truncated stream is an error, never a clean end."""
        from orchestrator.router import Router

        app.cut_next_stream(after_chunks=1, times=3)
        router = Router(registry=PluginRegistry(entry_points=False))
        router.add_provider(self.make_provider(server))
        async with router:
            with (
                anyio.fail_after(self.call_timeout),
                pytest.raises((StreamError, AllProvidersFailedError)),
            ):
                async for _ in router.chat_stream(self.messages()):
                    pass

    # -- cancellation ------------------------------------------------------------------------

    async def test_cancelled_call_releases_connection(
        self, server: LoopbackServer, app: ScriptableApp
    ) -> None:
        """Cancelling a call in flight returns promptly and its connection is closed."""
        app.latency = 2.0
        provider = self.make_provider(server)
        with anyio.fail_after(self.call_timeout):
            async with anyio.create_task_group() as tg:
                tg.start_soon(provider.chat, self.messages())
                await self.wait_until(
                    lambda: app.request_count >= 1, "the request did not reach the server"
                )
                tg.cancel_scope.cancel()
            await provider.aclose()
        await self.wait_until(
            lambda: server.open_connections == 0,
            "a cancelled request left its connection open",
        )

    async def test_closed_stream_releases_connection(self, server: LoopbackServer) -> None:
        """Closing a stream after its first chunk (then the provider) closes the connection."""
        provider = self.make_provider(server)
        with anyio.fail_after(self.call_timeout):
            stream = provider.stream(self.messages())
            first = await anext(stream)
            assert isinstance(first, Chunk)
            aclose = getattr(stream, "aclose", None)
            assert aclose is not None, "stream() must return an async generator (with aclose)"
            await aclose()
            await provider.aclose()
        await self.wait_until(
            lambda: server.open_connections == 0,
            "a closed stream left its connection open",
        )

    # -- health ----------------------------------------------------------------------------

    async def test_health_check_true_when_serving(self, server: LoopbackServer) -> None:
        """A reachable, working API is healthy."""
        async with self.make_provider(server) as provider:
            with anyio.fail_after(self.call_timeout):
                healthy = await provider.health_check()
        assert healthy is True, f"health_check() returned {healthy!r} for a working API"

    async def test_health_check_false_during_outage(
        self, server: LoopbackServer, app: ScriptableApp
    ) -> None:
        """An API answering 503 is unhealthy; ``health_check`` returns False, not raises."""
        app.outage = True
        async with self.make_provider(server) as provider:
            with anyio.fail_after(self.call_timeout):
                healthy = await provider.health_check()
        assert healthy is False, f"health_check() returned {healthy!r} during an outage"

    async def test_health_check_false_when_server_down(self, app: ScriptableApp) -> None:
        """Nothing listening: ``health_check`` returns False (within the timeout)."""
        with self.private_server(app) as server:
            provider = self.make_provider(server, timeout=2.0)
        async with provider:
            with anyio.fail_after(self.call_timeout):
                healthy = await provider.health_check()
        assert healthy is False, f"health_check() returned {healthy!r} with no server"

    # -- secrets ---------------------------------------------------------------------------

    async def test_secrets_never_leak(
        self, app: ScriptableApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Credentials appear in no log record, error text or repr — not even when the
        vendor echoes them back in an error message."""
        caplog.set_level(logging.DEBUG)
        with self.private_server(app) as server:
            await self._leak_scenario(server, app, caplog)

    async def _leak_scenario(
        self, server: LoopbackServer, app: ScriptableApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        provider = self.make_provider(server, max_retries=1)
        secrets = _secret_values(provider.config)
        assert secrets, (
            f"{type(provider.config).__name__} holds no credential typed SecretStr; "
            "declare credential fields as orchestrator.config.SecretStr"
        )
        texts = [repr(provider), repr(provider.config), str(provider.config)]
        texts.append(provider.config.model_dump_json())
        errors: list[BaseException] = []
        with anyio.fail_after(self.call_timeout):
            async with provider:
                await provider.chat(self.messages())
                async for _ in provider.stream(self.messages()):
                    pass
                app.fail_next(401, times=3, message=f"API key {secrets[0]} is invalid")
                with pytest.raises(ProviderError) as info:
                    await provider.chat(self.messages())
                errors.append(info.value)
                app.fail_next(503, times=2, message=f"upstream rejected {secrets[0]}")
                with pytest.raises(ProviderError) as info:
                    await provider.chat(self.messages())
                errors.append(info.value)
                app.outage = True
                await provider.health_check()
                app.outage = False
            down = self.make_provider(server)  # built first: stop() removes a TLS server's CA
            server.stop()
            async with down:
                with pytest.raises(OrchestratorError) as failure:
                    await down.chat(self.messages())
                errors.append(failure.value)
                await down.health_check()
        for error in errors:
            texts.extend(_error_texts(error))
        for record in caplog.records:
            texts.append(record.getMessage())
            texts.append(record.exc_text or "")
        texts.append(caplog.text)
        for secret in secrets:
            # Whole, or its first characters (a gateway echoing ``sk-proj-AbCd…``): what
            # the library's redaction masks must not show anywhere else either.
            leaks = [text for text in texts if reveals(text, secret)]
            assert not leaks, (
                f"a credential (or its first {PREFIX_LENGTH}+ characters) leaked into: "
                f"{redact(leaks[0])[:200]!r}"
            )

    # -- registration and routing ------------------------------------------------------------

    async def test_registered_under_entry_point(self) -> None:
        """``PluginRegistry()`` finds the provider by its entry-point name."""
        registry = self.make_registry()
        registry.load()  # other broken plugins are logged and listed, never raised
        failed = [f for f in registry.failures if f.plugin == self.entry_point]
        assert not failed, f"the plugin failed to load: {failed[0].reason}"
        info = registry.provider_info(self.entry_point)
        assert info.cls is self.provider_class, (
            f"{self.entry_point!r} is registered as {info.cls.__qualname__}, "
            f"not {self.provider_class.__qualname__}"
        )

    async def test_router_routes_to_provider(self, server: LoopbackServer) -> None:
        """A ``Router`` answers and streams through the provider."""
        from orchestrator.router import Router

        router = Router(registry=PluginRegistry(entry_points=False))
        router.add_provider(self.make_provider(server))
        async with router:
            with anyio.fail_after(self.call_timeout):
                text = await router.route(self.prompt)
                chunks = [c async for c in router.chat_stream(self.messages())]
        assert isinstance(text, str)
        assert text
        assert "".join(c.delta for c in chunks) == text

    # -- capabilities (collected only for what the provider declares) ---------------------

    #: The tool the capability tests offer, and what the scripted model calls it with.
    weather_tool: ClassVar[Tool] = Tool(
        "get_weather",
        "Current weather in a city",
        {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    )

    def scripted_model(self, app: ScriptableApp) -> ScriptableModel:
        """``app`` as a :class:`ScriptableModel` (failing the test when it is not one)."""
        from orchestrator.testing.scripting import ScriptableModel

        if not isinstance(app, ScriptableModel):
            pytest.fail(
                f"{type(app).__name__} cannot script the model's answers; the capability "
                "tests need an app with call_tools_next() and reply_next() "
                "(orchestrator.testing.ScriptableModel)"
            )
        return app

    def _router(self, server: LoopbackServer) -> Any:
        from orchestrator.router import Router

        router = Router(registry=PluginRegistry(entry_points=False), on_invalid_output="raise")
        router.add_provider(self.make_provider(server))
        return router

    async def test_tool_round_trip(self, server: LoopbackServer, app: ScriptableApp) -> None:
        """The model calls a tool (a whole :class:`ToolCall`, ``finish_reason`` ``tool_calls``),
        the result goes back in a ``tool`` message, and the model answers with text."""
        model = self.scripted_model(app)
        params = GenerationParams(tools=[self.weather_tool])
        model.call_tools_next(("get_weather", {"city": "Moscow"}))
        model.reply_next("It is 8 degrees in Moscow.")
        async with self._router(server) as router:
            with anyio.fail_after(self.call_timeout):
                first = await router.chat(self.messages(), params)
                assert first.finish_reason == "tool_calls", first
                assert len(first.tool_calls) == 1, first.tool_calls
                (call,) = first.tool_calls
                assert isinstance(call, ToolCall)
                assert call.id
                assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Moscow"})
                history = [
                    *self.messages(),
                    Message("assistant", first.text, first.tool_calls),
                    Message.tool_result(call, {"temperature": 8, "unit": "C"}),
                ]
                final = await router.chat(history, params)
        assert final.text == "It is 8 degrees in Moscow."
        assert final.tool_calls == ()
        assert final.finish_reason == "stop"

    async def test_streamed_tool_call_arrives_whole(
        self, server: LoopbackServer, app: ScriptableApp
    ) -> None:
        """A streamed tool call reaches the caller whole (never half an argument string), and
        the last chunk says ``tool_calls``."""
        model = self.scripted_model(app)
        arguments = {"city": 'Нижний Новгород, набережная "Федоровского"'}
        model.call_tools_next(("get_weather", arguments))
        params = GenerationParams(tools=[self.weather_tool])
        async with self.make_provider(server) as provider:
            with anyio.fail_after(self.call_timeout):
                chunks = [c async for c in provider.stream(self.messages(), params)]
        calls = [call for chunk in chunks for call in chunk.tool_calls]
        assert [(c.name, dict(c.arguments)) for c in calls] == [("get_weather", arguments)]
        assert chunks[-1].finish_reason == "tool_calls"
        model.call_tools_next(("get_weather", arguments))
        async with self._router(server) as router:
            with anyio.fail_after(self.call_timeout):
                routed = [c async for c in router.chat_stream(self.messages(), params)]
        assert next(c for chunk in routed for c in chunk.tool_calls).arguments == arguments

    async def test_parallel_tool_calls(self, server: LoopbackServer, app: ScriptableApp) -> None:
        """Several calls in one answer arrive in order, and go back in one conversation."""
        model = self.scripted_model(app)
        model.call_tools_next(
            ("get_weather", {"city": "Moscow"}), ("get_weather", {"city": "Kazan"})
        )
        model.reply_next("Both are cold.")
        params = GenerationParams(tools=[self.weather_tool])
        async with self._router(server) as router:
            with anyio.fail_after(self.call_timeout):
                first = await router.chat(self.messages(), params)
                cities = [dict(c.arguments)["city"] for c in first.tool_calls]
                assert cities == ["Moscow", "Kazan"]
                assert len({c.id for c in first.tool_calls}) == 2, "tool call ids must differ"
                history = [
                    *self.messages(),
                    Message("assistant", first.text, first.tool_calls),
                    *(Message.tool_result(c, "cold") for c in first.tool_calls),
                ]
                final = await router.chat(history, params)
        assert final.text == "Both are cold."

    async def test_structured_output_is_validated(
        self, server: LoopbackServer, app: ScriptableApp
    ) -> None:
        """A ``response_format`` answer comes back parsed; one that does not match the schema
        is a :class:`StructuredOutputError` carrying the raw text."""
        from pydantic import BaseModel

        class Answer(BaseModel):
            answer: str
            n: int

        model = self.scripted_model(app)
        model.reply_next('{"answer": "ok", "n": 3}')
        model.reply_next('{"answer": "ok"}')
        async with self._router(server) as router:
            with anyio.fail_after(self.call_timeout):
                good = await router.chat(self.messages(), {"response_format": Answer})
                assert good.parsed == Answer(answer="ok", n=3)
                with pytest.raises(StructuredOutputError) as info:
                    await router.chat(self.messages(), {"response_format": Answer})
        assert json.loads(info.value.raw_text) == {"answer": "ok"}
        assert info.value.provider == self.entry_point or info.value.provider

    async def test_embeddings_order_and_dimension(self, server: LoopbackServer) -> None:
        """One vector per text, in the texts' order, each of the declared dimension, across
        several batches (the emulator's vectors must depend on the text only)."""
        async with self.make_provider(server) as provider:
            space = provider.embedding_space()
            assert space is not None, "embed() is implemented but embedding_space() is None"
            texts = [f"text number {i}" for i in range(min(2 * space.max_batch + 1, 7))]
            router = self._router(server)
            with anyio.fail_after(self.call_timeout):
                result = await router.embed(texts)
                alone = [(await provider.embed([t])).vectors[0] for t in texts]
        assert len(result.vectors) == len(texts)
        assert all(len(v) == space.dimension for v in result.vectors)
        assert result.space == space.name
        assert [list(v) for v in result.vectors] == [list(v) for v in alone], (
            "the batch's vectors are not in the order of the texts"
        )


#: The capability each capability test needs (not collected without it).
_CAPABILITY_TESTS: dict[str, Capability] = {
    "test_tool_round_trip": "tools",
    "test_streamed_tool_call_arrives_whole": "tools",
    "test_parallel_tool_calls": "parallel_tool_calls",
    "test_structured_output_is_validated": "structured_output",
    "test_embeddings_order_and_dimension": "embeddings",
}

ProviderContract._standard_tests = frozenset(
    name for name in vars(ProviderContract) if name.startswith("test_")
)
