"""The gateway as a plain ASGI application (any ASGI server; ``orchestrator serve`` runs it on
uvicorn): ``POST /v1/chat/completions``, ``POST /v1/embeddings``, ``GET /v1/models``,
``GET /health/liveliness`` and ``GET /health/readiness``.

Order of checks for a request: route, shutting down (503), API key (401), body size (413),
JSON and parameters (400), model (404) and the key's allow-list (403), the key's budget and
rate limits (429) — all before any provider is called.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Mapping,
    MutableMapping,
    Sequence,
)
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anyio

from orchestrator import GenerationParams, Router
from orchestrator._secrets import get_logger
from orchestrator.errors import ConfigurationError
from orchestrator.types import Chunk, Usage
from orchestrator_gateway import wire
from orchestrator_gateway.config import GatewaySettings, KeySettings
from orchestrator_gateway.errors import GatewayError, from_exception
from orchestrator_gateway.keys import Client, Keyring, KeyState, LocalKeyState

__all__ = ["Gateway", "Target", "create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = get_logger("orchestrator.gateway")
_JSON = (b"content-type", b"application/json")


class _Disconnected(Exception):
    """The client went away while sending its request: nothing to answer."""


@dataclass(frozen=True, slots=True)
class Target:
    """What a model name means: a router (the whole one, or a virtual model's view), maybe
    pinned to one provider and one of its models."""

    id: str
    router: Router
    owned_by: str
    provider: str | None = None
    model: str | None = None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _tokens(usage: Usage | None) -> int:
    if usage is None:
        return 0
    return usage.total_tokens or usage.prompt_tokens + usage.completion_tokens


class Gateway:
    """The ASGI app over ``router``; build it with :func:`create_app`."""

    def __init__(
        self,
        router: Router,
        settings: GatewaySettings,
        *,
        key_state: KeyState | None = None,
        env: Mapping[str, str] | None = None,
        owns_router: bool = False,
    ) -> None:
        self.router = router
        self.settings = settings
        self.keyring = Keyring(settings.keys, settings.key_hashes(env))
        self.key_state: KeyState = key_state or LocalKeyState()
        self.owns_router = owns_router
        self.shutting_down = False
        self.in_flight = 0
        self._pinned: dict[str, Target] = {}  # provider name -> its target
        self.targets = self._catalog()
        self._anonymous = Client("anonymous", KeySettings(key_sha256="0" * 64))

    def _catalog(self) -> dict[str, Target]:
        router = self.router
        targets = {
            self.settings.default_model: Target(self.settings.default_model, router, "orchestrator")
        }
        for name, virtual in self.settings.models.items():
            try:
                view = router.view(virtual.providers, virtual.strategy)
            except ConfigurationError as exc:
                raise ConfigurationError(f"gateway.models.{name}: {exc}") from None
            targets[name] = Target(name, view, "orchestrator")
        for provider in router.providers:
            config = provider.config
            kind = getattr(type(provider), "provider_name", None) or type(provider).__name__
            model_id = f"{config.name}/{config.model}" if config.model else config.name
            pinned = Target(model_id, router, kind, config.name)
            targets.setdefault(model_id, pinned)
            self._pinned[config.name] = pinned
        return targets

    def begin_shutdown(self) -> None:
        """Refuse new requests (503, so a load balancer retries elsewhere) and report
        ``shutting_down``; requests in flight, streams too, run to their end."""
        self.shutting_down = True

    # -- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: not served
            return
        try:
            await self._route(scope, receive, send)
        except GatewayError as error:
            await self._error(send, error)
        except _Disconnected:
            pass

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.owns_router:  # on the serving loop: enters its shared state, if any
                    await self.router.__aenter__()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.begin_shutdown()
                if self.owns_router:  # closes the providers' connections (and the state)
                    await self.router.__aexit__(None, None, None)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"].rstrip("/")
        method: str = scope["method"]
        if path in ("/health/liveliness", "/health/liveness"):
            self._method(method, "GET")
            await self._liveliness(send)
            return
        if path == "/health/readiness":
            self._method(method, "GET")
            await self._readiness(send)
            return
        path = path.removeprefix("/v1")
        if path == "/models" or path.startswith("/models/"):
            self._method(method, "GET")
            client = self._client(scope)
            await self._models(send, client, path.removeprefix("/models").lstrip("/"))
            return
        handlers = {"/chat/completions": self._chat, "/embeddings": self._embeddings}
        post = handlers.get(path)
        if post is None:
            raise GatewayError(404, f"Unknown URL: {method} {scope['path']}", code="unknown_url")
        self._method(method, "POST")
        if self.shutting_down:
            raise GatewayError(
                503,
                "The gateway is shutting down; retry",
                "server_error",
                "shutting_down",
                retry=True,
            )
        client = self._client(scope)
        body = await self._body(scope, receive)
        error: GatewayError | None = None
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        self.in_flight += 1
        try:
            async with anyio.create_task_group() as tg:
                # A name: anyio would otherwise build one from the function's repr per request.
                tg.start_soon(self._watch_disconnect, receive, tg.cancel_scope, name="disconnect")
                try:
                    await post(client, body, tracked)
                except GatewayError as exc:  # raised below, not inside an ExceptionGroup
                    error = exc
                except Exception as exc:  # a bug of the gateway: a 500 and the log
                    logger.error("unexpected %s", type(exc).__name__, exc_info=exc)
                    error = from_exception(exc)
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self.in_flight -= 1
        if error is not None:
            if started:  # too late for a status: the response is under way
                logger.error("error after the response started: %d %s", error.status, error.code)
                return
            raise error

    @staticmethod
    def _method(method: str, allowed: str) -> None:
        if method != allowed:
            raise GatewayError(
                405, f"Method {method} not allowed here; use {allowed}", code="method_not_allowed"
            )

    @staticmethod
    async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
        """Cancel the request's work when the client goes away (the router then cancels the
        provider's HTTP request and releases its connection)."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return

    def _client(self, scope: Scope) -> Client:
        authorization = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        if authorization is None and self.settings.allow_unauthenticated:
            return self._anonymous
        return self.keyring.client(authorization)

    async def _body(self, scope: Scope, receive: Receive) -> Any:
        limit = self.settings.max_request_bytes
        too_large = GatewayError(
            413,
            f"Request body larger than {limit} bytes (gateway.max_request_bytes)",
            code="request_too_large",
        )
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise too_large
        parts: list[bytes] = []
        size = 0
        # A client trickling its body (slowloris) holds a connection: only so long.
        with anyio.move_on_after(self.settings.body_timeout) as waited:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise too_large
                parts.append(chunk)
                if not message.get("more_body", False):
                    break
        if waited.cancelled_caught:
            raise GatewayError(
                408,
                f"The request body took longer than {self.settings.body_timeout:g}s to arrive",
                code="request_timeout",
            )
        try:
            return json.loads(b"".join(parts))
        except (ValueError, RecursionError):  # RecursionError: nesting too deep to decode
            raise GatewayError(
                400, "The request body is not valid JSON", code="invalid_json"
            ) from None

    def _target(self, client: Client, model: str) -> Target:
        target = self.targets.get(model)
        if target is None:  # "provider" or "provider/any-model-it-serves"
            name, _, rest = model.partition("/")
            pinned = self._pinned.get(name)
            if pinned is not None:
                target = Target(
                    model, pinned.router, pinned.owned_by, pinned.provider, rest or None
                )
        if target is None:
            raise GatewayError(
                404,
                f"The model {model!r} does not exist here; GET /v1/models lists the models",
                code="model_not_found",
                param="model",
            )
        if not (client.may_use(target.id) or client.may_use(model)):
            raise GatewayError(
                403,
                f"API key {client.name!r} may not use model {model!r}",
                "invalid_request_error",
                "model_not_allowed",
                "model",
            )
        return target

    @staticmethod
    def _params(target: Target, params: GenerationParams | None) -> GenerationParams | None:
        if target.model is None:
            return params
        if params is None:
            return GenerationParams(model=target.model)
        return params.model_copy(update={"model": target.model})

    # -- responses -----------------------------------------------------------------------

    @staticmethod
    async def _json(
        send: Send,
        status: int,
        value: Any,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        body = _dumps(value)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _error(self, send: Send, error: GatewayError) -> None:
        if error.status >= 500:
            logger.warning("gateway answered %d %s", error.status, error.code)
        await self._json(send, error.status, error.body(), error.response_headers())

    async def _liveliness(self, send: Send) -> None:
        if self.shutting_down:
            await self._json(send, 503, {"status": "shutting_down"})
        else:
            await self._json(send, 200, "I'm alive!")

    async def _readiness(self, send: Send) -> None:
        breakers = {slot.name: slot.breaker.state for slot in self.router.slots}
        ready = not self.shutting_down and any(state != "open" for state in breakers.values())
        status = "healthy" if ready else "shutting_down" if self.shutting_down else "unhealthy"
        await self._json(
            send,
            200 if ready else 503,
            {"status": status, "providers": breakers, "in_flight": self.in_flight},
        )

    async def _models(self, send: Send, client: Client, one: str) -> None:
        data = [
            {"id": t.id, "object": "model", "created": 0, "owned_by": t.owned_by}
            for t in self.targets.values()
            if client.may_use(t.id)
        ]
        if one:
            found = next((m for m in data if m["id"] == one), None)
            if found is None:
                raise GatewayError(
                    404, f"The model {one!r} does not exist here", code="model_not_found"
                )
            await self._json(send, 200, found)
            return
        await self._json(send, 200, {"object": "list", "data": data})

    # -- chat ----------------------------------------------------------------------------

    async def _chat(self, client: Client, body: Any, send: Send) -> None:
        request = wire.parse_chat(body)
        target = self._target(client, request.model)
        params = self._params(target, request.params)
        await self.key_state.admit(client)
        started = time.monotonic()
        if request.stream:
            await self._stream(client, target, request, params, send)
            return
        try:
            completion = await target.router.chat(
                request.messages, params, provider=target.provider
            )
        except Exception as exc:
            raise self._failed(client, target, exc) from None
        await self.key_state.record(client, _tokens(completion.usage), completion.cost)
        logger.info(
            "key=%s model=%s provider=%s %.3fs",
            client.name,
            target.id,
            completion.provider,
            time.monotonic() - started,
        )
        await self._json(
            send,
            200,
            wire.completion_json(completion, target.id),
            [(b"x-orchestrator-provider", completion.provider.encode("utf-8", "replace"))],
        )

    def _failed(self, client: Client, target: Target, exc: Exception) -> GatewayError:
        error = from_exception(exc)
        if error.status == 500:
            logger.error(
                "key=%s model=%s: unexpected %s",
                client.name,
                target.id,
                type(exc).__name__,
                exc_info=exc,
            )
        else:
            logger.info("key=%s model=%s: %d %s", client.name, target.id, error.status, error.code)
        return error

    async def _stream(
        self,
        client: Client,
        target: Target,
        request: wire.ChatRequest,
        params: GenerationParams | None,
        send: Send,
    ) -> None:
        chunks: AsyncGenerator[Chunk, None] = target.router.chat_stream(
            request.messages, params, provider=target.provider
        )
        async with contextlib.aclosing(chunks):
            try:
                # Before the first chunk nothing is sent: a failure is a plain HTTP error.
                first: Chunk | None = await chunks.__anext__()
            except StopAsyncIteration:
                first = None
            except Exception as exc:
                raise self._failed(client, target, exc) from None
            provider = first.provider if first is not None else ""
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),
                        (b"x-orchestrator-provider", provider.encode("utf-8", "replace")),
                    ],
                }
            )
            writer = wire.ChunkWriter(target.id, request.include_usage)
            usage: Usage | None = None
            cost: Decimal | None = None
            chunk = first
            try:
                try:
                    while chunk is not None:
                        usage = chunk.usage or usage
                        cost = chunk.cost if chunk.cost is not None else cost
                        for event in writer.chunk(chunk):
                            await self._event(send, event)
                        chunk = await anext(chunks, None)
                except Exception as exc:
                    # After the first token: an error event, never a silently cut stream.
                    error = self._failed(client, target, exc)
                    await self._event(send, error.body())
                    await send({"type": "http.response.body", "body": b""})
                    return
                final = writer.usage_event()
                if final is not None:
                    await self._event(send, final)
                await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
            finally:
                # Also when the client went away mid-stream: what is known counts for its key.
                with anyio.CancelScope(shield=True):
                    await self.key_state.record(client, _tokens(usage), cost)

    @staticmethod
    async def _event(send: Send, value: Any) -> None:
        await send(
            {
                "type": "http.response.body",
                "body": b"data: " + _dumps(value) + b"\n\n",
                "more_body": True,
            }
        )

    # -- embeddings ----------------------------------------------------------------------

    async def _embeddings(self, client: Client, body: Any, send: Send) -> None:
        request = wire.parse_embeddings(body, self.settings.max_embedding_inputs)
        target = self._target(client, request.model)
        if target.model is not None:
            raise GatewayError(
                400,
                f"model {request.model!r}: embeddings come from a provider's embedding model; "
                f"ask for {target.provider!r} or a virtual model",
                code="model_not_found",
                param="model",
            )
        await self.key_state.admit(client)
        try:
            result = await target.router.embed(request.texts, provider=target.provider)
        except Exception as exc:
            raise self._failed(client, target, exc) from None
        await self.key_state.record(client, _tokens(result.usage), result.cost)
        await self._json(
            send,
            200,
            wire.embeddings_json(result, target.id, request.base64),
            [(b"x-orchestrator-provider", result.provider.encode("utf-8", "replace"))],
        )


def create_app(
    router: Router,
    settings: GatewaySettings | Mapping[str, Any] | None = None,
    *,
    key_state: KeyState | None = None,
    env: Mapping[str, str] | None = None,
) -> Gateway:
    """The gateway's ASGI app over ``router`` (mount it in any ASGI server or framework).

    ``settings``: a :class:`GatewaySettings` or the ``[gateway]`` table as a dict.
    ``key_state``: where per-key counters live (default: this process; see
    :mod:`orchestrator_gateway.keys`). The caller keeps ownership of ``router``.
    """
    from orchestrator_gateway.config import load_gateway_settings

    if not isinstance(settings, GatewaySettings):
        settings = load_gateway_settings(settings)
    return Gateway(router, settings, key_state=key_state, env=env)
