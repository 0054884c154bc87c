"""A throwaway redis-server on a free loopback port, for tests and the soak.

Needs the ``redis-server`` binary (Debian: ``apt-get install redis-server``). Nothing is
persisted (``--save "" --appendonly no``): a restart starts empty, like a lost Redis.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from types import TracebackType

__all__ = ["RedisServer", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """``with RedisServer() as server:`` — ``server.url``; ``stop()`` and ``start()`` kill
    and restart it on the same port (empty)."""

    def __init__(self, port: int | None = None, startup: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server not found on PATH; install it (Debian: apt-get install redis-server)"
            )
        self.binary = binary
        self.port = port or free_port()
        self.startup = startup
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.process is not None:
            raise RuntimeError("redis-server is already running")
        self.process = subprocess.Popen(  # noqa: S603 (our own fixed argv)
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.startup
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def command(self, *args: str) -> str | None:
        """Run one command over a raw socket; its reply as text (None for a nil reply).
        Enough for tests to peek at keys without an event loop."""
        request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(request.encode())
            reply = b""
            while not reply.endswith(b"\r\n") or (
                reply.startswith(b"$") and reply.count(b"\r\n") < 2 and not reply.startswith(b"$-1")
            ):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        head, _, rest = reply.partition(b"\r\n")
        if head.startswith(b"$-1"):
            return None
        if head.startswith(b"$"):
            return rest[: int(head[1:])].decode()
        if head[:1] in (b"+", b":"):
            return head[1:].decode()
        raise RuntimeError(f"redis-server replied {head.decode(errors='replace')}")

    def stop(self) -> None:
        """Kill it (SIGKILL: nothing is saved, clients see the connection drop)."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
