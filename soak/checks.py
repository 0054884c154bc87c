"""What must be back to rest once every request has returned: connections, tasks, the
router's counters, memory; and what must never have happened: warnings, unraisable errors.

These read private state on purpose (httpx's pool, the breaker's probe count): a soak is
where the inside is checked, so the public surface can stay small.
"""

from __future__ import annotations

import collections
import gc
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sniffio

from orchestrator import Router
from orchestrator.providers.base import BaseProvider


def pool_usage(provider: BaseProvider) -> tuple[int, int]:
    """(connections busy, requests queued or holding a connection) in every HTTP client the
    provider keeps (one per event loop)."""
    busy = queued = 0
    for state in list(provider._loops.values()):
        client = state.client
        if client is None:
            continue
        pool = getattr(client._transport, "_pool", None)
        if pool is None:  # the aiohttp transport: its connector is the pool
            inner = getattr(client._transport, "inner", client._transport)
            connector = getattr(getattr(inner, "session", None), "connector", None)
            if connector is not None:
                busy += len(connector._acquired)
                queued += sum(len(waiters) for waiters in connector._waiters.values())
            continue
        queued += len(pool._requests)
        busy += sum(1 for c in pool.connections if not c.is_idle() and not c.is_closed())
    return busy, queued


def router_counters(router: Router) -> dict[str, int]:
    """Every in-flight counter of the router that must be 0 when no request runs."""
    counters = {}
    for slot in router.slots:
        counters[f"{slot.name} stats.in_flight"] = slot.stats.in_flight
        if slot.limits is not None:
            counters[f"{slot.name} limits.in_flight"] = slot.limits.in_flight
        counters[f"{slot.name} breaker probes"] = slot.breaker._probes_in_flight
    return counters


def tasks() -> set[Any]:
    """Every task of the running event loop (asyncio or trio)."""
    if sniffio.current_async_library() == "trio":
        import trio

        found: set[Any] = set()
        stack: list[Any] = [trio.lowlevel.current_root_task()]
        while stack:
            task = stack.pop()
            found.add(task)
            for nursery in task.child_nurseries:
                stack.extend(nursery.child_tasks)
        return found
    import asyncio

    return set(asyncio.all_tasks())


def describe_task(task: Any) -> str:
    coro = getattr(task, "coro", None) or getattr(task, "get_coro", lambda: None)()
    return f"{getattr(task, 'name', None) or task!r} ({getattr(coro, '__qualname__', coro)})"


def rss_bytes() -> int | None:
    """Resident memory of this process (Linux), after a full collection."""
    gc.collect()
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Incidents:
    """Warnings, unraisable exceptions and server error logs seen during a run."""

    warnings: list[str] = field(default_factory=list)
    unraisable: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    #: What the asyncio logger said on the client's loop (it should say nothing).
    client_log: list[str] = field(default_factory=list)
    #: Expected server-side noise: scripted resets, clients that left while the server read
    #: their request, handlers cancelled when a server was stopped mid-run.
    expected: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def resource_warnings(self) -> list[str]:
        return [w for w in self.warnings if w.startswith("ResourceWarning")]


class ServerLog(logging.Filter):
    """Sorts the emulators' server errors and asyncio's transport complaints: the expected
    ones (counted, silenced) and any other (kept). A filter on ``uvicorn.error``, not a
    handler: uvicorn reconfigures its loggers' handlers each time a server (re)starts, and
    leaves filters alone."""

    def __init__(self) -> None:
        super().__init__()
        self.incidents = Incidents()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        kind = type(exc).__name__
        message = record.getMessage()
        server_side = (record.threadName or "").startswith("loopback-server")
        if record.name == "asyncio":
            # asyncio's transport complaints ("socket.send() raised exception.", "SSL
            # connection is closed"): on a server's loop they follow a client that left.
            if server_side:
                self.incidents.expected[f"server loop: {message}"] += 1
            else:
                self.incidents.client_log.append(f"{record.levelname} {message} {kind}")
            return False
        if kind == "EmulatedConnectionReset":
            self.incidents.expected["scripted connection resets"] += 1
        elif kind == "ClientDisconnect":
            self.incidents.expected["clients gone while the server read them"] += 1
        elif "graceful shutdown" in message or "graceful shutdown" in str(exc):
            self.incidents.expected["handlers cancelled by a server stop"] += 1
        else:
            if record.levelno >= logging.ERROR:
                self.incidents.server_errors.append(f"{message} {kind}: {exc}")
            return True
        return False


SERVER_LOG = ServerLog()


def install_server_log() -> None:
    """Sort every server error log from now on (see :class:`ServerLog`)."""
    logging.getLogger("uvicorn.error").addFilter(SERVER_LOG)
    logging.getLogger("asyncio").addFilter(SERVER_LOG)


@contextmanager
def watching() -> Iterator[Incidents]:
    """Record every warning (ResourceWarning included), unraisable exception and server
    error log while the block runs."""
    incidents = SERVER_LOG.incidents = Incidents()
    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        incidents.unraisable.append(
            f"{type(info.exc_value).__name__}: {info.exc_value} (in {info.object!r})"
        )

    sys.unraisablehook = unraisable
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield incidents
            gc.collect()
        finally:
            sys.unraisablehook = previous_hook
            SERVER_LOG.incidents = Incidents()
            incidents.warnings.extend(
                f"{w.category.__name__}: {w.message}" + _where(w) for w in caught
            )


def _where(caught: warnings.WarningMessage) -> str:
    """Which connection an unclosed transport was (its two ends tell the client's side from
    an emulator's), and where the object was allocated (with ``--trace``)."""
    import tracemalloc

    ends = ""
    extra = getattr(caught.source, "_extra", None)
    if isinstance(extra, dict) and "sockname" in extra:
        ends = f" (local {extra.get('sockname')}, peer {extra.get('peername')})"
    if caught.source is None or not tracemalloc.is_tracing():
        return ends
    trace = tracemalloc.get_object_traceback(caught.source)
    if trace is None:
        return ends
    frames = [f for f in trace if "site-packages" not in f.filename] or list(trace)
    where = "; ".join(f"{f.filename}:{f.lineno}" for f in frames[-4:])
    return f"{ends} (allocated at {where})"
