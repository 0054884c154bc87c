"""LoopbackServer.stop() closes every connection the server holds, however it came."""

from __future__ import annotations

import contextlib
import gc
import socket
import threading
import time
import warnings
from typing import Any

import anyio

from orchestrator.testing import LoopbackServer


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def _request(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        client.sendall(b"GET / HTTP/1.1\r\nHost: loopback\r\n\r\n")
    except OSError:  # the server closed it already
        client.close()
        raise
    return client


def _closed_by_server(client: socket.socket) -> bool:
    """Read what the server sent until it closed the connection (False: still open)."""
    client.settimeout(3)
    try:
        while client.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def _hammer(port: int, held: list[socket.socket], stopping: threading.Event) -> None:
    while not stopping.is_set() and len(held) < 500:  # well inside any descriptor limit
        with contextlib.suppress(OSError):  # refused once the listening socket is closed
            held.append(_request(port))
        time.sleep(0.001)


def test_connections_opened_while_it_stops_are_closed() -> None:
    """Clients keep connecting (keep-alive requests) while stop() runs: the ones accepted
    as uvicorn's shutdown began were never asked to close, held the stop for the graceful
    timeout and were left open past the server's loop (ResourceWarnings when collected)."""
    for _ in range(3):
        server = LoopbackServer(_ok).start()
        held: list[socket.socket] = []
        stopping = threading.Event()
        thread = threading.Thread(target=_hammer, args=(server.port, held, stopping))
        thread.start()
        while len(held) < 20:
            time.sleep(0.001)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            server.stop()
            stopping.set()
            thread.join()
            assert server.open_connections == 0
            assert all(_closed_by_server(client) for client in held)
            for client in held:
                client.close()
            gc.collect()
        assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


async def _stubborn(scope: Any, receive: Any, send: Any) -> None:
    """Ignores the cancellation uvicorn sends when the graceful timeout runs out."""
    if scope["type"] != "http":
        return
    try:
        await anyio.sleep(30)
    except anyio.get_cancelled_exc_class():
        await anyio.sleep(30)


def test_a_connection_outliving_the_graceful_timeout_is_closed() -> None:
    server = LoopbackServer(_stubborn).start()
    client = _request(server.port)
    while server.open_connections == 0:
        time.sleep(0.001)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        server.stop()
        assert server.open_connections == 0
        assert _closed_by_server(client)
        client.close()
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
