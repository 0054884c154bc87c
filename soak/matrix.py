"""The fault matrix: each fault x each provider -> what the caller gets, measured.

One request at a time, so every outcome is the fault's: before each cell the emulators are
reset and every provider warmed up, a fresh router (``first-available``) puts the provider
under test first and the other two behind it, the fault is scripted on the provider under
test, and one request is made. The cell says how it ended, who answered and how many calls
the provider under test received (a retry or a token refresh is a second call).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import sniffio

from orchestrator.errors import StreamInterruptedError
from orchestrator_gigachat.emulator import ExpireTokens, Stall, WrongShape
from soak.checks import pool_usage
from soak.report import table
from soak.workload import Cancel, Kind, Plan, Record, run
from soak.world import MAX_RETRIES, Backend, World, build_router

Inject = Callable[[Backend], None]
TRIES = MAX_RETRIES + 1  # calls one provider gets for one request before failing over


def _giga(backend: Backend) -> bool:
    return backend.vendor == "gigachat"


def _stall(seconds: float, times: int = 1) -> Inject:
    def inject(backend: Backend) -> None:
        if _giga(backend):
            backend.app.script(*[Stall(seconds)] * times)
        else:
            backend.app.stall_next(seconds, times=times)

    return inject


def _expire(backend: Backend) -> None:
    if _giga(backend):
        backend.app.script(ExpireTokens())
    else:
        backend.app.expire_iam_tokens()


def _wrong_shape(backend: Backend, kind: Kind) -> None:
    if _giga(backend):
        backend.app.script(WrongShape({"choices": [None]}, after_chunks=1))
    elif kind == "stream":
        backend.app.wrong_shape_next_stream({"result": {"alternatives": [None]}}, after_chunks=1)
    else:
        backend.app.wrong_shape_next({"result": {"alternatives": [None]}})


def _slow_stream(backend: Backend) -> None:
    if _giga(backend):
        backend.app.chunk_delay = 0.05
    else:
        backend.app.stream_delay = 0.05


@dataclass(frozen=True, slots=True)
class Row:
    """One fault of the matrix."""

    label: str
    kinds: tuple[Kind, ...]
    inject: Callable[[Backend, Kind], None] | None = None
    #: "outage": the server is stopped for the request; "deadline": a router with only a
    #: deadline (no attempt timeouts); a Cancel: the caller cancels the request.
    special: str | None = None
    cancel: Cancel = "none"


BOTH: tuple[Kind, ...] = ("chat", "stream")
STREAM: tuple[Kind, ...] = ("stream",)

ROWS = (
    Row("429 + Retry-After 0.1 s", BOTH, lambda b, k: b.app.fail_next(429, retry_after=0.1)),
    Row(
        "429 + Retry-After 5 s (> backoff_max)",
        BOTH,
        lambda b, k: b.app.fail_next(429, retry_after=5),
    ),
    Row("429, no Retry-After", BOTH, lambda b, k: b.app.fail_next(429)),
    Row("503 once", BOTH, lambda b, k: b.app.fail_next(503)),
    Row(f"500 on every try ({TRIES})", BOTH, lambda b, k: b.app.fail_next(500, times=TRIES)),
    Row("connect refused (server stopped)", BOTH, special="outage"),
    Row(
        "reset mid-body before any text",
        STREAM,
        lambda b, k: b.app.break_next_stream(after_chunks=0),
    ),
    Row("reset mid-body after text", STREAM, lambda b, k: b.app.break_next_stream(after_chunks=2)),
    Row("slow first byte 0.2 s (within timeouts)", BOTH, lambda b, k: _stall(0.2)(b)),
    Row("slow first byte 0.6 s (> attempt timeout)", BOTH, lambda b, k: _stall(0.6)(b)),
    Row(f"hangs on every try ({TRIES})", BOTH, lambda b, k: _stall(3.0, TRIES)(b)),
    Row("hangs, deadline only (no attempt timeout)", BOTH, lambda b, k: _stall(3.0)(b), "deadline"),
    Row(
        "truncated stream before any text",
        STREAM,
        lambda b, k: b.app.cut_next_stream(after_chunks=0),
    ),
    Row("truncated stream after text", STREAM, lambda b, k: b.app.cut_next_stream(after_chunks=2)),
    Row(
        "malformed line before any text",
        STREAM,
        lambda b, k: b.app.malform_next_stream(after_chunks=0),
    ),
    Row(
        "malformed line after text", STREAM, lambda b, k: b.app.malform_next_stream(after_chunks=2)
    ),
    Row("token expired (401, refresh)", BOTH, lambda b, k: _expire(b)),
    Row("wrong-shape JSON (choices/alternatives [null])", BOTH, _wrong_shape),
    Row(
        "caller cancels mid-call (anyio move_on_after)",
        BOTH,
        lambda b, k: _stall(0.5)(b) if k == "chat" else _slow_stream(b),
        cancel="anyio.move_on_after",
    ),
    Row(
        "caller cancels mid-call (asyncio.wait_for)",
        BOTH,
        lambda b, k: _stall(0.5)(b) if k == "chat" else _slow_stream(b),
        cancel="asyncio.wait_for",
    ),
)

#: The matrix router's timeouts: short, so a slow or hanging provider is seen quickly.
DEADLINE = 3.0
ATTEMPT_TIMEOUT = 0.3
#: The deadline of the "deadline only" row's router.
SHORT_DEADLINE = 0.5


@dataclass
class Matrix:
    """Outcome labels by (row label, kind, provider), and the requests that broke a rule."""

    backend: str
    providers: list[str]
    cells: dict[tuple[str, str, str], str] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def render(self) -> str:
        rows = []
        for row in ROWS:
            for kind in row.kinds:
                label = f"{row.label} · {kind}"
                rows.append(
                    (label, *(self.cells.get((row.label, kind, p), "") for p in self.providers))
                )
        text = table(("fault · call", *self.providers), rows)
        if self.violations:
            text += "\n\nviolations:\n" + "\n".join(f"- {v}" for v in self.violations)
        return text


async def measure(world: World) -> Matrix:
    """Measure every cell on the running event loop."""
    library = sniffio.current_async_library()
    matrix = Matrix(library, [b.name for b in world.backends])
    providers = world.providers()
    number = 0
    try:
        for row in ROWS:
            for kind in row.kinds:
                for target in world.backends:
                    number += 1
                    matrix.cells[(row.label, kind, target.name)] = await _cell(
                        world, providers, row, kind, target, number, matrix
                    )
    finally:
        for provider in providers.values():
            await provider.aclose()
    return matrix


async def _cell(
    world: World,
    providers: dict[str, Any],
    row: Row,
    kind: Kind,
    target: Backend,
    number: int,
    matrix: Matrix,
) -> str:
    if row.cancel == "asyncio.wait_for" and sniffio.current_async_library() != "asyncio":
        return "n/a (asyncio only)"
    if row.special == "outage" and target.server.tls:
        return "n/a (TLS server)"
    world.reset()
    warm = build_router(providers)
    for name in providers:  # fresh tokens everywhere: the reset forgot the issued ones
        await warm.chat("warm up", provider=name)
    order = [target.name] + [n for n in providers if n != target.name]
    deadline_only = row.special == "deadline"
    router = build_router(
        providers,
        strategy="first-available",
        priorities={name: order.index(name) for name in providers},
        deadline=SHORT_DEADLINE if deadline_only else DEADLINE,
        timeout=None if deadline_only else ATTEMPT_TIMEOUT,
        first_chunk_timeout=None if deadline_only else ATTEMPT_TIMEOUT,
    )
    plan = Plan(1_000_000 + number, kind, "faults", None, row.cancel, 0.15, None)
    if row.inject is not None:
        row.inject(target, kind)
    before = target.request_count
    if row.special == "outage":
        await anyio.to_thread.run_sync(target.server.stop)
        try:
            record = await run(world, router, plan, keep=True)
        finally:
            await anyio.to_thread.run_sync(target.server.start)
    else:
        record = await run(world, router, plan, keep=True)
    calls = target.request_count - before
    for violation in record.violations:
        matrix.violations.append(f"{row.label} · {kind} on {target.name}: {violation}")
    label = _label(record, target, calls)
    if row.cancel != "none":
        busy, queued = pool_usage(providers[target.name])
        label += "; pool at rest" if not busy + queued else f"; **{busy + queued} conn. stuck**"
    return label


def _label(record: Record, target: Backend, calls: int) -> str:
    """How a request ended, in a few words."""
    tries = f"{calls} call{'s' if calls != 1 else ''}"
    outcome = record.outcome
    if outcome.startswith("BUG"):
        return f"**{outcome}** ({tries})"
    error = record.error
    if isinstance(error, StreamInterruptedError):
        return f"StreamInterruptedError, partial text ({tries})"
    if error is not None:
        return f"{type(error).__name__} ({tries})"
    if record.cancelled:
        return "cancelled"
    who = record.provider
    if who == target.name:
        return "ok" if calls == 1 else f"retried → ok ({tries})"
    return f"failover → ok by {who} ({tries})"
