"""``orchestrator serve``: the router of ``orchestrator.toml`` behind the gateway, on uvicorn.

The router is built by :meth:`Router.from_config` from the same file, so everything the
router's configuration sets up is what the gateway uses — a shared state backend too, when
the file configures one: N replicas with the same file then share rate limits, breakers and
budgets. (Per-key counters: see :mod:`orchestrator_gateway.keys`.)
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn

from orchestrator import Router
from orchestrator._secrets import get_logger
from orchestrator.errors import ConfigurationError
from orchestrator_gateway.app import Gateway
from orchestrator_gateway.config import load_gateway_settings
from orchestrator_gateway.keys import KeyState, LocalKeyState, SharedKeyState

__all__ = ["GatewayServer", "app_from_config", "serve"]

logger = get_logger("orchestrator.gateway")


def _gateway_table(path: Path) -> Mapping[str, Any] | None:
    # Router.from_config has read and checked the file already (it reports errors with
    # lines); here only the [gateway] table is wanted.
    with path.open("rb") as file:
        table = tomllib.load(file).get("gateway")
    if table is not None and not isinstance(table, Mapping):
        raise ConfigurationError(f"{path}: gateway must be a table ([gateway])")
    return table


def key_state_for(router: Router) -> KeyState:
    """Where per-key counters live: in the router's shared state when its configuration
    gives it one that can count under a name (``[state]``, e.g. orchestrator-redis's
    ``acquire``), so every replica counts each key once; else in this process."""
    state = getattr(router, "state", None)
    if state is not None and callable(getattr(state, "acquire", None)):
        return SharedKeyState(state)
    return LocalKeyState()


def app_from_config(
    path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
) -> Gateway:
    """The gateway over the router configured in ``path`` (the app owns that router: it
    closes the providers' connections on shutdown)."""
    file = Path(path)
    router = Router.from_config(file)
    settings = load_gateway_settings(_gateway_table(file))
    return Gateway(router, settings, key_state=key_state_for(router), env=env, owns_router=True)


class GatewayServer(uvicorn.Server):
    """uvicorn's server that tells the gateway it is shutting down the moment SIGTERM or
    Ctrl-C arrives: liveliness turns 503 and new requests get 503 while in-flight requests
    and streams finish (up to ``shutdown_timeout`` seconds)."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.gateway.begin_shutdown()
        super().handle_exit(sig, frame)


def server_for(gateway: Gateway, host: str | None = None, port: int | None = None) -> GatewayServer:
    settings = gateway.settings
    config = uvicorn.Config(
        gateway,
        host=host or settings.host,
        port=settings.port if port is None else port,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_timeout + 0.999),
        server_header=False,
        log_level="info",
    )
    return GatewayServer(config, gateway)


def serve(path: str | os.PathLike[str], *, host: str | None = None, port: int | None = None) -> int:
    """Run the gateway until SIGTERM or Ctrl-C; the exit code."""
    gateway = app_from_config(path)
    server = server_for(gateway, host, port)
    bound = server.config.host
    if bound not in ("127.0.0.1", "localhost", "::1"):
        logger.warning(
            "the gateway listens on %s, not only loopback: put TLS in front of it", bound
        )
    sock = bind(bound, server.config.port)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, made with IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets
    whose protocol says TCP (uvicorn's own have 0), and without it a response written in two
    parts (headers, body) can wait for the client's delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --host/--port"
        ) from None
    return sock
