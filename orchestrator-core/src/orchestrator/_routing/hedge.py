"""Hedging: race a backup provider against a slow primary, on top of the attempt engine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import anyio

if TYPE_CHECKING:
    from orchestrator.health import ProviderSlot

T = TypeVar("T")


async def race(
    attempt: Callable[[ProviderSlot], Awaitable[T | None]],
    primary: ProviderSlot,
    backup: ProviderSlot,
    delay: float,
    discard: Callable[[T], Awaitable[None]] | None,
) -> T | None:
    """Ask ``primary``; if it has not succeeded after ``delay`` seconds (or it failed), ask
    ``backup`` too. The first success wins and the other attempt is cancelled.

    Whatever happens — the caller cancelled while the loser is closing, the loser's cleanup
    failing — every success but the one returned is discarded (a stream: closed, its slots
    released). A plugin's bug propagates unchanged, as it does without hedging.
    """
    winner: list[T] = []
    bugs: list[Exception] = []
    primary_done = anyio.Event()

    async def run(slot: ProviderSlot) -> None:
        try:
            result = await attempt(slot)
        except Exception as exc:  # not a ProviderError: the engine only lets bugs through
            bugs.append(exc)
            tg.cancel_scope.cancel()
            return
        if result is None:
            return
        if winner or bugs:
            await _discard(discard, result)
            return
        winner.append(result)
        tg.cancel_scope.cancel()

    async def run_primary() -> None:
        try:
            await run(primary)
        finally:
            primary_done.set()

    async def run_backup() -> None:
        with anyio.move_on_after(delay):
            await primary_done.wait()
        if not winner and not bugs:
            await run(backup)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_primary)
            tg.start_soon(run_backup)
    except BaseException:
        for result in winner:
            await _discard(discard, result)
        raise
    if bugs:
        for result in winner:
            await _discard(discard, result)
        raise bugs[0]
    return winner[0] if winner else None


async def _discard(discard: Callable[[T], Awaitable[None]] | None, result: T) -> None:
    if discard is not None:
        with anyio.CancelScope(shield=True):
            await discard(result)
