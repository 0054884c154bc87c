"""Streams: opening one (its first text is the commit point), then delivering the rest.

Before the first text a failure is an ordinary failed attempt (the engine fails over). After
it, a failure is a :class:`StreamInterruptedError` carrying the partial text, and a stream
that ends without its final chunk is truncated — never a success. Once the final chunk
arrived the request has succeeded, whatever the connection does afterwards.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio

from orchestrator._routing.engine import classify, contract_error
from orchestrator._routing.output import check_tool_calls
from orchestrator._secrets import get_logger
from orchestrator.errors import (
    DeadlineExceededError,
    StreamError,
    StreamInterruptedError,
    StructuredOutputError,
)
from orchestrator.events import UsageEvent
from orchestrator.retry import retries_managed_by_caller
from orchestrator.types import Chunk, Completion

if TYPE_CHECKING:
    from orchestrator._routing.accounting import Ledger
    from orchestrator._routing.call import Call, Lease
    from orchestrator._routing.engine import Engine
    from orchestrator.events import Outcome
    from orchestrator.health import ProviderSlot
    from orchestrator.types import ToolCall, Usage

logger = get_logger("orchestrator.router")


@dataclass(slots=True, eq=False)
class Opened:
    """A stream that produced its first text; it owns ``lease`` until it is closed."""

    stream: AsyncIterator[Chunk]
    first: Chunk
    lease: Lease


async def close(slot: ProviderSlot, stream: AsyncIterator[Chunk]) -> None:
    """Close a provider's stream (its HTTP response), even while being cancelled."""
    if inspect.isasyncgen(stream) and stream.ag_frame is None:
        return  # a generator that ran to its end has closed itself (a shield costs ~5 µs)
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            try:
                await aclose()
            except Exception:  # a provider failing while closing must not mask the cause
                logger.debug("closing %s stream failed", slot.name, exc_info=True)


class OpenStream:
    """Starts a provider's stream and reads up to its first text, tool call or final chunk,
    bounded by the slot's ``first_chunk_timeout``. Tool calls in that chunk are checked
    here, so a call the request did not allow still fails over."""

    __slots__ = ("ledger",)

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    timeout_message = (
        "First-chunk timeout of {:g}s fired: no text yet; "
        "raise first_chunk_timeout if this model thinks long"
    )

    @staticmethod
    def timeout(slot: ProviderSlot) -> float | None:
        return slot.first_chunk_timeout

    async def run(self, call: Call, lease: Lease) -> Opened:
        slot = lease.slot
        stream: Any = None
        token = retries_managed_by_caller.set(True)
        try:
            stream = slot.provider.stream(call.messages, call.params)
            if inspect.isawaitable(stream):  # an `async def` returning an iterator
                stream = await stream
            if not hasattr(stream, "__anext__"):
                raise contract_error(slot, "stream()", stream, "an async iterator of Chunks")
            while True:
                try:
                    chunk = await stream.__anext__()
                except StopAsyncIteration:
                    raise StreamError(
                        "Stream ended before any text or final chunk", provider=slot.name
                    ) from None
                if not isinstance(chunk, Chunk):
                    raise contract_error(slot, "stream()", chunk, "a Chunk")
                if chunk.delta or chunk.tool_calls or chunk.finish_reason is not None:
                    break
            if chunk.tool_calls and call.needs:
                try:
                    check_tool_calls(call.params, chunk.tool_calls)
                except StructuredOutputError:
                    # The provider answered: healthy, and billed for what it reported.
                    usage = chunk.usage
                    lease.succeeded(None if usage is None else usage.total_tokens)
                    self.ledger.account(slot, usage, chunk.model)
                    raise
            latency = time.perf_counter() - lease.started
            slot.stats.record_first_chunk(latency)
            if call.hooks is not None and call.request is not None:
                await call.hooks.stream_first_chunk(call.request, slot.name, latency)
        except BaseException:
            if stream is not None and hasattr(stream, "__anext__"):
                await close(slot, stream)
            raise
        finally:
            retries_managed_by_caller.reset(token)
        return Opened(stream, chunk, lease)


async def discard(opened: Opened) -> None:
    """Close a stream that opened but lost a hedge race."""
    await close(opened.lease.slot, opened.stream)
    opened.lease.cancelled()


async def _before_deadline(call: Call, next_chunk: Callable[[], Awaitable[Chunk]]) -> Chunk:
    with anyio.CancelScope(deadline=math.inf if call.until is None else call.until):
        return await next_chunk()
    raise DeadlineExceededError(f"Request deadline of {call.deadline:g}s ran out while streaming")


def _interrupted(slot: ProviderSlot, exc: Exception, parts: list[str]) -> Exception:
    """What a failure after text was delivered becomes: a StreamInterruptedError, or the
    exception itself when it is a plugin's bug."""
    if isinstance(exc, StopAsyncIteration):
        return StreamInterruptedError(
            "Stream ended without a final chunk (truncated)",
            provider=slot.name,
            partial_text="".join(parts),
        )
    cause = classify(slot, exc)
    if cause is None:
        return exc
    return StreamInterruptedError(
        f"Stream from {slot.name} failed after text was delivered: {cause.message}",
        provider=slot.name,
        request_id=cause.request_id,
        status_code=cause.status_code,
        partial_text="".join(parts),
    )


async def _drain(call: Call, stream: AsyncIterator[Chunk]) -> None:
    """Read what follows the final chunk, so the connection can be reused; bounded by the
    deadline, and never an error: the request has already succeeded."""
    if call.until is None:  # nothing to bound it by (and a cancel scope costs ~5 µs)
        await _read_to_end(stream)
        return
    with anyio.CancelScope(deadline=call.until):
        await _read_to_end(stream)


async def _read_to_end(stream: AsyncIterator[Chunk]) -> None:
    try:
        while True:
            await stream.__anext__()
    except Exception:  # StopAsyncIteration included
        return


async def stream_request(
    begin: Callable[[], tuple[Call, list[ProviderSlot]]],
    engine: Engine,
    ledger: Ledger,
    failure: Callable[[Call], Exception],
) -> AsyncGenerator[Chunk, None]:
    """One streamed request, as a single generator (each layer costs per chunk): plan, open
    a stream through the engine (failing over until one yields text), deliver it."""
    call, plan = begin()
    del begin  # its closure (the caller's arguments) is not kept while the stream is open
    hooks, request = call.hooks, call.request
    if hooks is not None and request is not None:
        await hooks.request_start(request)
    parts: list[str] = []
    calls: list[ToolCall] = []
    final: Chunk | None = None
    usage: Usage | None = None
    error: BaseException | None = None
    try:
        opened = await engine.first_success(call, plan, OpenStream(ledger), discard)
        if opened is None:
            raise failure(call)
        stream, chunk, lease = opened.stream, opened.first, opened.lease
        slot = lease.slot
        name = slot.name
        next_chunk = stream.__anext__
        model: str | None = None
        later = False
        try:
            while True:
                if chunk.provider != name:
                    chunk = replace(chunk, provider=name)
                parts.append(chunk.delta)
                if chunk.tool_calls:
                    if later and call.needs:  # the first chunk's were checked when opening
                        try:
                            check_tool_calls(call.params, chunk.tool_calls)
                        except StructuredOutputError as exc:
                            exc.provider = name
                            raise
                    calls.extend(chunk.tool_calls)
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.model:
                    model = chunk.model
                if chunk.finish_reason is not None:
                    break
                later = True
                yield chunk
                try:
                    chunk = (
                        await next_chunk()
                        if call.until is None
                        else await _before_deadline(call, next_chunk)
                    )
                except Exception as exc:
                    raise _interrupted(slot, exc, parts) from exc
                if not isinstance(chunk, Chunk):
                    raise StreamInterruptedError(
                        contract_error(slot, "stream()", chunk, "a Chunk").message,
                        provider=name,
                        partial_text="".join(parts),
                    )
        except BaseException as exc:
            tokens = None if usage is None else usage.total_tokens
            if isinstance(exc, StreamInterruptedError):
                lease.failed(exc, tokens)
            else:
                lease.cancelled(tokens)
            # Whatever the vendor reported before the end is still consumed.
            ledger.account(slot, usage, model)
            with anyio.CancelScope(shield=True):
                await close(slot, stream)
                if ledger.on_usage is not None:
                    await ledger.report(
                        UsageEvent(name, model, usage, None, chunk.request_id, "stream", False)
                    )
            raise
        latency = lease.succeeded(None if usage is None else usage.total_tokens)
        cost = ledger.account(slot, usage, model)
        try:
            if ledger.on_usage is not None:
                await ledger.report(
                    UsageEvent(name, model, usage, cost, chunk.request_id, "stream")
                )
            parsed = None
            if call.needs and not calls and call.params is not None:
                response_format = call.params.response_format
                if response_format is not None:
                    try:
                        parsed = response_format.parse("".join(parts))
                    except StructuredOutputError as exc:
                        exc.provider = name
                        raise
            if cost is not None or parsed is not None or calls:
                chunk = replace(
                    chunk,
                    cost=cost,
                    parsed=parsed,
                    finish_reason="tool_calls" if calls else chunk.finish_reason,
                )
            final = chunk
            if hooks is not None and request is not None:
                done = Completion(
                    "".join(parts),
                    name,
                    model,
                    chunk.finish_reason,
                    usage,
                    chunk.request_id,
                    latency,
                    cost,
                    tool_calls=tuple(calls),
                    parsed=parsed,
                )
                await hooks.attempt_success(request, name, lease.attempt, latency, done)
            yield chunk
            await _drain(call, stream)
        finally:
            await close(slot, stream)
    except Exception as exc:
        error = exc
        raise
    finally:
        if hooks is not None and request is not None:
            outcome: Outcome = "ok" if final else "error" if error is not None else "cancelled"
            result = None
            if final is not None:
                result = Completion(
                    "".join(parts),
                    final.provider,
                    final.model,
                    final.finish_reason,
                    usage,
                    final.request_id,
                    tool_calls=tuple(calls),
                    parsed=final.parsed,
                    cost=final.cost,
                )
            with anyio.CancelScope(shield=True):
                await hooks.request_end(request, result, None if final else error, outcome)
