"""Serve an ASGI app on a real loopback socket, over HTTP or HTTPS, from any context.

The server runs uvicorn on its own thread and event loop, so tests on asyncio, on trio and
synchronous code can all talk to it. HTTPS uses a throwaway CA made by ``trustme``; point
clients at ``server.ca_file`` (for example ``ProviderConfig``'s CA-bundle option).

    with LoopbackServer(app, tls=True) as server:
        httpx.get(server.base_url + "/models", verify=server.ca_file)

Needs the ``testing`` extra: ``pip install "multi-llm-orchestrator-core[testing]"``.
"""

from __future__ import annotations

import functools
import socket
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """An ASGI app listening on ``127.0.0.1:<free port>`` until ``stop()``."""

    def __init__(
        self,
        app: Any,
        *,
        tls: bool = False,
        client_certs: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if client_certs and not tls:
            raise ValueError("client_certs (mutual TLS) needs tls=True")
        self.app = app
        self.tls = tls
        #: Mutual TLS: the server demands a client certificate signed by its CA; use
        #: ``client_cert_file``/``client_key_file`` (issued by that CA) in the client.
        self.client_certs = client_certs
        self.client_cert_file: str | None = None
        self.client_key_file: str | None = None
        self.host = host
        self.port = port
        self.ca_file: str | None = None
        self.cert_file: str | None = None
        self.key_file: str | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http(s)://127.0.0.1:<port>`` (no trailing slash)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        """Connections the server holds open right now (0 once clients released them)."""
        if self._server is None:
            return 0
        return len(self._server.server_state.connections)

    def _make_certificates(self) -> dict[str, Any]:
        import trustme

        self._tmp = tempfile.TemporaryDirectory(prefix="orchestrator-tls-")
        folder = Path(self._tmp.name)
        ca = trustme.CA()
        cert = ca.issue_cert(self.host, "localhost")
        self.ca_file = str(folder / "ca.pem")
        self.cert_file = str(folder / "server.pem")
        self.key_file = str(folder / "server.key")
        ca.cert_pem.write_to_path(self.ca_file)
        cert.private_key_pem.write_to_path(self.key_file)
        with open(self.cert_file, "wb") as handle:
            for blob in cert.cert_chain_pems:
                handle.write(blob.bytes())
        self.ca = ca
        options: dict[str, Any] = {"ssl_certfile": self.cert_file, "ssl_keyfile": self.key_file}
        if self.client_certs:
            import ssl

            client = ca.issue_cert("client.orchestrator.test")
            self.client_cert_file = str(folder / "client.pem")
            self.client_key_file = str(folder / "client.key")
            client.cert_chain_pems[0].write_to_path(self.client_cert_file)
            client.private_key_pem.write_to_path(self.client_key_file)
            options.update(ssl_ca_certs=self.ca_file, ssl_cert_reqs=ssl.CERT_REQUIRED)
        return options

    def start(self, timeout: float = 10.0) -> LoopbackServer:
        """Start serving; returns once the socket accepts connections."""
        import uvicorn

        ssl_options = self._make_certificates() if self.tls else {}
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP,
        # and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            ws="none",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=2,
            **ssl_options,
        )
        self._server = _server_class()(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            daemon=True,
            name=f"loopback-server-{self.port}",
        )
        self._thread.start()
        until = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > until:
                raise RuntimeError("the loopback server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop the server (every connection it holds is closed) and remove its certificates."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@functools.cache
def _server_class() -> type[Any]:
    """uvicorn's ``Server``, closing every connection when it stops (imported on first use:
    uvicorn comes with the ``testing`` extra)."""
    import asyncio

    import anyio.lowlevel
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn asks the connections open when its shutdown begins to close. A connection
        accepted at that moment (its ``connection_made`` runs an iteration later) is never
        asked: it keeps serving keep-alive requests, holds the shutdown for the whole
        graceful timeout, and is still open when the server's loop closes, so its socket
        outlives the server (a client that pooled it waits on a server that will never
        answer; the collector reports the transport as a ResourceWarning). The soak met
        it when a client connected just as an outage stopped an emulator."""

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            connections = self.server_state.connections
            asked = set(connections)  # the ones uvicorn's own shutdown asks

            async def ask_late_ones() -> None:
                while True:
                    await anyio.sleep(0.01)
                    for connection in connections - asked:
                        asked.add(connection)
                        connection.shutdown()

            late = asyncio.create_task(ask_late_ones())
            try:
                await super().shutdown(sockets)
            finally:
                late.cancel()
            # Still open after the graceful timeout (a handler that never finished).
            for connection in list(connections):
                connection.transport.abort()
            await anyio.lowlevel.checkpoint()  # the aborted transports close their sockets

    return Server
