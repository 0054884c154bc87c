"""One soak request: its plan (drawn from the seed), running it, and judging what came back.

A request is a chat or a stream through the router, maybe preceded by a scripted fault, maybe
cancelled by the caller (``asyncio.wait_for``, ``asyncio.timeout`` or an anyio
``move_on_after`` scope), maybe a stream the caller stops reading early. Whatever happens is
recorded in a :class:`Record` and judged against what the emulators really sent.
"""

from __future__ import annotations

import contextlib
import random
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from orchestrator import Router
from orchestrator.errors import AllProvidersFailedError, OrchestratorError, StreamInterruptedError
from orchestrator.types import Chunk, Completion, Usage
from soak.faults import Fault, Injector, draw
from soak.world import Backend, World

Kind = Literal["chat", "stream"]
Cancel = Literal["none", "asyncio.wait_for", "asyncio.timeout", "anyio.move_on_after"]

#: A request still running after this long is hung (the router's deadline is 4 s).
HANG_LIMIT = 30.0
TOPICS = ("rivers", "the moon", "bread", "trains", "owls", "tea", "chess", "snow")


@dataclass(frozen=True, slots=True)
class Plan:
    """What request ``index`` does; drawn from the run's seed, so ``--seed`` replays it."""

    index: int
    kind: Kind
    topic: str
    fault: Fault | None
    cancel: Cancel
    cancel_after: float
    #: Streams: the caller stops reading after this many chunks (None: reads to the end).
    close_after: int | None

    @property
    def prompt(self) -> str:
        return f"request {self.index}: tell me about {self.topic}"


def plans(
    seed: int, count: int, backends: list[Backend], *, native: bool, fault_rate: float
) -> list[Plan]:
    """``count`` request plans from ``seed``. ``native``: asyncio's own cancellation may be
    used (asyncio only); anyio scopes are used on every backend."""
    rng = random.Random(seed)
    made = []
    for index in range(count):
        kind: Kind = "stream" if rng.random() < 0.5 else "chat"
        fault = draw(rng, backends) if rng.random() < fault_rate else None
        roll = rng.random()
        cancel: Cancel = "none"
        if roll < 0.08:
            cancel = "anyio.move_on_after"
        elif native and roll < 0.15:
            cancel = "asyncio.wait_for"
        elif native and roll < 0.20:
            cancel = "asyncio.timeout"
        cancel_after = rng.uniform(0.001, 0.3)
        close_after = rng.randint(1, 4) if kind == "stream" and rng.random() < 0.05 else None
        made.append(Plan(index, kind, rng.choice(TOPICS), fault, cancel, cancel_after, close_after))
    return made


@dataclass(eq=False)
class Record:
    """What one request did, and what was wrong with it (``violations``)."""

    plan: Plan
    completion: Completion | None = None
    chunks: list[Chunk] = field(default_factory=list)
    error: BaseException | None = None
    #: The planned fault was scripted (see :class:`~soak.faults.Injector`).
    injected: bool = False
    cancelled: bool = False
    closed_early: bool = False
    hung: bool = False
    elapsed: float = 0.0
    violations: list[str] = field(default_factory=list)
    traceback: str | None = None
    #: Set by :meth:`seal`: the outcome, once the payload was let go.
    sealed: str | None = None
    was_refused: bool = False

    def seal(self) -> None:
        """Keep the verdict, let go of the answer and the error (whose traceback holds
        every frame it passed): a run keeps thousands of records, and its memory must
        measure the router, not the soak."""
        self.sealed, self.was_refused = self.outcome, self.refused
        self.chunks, self.completion, self.error = [], None, None

    @property
    def outcome(self) -> str:
        """A short label for tables: ``ok``, an error's type, ``cancelled by caller``..."""
        if self.sealed is not None:
            return self.sealed
        if self.hung:
            return "HUNG"
        if self.error is not None:
            name = type(self.error).__name__
            if self.refused:
                return f"{name} (none asked: breakers open/held)"
            return name if isinstance(self.error, OrchestratorError) else f"BUG {name}"
        if self.cancelled:
            return "cancelled by caller"
        if self.closed_early:
            return "closed early by caller"
        return "ok"

    @property
    def refused(self) -> bool:
        """The router failed the request at once: every provider was skipped."""
        if self.sealed is not None:
            return self.was_refused
        error = self.error
        return isinstance(error, AllProvidersFailedError) and all(a.skipped for a in error.attempts)

    @property
    def provider(self) -> str | None:
        """Who answered (or was answering when it stopped)."""
        if self.completion is not None:
            return self.completion.provider
        if self.chunks:
            return self.chunks[0].provider
        return getattr(self.error, "provider", None)

    @property
    def text(self) -> Any:
        if self.completion is not None:
            return self.completion.text
        return "".join(c.delta if isinstance(c.delta, str) else repr(c.delta) for c in self.chunks)


async def run(
    world: World,
    router: Router,
    plan: Plan,
    injector: Injector | None = None,
    *,
    keep: bool = False,
) -> Record:
    """Make the request ``plan`` describes (scripting its fault through ``injector``) and
    judge it; the record is sealed unless ``keep``."""
    record = Record(plan)
    if plan.fault is not None and injector is not None:
        record.injected = injector(plan.fault, world.by_name[plan.fault.backend])
    started = time.perf_counter()
    with anyio.move_on_after(HANG_LIMIT) as guard:
        try:
            await _cancellable(plan, record, router)
        except Exception as exc:  # judged below: typed, or a bug that escaped
            record.error = exc
            if not isinstance(exc, OrchestratorError):
                record.traceback = "".join(traceback.format_exception(exc))
    record.hung = guard.cancelled_caught
    record.elapsed = time.perf_counter() - started
    judge(record, world)
    if not keep:
        record.seal()
    return record


async def _call(router: Router, plan: Plan, record: Record) -> None:
    if plan.kind == "chat":
        record.completion = await router.chat(plan.prompt)
        return
    chunks = router.chat_stream(plan.prompt)
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            record.chunks.append(chunk)
            if (
                plan.close_after is not None
                and len(record.chunks) >= plan.close_after
                and chunk.finish_reason is None
            ):
                record.closed_early = True
                return


async def _cancellable(plan: Plan, record: Record, router: Router) -> None:
    """Run the call, cancelled by the caller after ``plan.cancel_after`` if planned so."""
    if plan.cancel == "none":
        await _call(router, plan, record)
    elif plan.cancel == "anyio.move_on_after":
        with anyio.move_on_after(plan.cancel_after) as scope:
            await _call(router, plan, record)
        record.cancelled = scope.cancelled_caught
    else:
        import asyncio

        try:
            if plan.cancel == "asyncio.wait_for":
                await asyncio.wait_for(  # noqa: TID251 - native cancellation is under test
                    _call(router, plan, record), plan.cancel_after
                )
            else:
                async with asyncio.timeout(plan.cancel_after):
                    await _call(router, plan, record)
        except TimeoutError as exc:
            # Ours: asyncio's own TimeoutError, raised from the CancelledError it injected
            # (a ProviderTimeoutError is a TimeoutError too, but an OrchestratorError).
            cause = exc.__cause__ or exc.__context__
            if type(exc) is not TimeoutError or not isinstance(cause, asyncio.CancelledError):
                raise
            record.cancelled = True


def _foreign(world: World, plan: Plan, name: str | None, text: str) -> str:
    """What is wrong with ``text`` that is not (the start of) ``name``'s answer: another
    provider's words in it (a mixed stream), or words no emulator sent as an answer (a
    wrong-shape event's content passed through as text)."""
    answers = {b.name: b.answer(plan.prompt) for b in world.backends}
    others = [n for n, a in answers.items() if n != name and (a.startswith(text) or text in a)]
    if others or any(a[:12] in text for n, a in answers.items() if n != name):
        return f"mixed stream: {text!r} from {name} has {others or 'another'} provider's text"
    return f"text no emulator sent, delivered by {name}: {text!r}"


def _tokens(usage: Usage | None) -> tuple[int, int, int] | None:
    if usage is None:
        return None
    return (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)


def judge(record: Record, world: World) -> None:
    """Append what is wrong with ``record`` to ``record.violations``."""
    plan, bad = record.plan, record.violations
    if record.hung:
        bad.append(f"hung: still running after {HANG_LIMIT:g}s")
        return
    error = record.error
    if error is not None and not isinstance(error, OrchestratorError):
        bad.append(f"bug escaped: {type(error).__name__}: {error}")
        return
    pieces = [c.delta for c in record.chunks]
    if record.completion is not None:
        pieces.append(record.completion.text)
    odd = [p for p in pieces if not isinstance(p, str)]
    if odd:
        kinds = sorted({type(p).__name__ for p in odd})
        bad.append(f"non-str text delivered as a success or partial answer: {kinds} {odd[:3]!r}")
        return
    providers = {c.provider for c in record.chunks}
    if len(providers) > 1:
        bad.append(f"mixed stream: chunks from {sorted(providers)}")
        return
    name = record.provider
    backend = world.by_name.get(name) if name else None
    text = record.text
    if isinstance(error, StreamInterruptedError) and error.partial_text != text:
        bad.append(f"partial_text {error.partial_text!r} is not what the caller got {text!r}")
    if error is not None or record.cancelled or record.closed_early:
        # Whatever arrived must be the start of one provider's answer.
        if text and (backend is None or not backend.answer(plan.prompt).startswith(text)):
            bad.append(_foreign(world, plan, name, text))
        return
    if backend is None:
        bad.append(f"success from unknown provider {name!r}")
        return
    expected = backend.answer(plan.prompt)
    if plan.kind == "stream":
        final = record.chunks[-1] if record.chunks else None
        if final is None or final.finish_reason is None:
            bad.append("truncated stream ended as success: no final chunk")
            return
        usage = final.usage
    else:
        assert record.completion is not None
        usage = record.completion.usage
    if text != expected:
        if isinstance(text, str) and expected.startswith(text):
            bad.append(f"truncated stream ended as success: {text!r} of {expected!r}")
        else:
            bad.append(_foreign(world, plan, name, text))
    reported = backend.usage(plan.prompt)
    want = (reported.prompt, reported.completion, reported.total)
    if _tokens(usage) != want:
        bad.append(f"usage mismatch on {name}: got {_tokens(usage)}, the emulator sent {want}")
