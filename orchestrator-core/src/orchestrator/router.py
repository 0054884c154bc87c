"""The router: choose a provider, attempt, retry or fail over, return the result.

Promises (each has a test):

- transient errors (rate limit, timeout, 5xx, connection) are retried on the same provider
  with jittered exponential backoff that honours ``Retry-After``; then any
  :class:`~orchestrator.errors.ProviderError` moves on to the next provider;
- an exception that is not a ``ProviderError`` (a bug in a plugin) propagates unchanged;
- a stream fails over only before its first text reaches the caller; after that a failure
  raises :class:`~orchestrator.errors.StreamInterruptedError` with the partial text, and a
  stream that ends without its final chunk is never a success;
- ``deadline`` bounds a whole request across retries and fallbacks; per-provider
  ``timeout`` bounds one attempt; ``first_chunk_timeout`` bounds a stream's first text;
- cancelling the caller cancels the HTTP request and releases its connection;
- a router can be used from several event loops (``asyncio.run`` per call, threads, trio):
  it holds no loop-bound state, and providers keep one HTTP client per loop.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import anyio

from orchestrator._routing.accounting import Ledger
from orchestrator._routing.call import Call
from orchestrator._routing.chat import ChatOperation
from orchestrator._routing.embedding import EmbedBatch, batches, max_batch, merge
from orchestrator._routing.engine import Engine, refusal
from orchestrator._routing.hooks import LIFECYCLE_HOOKS, LifecycleHooks
from orchestrator._routing.streaming import stream_request
from orchestrator._secrets import get_logger
from orchestrator.capabilities import required_capabilities
from orchestrator.errors import (
    AllProvidersFailedError,
    ConfigurationError,
    DeadlineExceededError,
    NoProvidersError,
    ProviderError,
    QuotaExceededError,
    UnsupportedCapabilityError,
)
from orchestrator.events import RequestInfo, UsageCallback, UsageEvent
from orchestrator.health import BreakerConfig, CircuitBreaker, HealthStats, ProviderSlot
from orchestrator.limits import LimitState, ProviderLimits
from orchestrator.pricing import PriceTable
from orchestrator.retry import retries_managed_by_caller
from orchestrator.types import Chunk, Completion, Message, coerce_messages

if TYPE_CHECKING:
    from collections.abc import Sequence

    from orchestrator.events import Outcome
    from orchestrator.params import GenerationParams
    from orchestrator.plugins import PluginRegistry
    from orchestrator.providers.base import BaseProvider
    from orchestrator.state import SharedState
    from orchestrator.strategies import Strategy
    from orchestrator.types import EmbeddingKind, Embeddings

# RequestInfo and UsageEvent live in orchestrator.events; re-exported for older imports.
__all__ = ["RequestInfo", "Router", "UsageEvent"]

logger = get_logger("orchestrator.router")
_request_ids = itertools.count(1)

MessagesInput = str | Iterable[Message | Mapping[str, Any]]


def _coerce_params(
    params: GenerationParams | Mapping[str, Any] | None,
) -> GenerationParams | None:
    if params is None:
        return None
    from orchestrator.params import GenerationParams

    if isinstance(params, GenerationParams):
        return params
    return GenerationParams(**params)


def _coerce_texts(texts: str | Sequence[str]) -> list[str]:
    """The texts to embed: a string or a sequence of non-empty strings."""
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list | tuple) and not hasattr(texts, "__iter__"):
        raise TypeError(f"texts must be a string or a list of strings, got {type(texts).__name__}")
    items = list(texts)
    if not items:
        raise ValueError("texts must contain at least one text")
    for index, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] must be str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"texts[{index}] is empty; vendors refuse to embed empty text")
    return items


def _seconds(label: str, value: float | None) -> float | None:
    """``value`` if it is a positive, finite number of seconds (or None)."""
    if value is not None and not (isinstance(value, int | float) and 0 < value < math.inf):
        raise ConfigurationError(
            f"{label} must be a positive, finite number of seconds, got {value!r}"
        )
    return value


class Router:
    """Routes requests over providers with retries, failover and circuit breaking.

    ``strategy``: a registered strategy name (``round-robin``, ``weighted``, ``random``,
    ``first-available``, ``best-available``, ``least-busy``, ``lowest-cost``, ``latency``, or
    one from a plugin) or a strategy object.
    ``deadline``: seconds bounding every request across retries and fallbacks.
    ``first_chunk_timeout``: seconds a stream may wait for its first text before failing over.
    ``hedge_after``: seconds (or ``"p95"`` of the first provider's latency) after which an
    unanswered request is also sent to the next provider; the first answer wins.
    ``on_limit``: ``"failover"`` (default) sends a request that would exceed a provider's
    limits elsewhere; ``"wait"`` waits for capacity up to the deadline.
    ``prices``: ``{provider name: {model: Price}}`` overriding providers' own price tables.
    ``budget``: roubles the whole router may spend; ``on_usage``: called after every attempt
    that consumed tokens (sync or async; a failing callback is logged, never raised).
    ``on_invalid_output``: what an answer that does not match the request does (tool calls
    of tools not given or with arguments off their schema, or a ``response_format`` answer
    that does not validate): ``"failover"`` (default) asks the next provider,
    ``"raise"`` raises :class:`~orchestrator.errors.StructuredOutputError` at once.
    ``state``: a :class:`~orchestrator.state.SharedState` (e.g. ``orchestrator_redis``'s)
    whose limits, breakers and spend this router shares with others; ``async with router``
    enters it. None (default): all state is this router's own, in memory.
    ``clock`` (breakers, health) and ``sleep`` (backoff and ``Retry-After`` waits) are
    injectable for tests.
    """

    def __init__(
        self,
        strategy: str | Strategy = "round-robin",
        *,
        deadline: float | None = None,
        first_chunk_timeout: float | None = None,
        hedge_after: float | Literal["p95"] | None = None,
        on_limit: Literal["failover", "wait"] = "failover",
        prices: Mapping[str, PriceTable] | None = None,
        budget: Decimal | float | str | None = None,
        on_usage: UsageCallback | None = None,
        breaker: BreakerConfig | None = None,
        registry: PluginRegistry | None = None,
        on_invalid_output: Literal["failover", "raise"] = "failover",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        state: SharedState | None = None,
    ) -> None:
        if registry is None:
            from orchestrator.plugins import default_registry

            registry = default_registry()
        self.registry = registry
        if isinstance(strategy, str):
            self.strategy: Strategy = registry.strategy_class(strategy)()
            self.strategy_name = strategy
        else:
            self.strategy = strategy
            self.strategy_name = getattr(strategy, "name", type(strategy).__name__)
        self.deadline = _seconds("deadline", deadline)
        self.first_chunk_timeout = _seconds("first_chunk_timeout", first_chunk_timeout)
        if (
            hedge_after is not None
            and hedge_after != "p95"
            and not (isinstance(hedge_after, int | float) and 0 <= hedge_after < math.inf)
        ):
            raise ConfigurationError(
                f"hedge_after must be >= 0 seconds or 'p95', got {hedge_after!r}"
            )
        if on_limit not in ("failover", "wait"):
            raise ConfigurationError("on_limit must be 'failover' or 'wait'")
        if on_invalid_output not in ("failover", "raise"):
            raise ConfigurationError("on_invalid_output must be 'failover' or 'raise'")
        self.hedge_after = hedge_after
        self.on_limit = on_limit
        self.prices = dict(prices or {})
        self.breaker_config = breaker or BreakerConfig()
        self.clock = clock
        self._slots: list[ProviderSlot] = []
        self._by_name: dict[str, ProviderSlot] = {}
        self._ledger = Ledger(None if budget is None else Decimal(str(budget)), on_usage)
        self.state = state
        if state is not None:
            state.bind(self._slots, self._ledger)
        self._engine = Engine(
            self._slots,
            on_limit=on_limit,
            hedge_after=hedge_after,
            sleep=sleep,
            on_invalid_output=on_invalid_output,
            state=state,
        )
        self._chat_op = ChatOperation(self._ledger)
        self._hooks_version = -1
        self._hooks: LifecycleHooks | None = None

    @property
    def budget(self) -> Decimal | None:
        """Roubles the whole router may spend (None: no limit)."""
        return self._ledger.budget

    @property
    def on_usage(self) -> UsageCallback | None:
        return self._ledger.on_usage

    # -- providers ----------------------------------------------------------------------

    def add_provider(
        self,
        provider: BaseProvider,
        *,
        weight: float = 1.0,
        priority: int | None = None,
        timeout: float | None = None,
        first_chunk_timeout: float | None = None,
        limits: ProviderLimits | None = None,
        prices: PriceTable | None = None,
        budget: Decimal | float | str | None = None,
    ) -> None:
        """Add ``provider``; its ``config.name`` must be unique in this router.

        ``weight`` feeds ``weighted``/``random``; ``priority`` (lower first; default
        insertion order) feeds ``first-available``; ``timeout`` bounds one attempt;
        ``first_chunk_timeout`` overrides the router's for this provider; ``limits`` caps
        in-flight requests and per-minute requests/tokens; ``prices`` overrides the
        provider's price table; ``budget`` (roubles) stops traffic once spent.
        """
        from orchestrator.providers.base import BaseProvider  # its config model costs at import

        if not isinstance(provider, BaseProvider):
            raise TypeError(f"add_provider() needs a BaseProvider, got {type(provider).__name__}")
        name = provider.config.name
        if name in self._by_name:
            raise ConfigurationError(
                f"A provider named {name!r} is already in this router; "
                "give each provider a unique ProviderConfig.name"
            )
        if not (isinstance(weight, int | float) and 0 <= weight < math.inf):
            raise ConfigurationError(f"weight must be a finite number >= 0, got {weight!r}")
        _seconds("timeout", timeout)
        _seconds("first_chunk_timeout", first_chunk_timeout)
        table = prices if prices is not None else self.prices.get(name, provider.prices)
        capabilities = provider.capabilities()
        space = provider.embedding_space() if capabilities.embeddings else None
        if capabilities.embeddings and space is None:
            # This instance has no embeddings (e.g. a chat-only server of an OpenAI plugin).
            capabilities = dataclasses.replace(capabilities, embeddings=False)
        slot = ProviderSlot(
            provider,
            weight=weight,
            priority=len(self._slots) if priority is None else priority,
            breaker=CircuitBreaker(self.breaker_config, self.clock),
            stats=HealthStats(self.breaker_config.window, self.clock),
            timeout=timeout,
            first_chunk_timeout=first_chunk_timeout or self.first_chunk_timeout,
            limits=LimitState(limits, self.clock) if limits is not None else None,
            prices=table or None,
            budget=None if budget is None else Decimal(str(budget)),
            capabilities=capabilities,
            embedding_space=space,
        )
        self._slots.append(slot)
        self._by_name[name] = slot

    def remove_provider(self, name: str) -> BaseProvider:
        """Remove and return the provider called ``name`` (KeyError if absent)."""
        slot = self._by_name.pop(name, None)
        if slot is None:
            raise KeyError(f"No provider named {name!r}; have: {', '.join(self._by_name)}")
        self._slots.remove(slot)
        self._ledger.forget(slot)
        return slot.provider

    @property
    def providers(self) -> list[BaseProvider]:
        """The providers in insertion order."""
        return [slot.provider for slot in self._slots]

    def get_provider(self, name: str) -> BaseProvider:
        """The provider called ``name``."""
        return self._by_name[name].provider

    def view(self, providers: Sequence[str], strategy: str | Strategy | None = None) -> Router:
        """A router over some of this router's providers with a strategy of its own (default:
        this router's), sharing everything else: each provider's breaker, health, limits and
        budget, the router's budget and spend, deadline and hooks. The gateway's virtual
        models are views. Add providers to this router, not to a view."""
        names = list(providers)
        unknown = [name for name in names if name not in self._by_name]
        if unknown or not names or len(set(names)) != len(names):
            raise ConfigurationError(
                f"a view needs distinct provider names of this router; got {names!r}, "
                f"have: {', '.join(self._by_name)}"
            )
        view = copy.copy(self)
        if isinstance(strategy, str):
            view.strategy = self.registry.strategy_class(strategy)()
            view.strategy_name = strategy
        elif strategy is not None:
            view.strategy = strategy
            view.strategy_name = getattr(strategy, "name", type(strategy).__name__)
        view._slots = [self._by_name[name] for name in names]
        view._by_name = {slot.name: slot for slot in view._slots}
        # The same engine settings (and whatever else it holds) over the view's providers.
        view._engine = copy.copy(self._engine)
        view._engine.slots = view._slots
        return view

    @property
    def slots(self) -> list[ProviderSlot]:
        """Each provider with its settings, breaker and health, in insertion order."""
        return list(self._slots)

    # -- one request ----------------------------------------------------------------------

    def _start(
        self,
        kind: Literal["chat", "stream"],
        messages: MessagesInput,
        params: GenerationParams | Mapping[str, Any] | None,
        deadline: float | None,
    ) -> Call:
        """Validate the input (before any network call) and set up the request."""
        msgs = coerce_messages(messages)
        gen_params = None if params is None else _coerce_params(params)
        deadline = self.deadline if deadline is None else _seconds("deadline", deadline)
        until = None if deadline is None else anyio.current_time() + deadline
        hooks = self._hooks if self.registry.version == self._hooks_version else self._lifecycle()
        request = None
        if hooks is not None:
            request = RequestInfo(next(_request_ids), kind, msgs, gen_params, time.monotonic())
        call = Call(kind, msgs, gen_params, hooks, request, deadline, until)
        if gen_params is not None or len(msgs) > 1:
            call.needs = required_capabilities(msgs, gen_params)
        return call

    def _capable(self, call: Call, slots: Sequence[ProviderSlot]) -> list[ProviderSlot]:
        """The slots that have every capability ``call`` needs; raises before any network
        call when none has one of them."""
        capable = list(slots)
        for index, need in enumerate(call.needs):
            having = [slot for slot in capable if slot.capabilities.has(need)]
            if not having:
                label = need.replace("_", " ")
                also = f" together with {', '.join(call.needs[:index])}" if index else ""
                raise UnsupportedCapabilityError(
                    f"This request needs {label}{also}, which no provider here supports "
                    f"({', '.join(s.name for s in slots)}); add a provider that does, or "
                    f"leave {label} out of the request",
                    capability=need,
                )
            for slot in capable:
                if not slot.capabilities.has(need):
                    call.skip(
                        slot,
                        UnsupportedCapabilityError(
                            f"it does not support {need.replace('_', ' ')}", capability=need
                        ),
                    )
            capable = having
        return capable

    def _plan(
        self, call: Call, only: str | None, slots: Sequence[ProviderSlot] | None = None
    ) -> list[ProviderSlot]:
        """The providers to try, in order; those left out are recorded as skipped."""
        if not self._slots:
            raise NoProvidersError(
                "The router has no providers; add one with router.add_provider(...)"
            )
        if only is not None:
            slot = self._by_name.get(only)
            if slot is None:
                raise ConfigurationError(
                    f"No provider named {only!r} in this router; have: {', '.join(self._by_name)}"
                )
            return self._capable(call, [slot]) if call.needs else [slot]
        candidates = self._slots if slots is None else slots
        if call.needs:
            candidates = self._capable(call, candidates)
        ledger = self._ledger
        if ledger.budget is not None and ledger.exhausted():
            raise NoProvidersError(
                f"The router's budget of {ledger.budget} RUB is spent ({ledger.spent} RUB); "
                "raise Router(budget=...) to continue"
            )
        admitted = []
        funded = False
        for slot in candidates:
            if slot.budget is not None and slot.over_budget():
                call.skip(
                    slot,
                    QuotaExceededError(
                        f"its budget of {slot.budget} RUB is spent; raise add_provider(budget=...)"
                    ),
                )
                continue
            funded = True
            if slot.breaker.admits():
                admitted.append(slot)
            else:
                call.skip(slot, refusal(slot))
        if not funded:
            raise NoProvidersError(
                "Every provider has spent its budget; raise add_provider(budget=...)"
            )
        if not admitted:
            return []
        order = self.strategy.order(admitted)
        return admitted if order is admitted else list(order)  # admitted is ours alone

    def _failure(self, call: Call) -> ProviderError:
        """The error for a request that got no answer."""
        failed = AllProvidersFailedError(call.attempts)
        if call.deadline_hit and call.deadline is not None:
            error = DeadlineExceededError(
                f"Request deadline of {call.deadline:g}s exceeded across retries and "
                "fallbacks; raise `deadline` or lower provider timeouts"
            )
            error.__cause__ = failed
            return error
        return failed

    def _lifecycle(self) -> LifecycleHooks | None:
        """The hook relay when a plugin implements lifecycle hooks, else None (zero cost)."""
        registry = self.registry
        if registry.version != self._hooks_version:
            hook = registry.plugin_manager.hook
            active = any(getattr(hook, name).get_hookimpls() for name in LIFECYCLE_HOOKS)
            self._hooks = LifecycleHooks(hook) if active else None
            self._hooks_version = registry.version
        return self._hooks

    # -- calls ----------------------------------------------------------------------------

    async def route(
        self,
        prompt: str,
        params: GenerationParams | Mapping[str, Any] | None = None,
        *,
        deadline: float | None = None,
        provider: str | None = None,
    ) -> str:
        """Answer ``prompt`` and return the text."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be str, got {type(prompt).__name__}")
        completion = await self.chat(prompt, params, deadline=deadline, provider=provider)
        return completion.text

    async def chat(
        self,
        messages: MessagesInput,
        params: GenerationParams | Mapping[str, Any] | None = None,
        *,
        deadline: float | None = None,
        provider: str | None = None,
    ) -> Completion:
        """Answer a conversation (``Message``\\ s or role/content dicts, or a prompt string).

        ``provider`` pins the request to one provider (no failover).
        """
        call = self._start("chat", messages, params, deadline)
        plan = self._plan(call, provider)
        hooks, request = call.hooks, call.request
        if hooks is None or request is None:
            completion = await self._engine.first_success(call, plan, self._chat_op)
            if completion is None:
                raise self._failure(call)
            return completion
        await hooks.request_start(request)
        result: Completion | None = None
        error: BaseException | None = None
        outcome: Outcome = "cancelled"
        try:
            result = await self._engine.first_success(call, plan, self._chat_op)
            if result is None:
                raise self._failure(call)
            outcome = "ok"
            return result
        except Exception as exc:
            error, outcome = exc, "error"
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await hooks.request_end(request, result, error, outcome)

    async def route_stream(
        self,
        prompt: str,
        params: GenerationParams | Mapping[str, Any] | None = None,
        *,
        deadline: float | None = None,
        provider: str | None = None,
    ) -> AsyncGenerator[str, None]:
        """Stream the answer to ``prompt`` as text deltas."""
        chunks = self.chat_stream(prompt, params, deadline=deadline, provider=provider)
        async with contextlib.aclosing(chunks):  # closing us closes the provider's stream now
            async for chunk in chunks:
                if chunk.delta:
                    yield chunk.delta

    def chat_stream(
        self,
        messages: MessagesInput,
        params: GenerationParams | Mapping[str, Any] | None = None,
        *,
        deadline: float | None = None,
        provider: str | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        """Stream an answer as :class:`Chunk`\\ s; the last one has ``finish_reason``.

        Fails over only before the first text is yielded. Close it early with
        ``contextlib.aclosing`` so the connection is released at once. Like every async
        generator it starts (and validates its input) when first iterated.
        """

        def begin() -> tuple[Call, list[ProviderSlot]]:
            call = self._start("stream", messages, params, deadline)
            return call, self._plan(call, provider)

        return stream_request(begin, self._engine, self._ledger, self._failure)

    async def embed(
        self,
        texts: str | Sequence[str],
        *,
        kind: EmbeddingKind = "document",
        space: str | Sequence[str] | None = None,
        provider: str | None = None,
        deadline: float | None = None,
        concurrency: int = 4,
    ) -> Embeddings:
        """Embed ``texts``: one vector per text, in order, all from one model.

        ``kind``: ``"document"`` (to be searched) or ``"query"`` (to search with).
        ``space``: the vector space to answer from (see :attr:`Router.embedding_spaces`);
        by default the space of the first provider added that has embeddings. Batches fail
        over only between providers of that space. A list of spaces lets the request start
        again in the next space when every provider of one failed (the answer then comes
        wholly from that space: compare ``result.space`` with your index's).
        Texts are sent in batches of the space's ``max_batch``, ``concurrency`` at a time.
        """
        items = _coerce_texts(texts)
        if kind not in ("document", "query"):
            raise ValueError(f"kind must be 'document' or 'query', got {kind!r}")
        if not (isinstance(concurrency, int) and concurrency >= 1):
            raise ConfigurationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        deadline = self.deadline if deadline is None else _seconds("deadline", deadline)
        until = None if deadline is None else anyio.current_time() + deadline
        spaces = self._embedding_plan(space, provider)
        hooks = self._lifecycle()
        request = None
        if hooks is not None:
            messages = tuple(Message("user", text) for text in items)
            request = RequestInfo(next(_request_ids), "embed", messages, None, time.monotonic())
            await hooks.request_start(request)
        record = Call("embed", (), None, hooks, request, deadline, until)
        result: Embeddings | None = None
        error: BaseException | None = None
        token = retries_managed_by_caller.set(True)
        try:
            for members in spaces:
                result = await self._embed_in(record, items, kind, members, concurrency)
                if result is not None:
                    return result
                if record.deadline_hit:
                    break
            raise self._failure(record)
        except Exception as exc:
            error = exc
            raise
        finally:
            retries_managed_by_caller.reset(token)
            if hooks is not None and request is not None:
                outcome: Outcome = (
                    "ok" if result is not None else "error" if error is not None else "cancelled"
                )
                with anyio.CancelScope(shield=True):
                    await hooks.request_end(request, None, error, outcome)

    @property
    def embedding_spaces(self) -> dict[str, list[str]]:
        """Each vector space of this router's providers, with the providers in it."""
        spaces: dict[str, list[str]] = {}
        for slot in self._slots:
            if slot.embedding_space is not None:
                spaces.setdefault(slot.embedding_space.name, []).append(slot.name)
        return spaces

    def _embedding_plan(
        self, space: str | Sequence[str] | None, provider: str | None
    ) -> list[list[ProviderSlot]]:
        """The providers of each space to try, space by space (before any network call)."""
        if not self._slots:
            raise NoProvidersError(
                "The router has no providers; add one with router.add_provider(...)"
            )
        slots = self._slots
        if provider is not None:
            if provider not in self._by_name:
                raise ConfigurationError(
                    f"No provider named {provider!r} in this router; "
                    f"have: {', '.join(self._by_name)}"
                )
            slots = [self._by_name[provider]]
        capable = [slot for slot in slots if slot.embedding_space is not None]
        if not capable:
            raise UnsupportedCapabilityError(
                "This request needs embeddings, which no provider here supports "
                f"({', '.join(s.name for s in slots)}); add one that does (GigaChat, "
                "YandexGPT, an OpenAI-compatible server...)",
                capability="embeddings",
            )
        known = list(dict.fromkeys(s.embedding_space.name for s in capable if s.embedding_space))
        wanted = [known[0]] if space is None else [space] if isinstance(space, str) else list(space)
        unknown = [name for name in wanted if name not in known]
        if unknown or not wanted:
            raise ConfigurationError(
                f"No provider answers in embedding space {', '.join(map(repr, unknown))}; "
                f"spaces here: {', '.join(known)}"
            )
        return [
            [s for s in capable if s.embedding_space and s.embedding_space.name == name]
            for name in dict.fromkeys(wanted)
        ]

    async def _embed_in(
        self,
        record: Call,
        items: list[str],
        kind: EmbeddingKind,
        members: list[ProviderSlot],
        concurrency: int,
    ) -> Embeddings | None:
        """Every batch answered by providers of one space, or None (``record`` says why)."""
        space = members[0].embedding_space
        assert space is not None
        parts = batches(items, max_batch(members))
        results: list[Embeddings | None] = [None] * len(parts)
        limiter = anyio.CapacityLimiter(concurrency)
        failed = False
        errors: list[Exception] = []

        async def one(index: int, texts: Sequence[str]) -> None:
            nonlocal failed
            try:
                await attempt(index, texts)
            except Exception as exc:  # raised as itself below, not in an ExceptionGroup
                errors.append(exc)
            if results[index] is None:
                failed = True
                tg.cancel_scope.cancel()  # no answer for this batch: the others are moot

        async def attempt(index: int, texts: Sequence[str]) -> None:
            async with limiter:
                call = Call(
                    "embed",
                    tuple(Message("user", text) for text in texts),
                    None,
                    record.hooks,
                    record.request,
                    record.deadline,
                    record.until,
                )
                try:
                    plan = self._plan(call, None, members)
                    operation = EmbedBatch(texts, kind, space, self._ledger)
                    results[index] = await self._engine.first_success(call, plan, operation)
                finally:
                    record.attempts.extend(call.attempts)
                    record.deadline_hit |= call.deadline_hit

        async with anyio.create_task_group() as tg:
            for index, texts in enumerate(parts):
                tg.start_soon(one, index, texts)
        if errors:
            raise errors[0]
        if failed:
            return None
        return merge([r for r in results if r is not None], space)

    # -- construction from settings ----------------------------------------------------

    @classmethod
    def from_config(cls, source: Any) -> Router:
        """Build a router from a TOML file path or a dict (see docs/configuration.md)."""
        from orchestrator.settings import router_from_config

        return router_from_config(source)

    @classmethod
    def from_env(cls, **options: Any) -> Router:
        """Build a router from every installed provider that has credentials in the env."""
        from orchestrator.settings import router_from_env

        return router_from_env(**options)

    # -- health and lifecycle -----------------------------------------------------------

    async def health_check(self) -> dict[str, bool]:
        """Run every provider's ``health_check()`` concurrently; a raise counts as False."""
        results: dict[str, bool] = {}

        async def check(slot: ProviderSlot) -> None:
            try:
                results[slot.name] = bool(await slot.provider.health_check())
            except Exception as exc:
                logger.warning("%s health check raised %s", slot.name, type(exc).__name__)
                results[slot.name] = False

        async with anyio.create_task_group() as tg:
            for slot in self._slots:
                tg.start_soon(check, slot)
        return {slot.name: results[slot.name] for slot in self._slots}

    async def run_health_checks(self, interval: float = 30.0) -> None:
        """Actively check every provider each ``interval`` seconds, forever.

        Uses each provider's ``health_check()`` (a free call such as listing models, never a
        billable completion). A failed check counts as a failure for the breaker; a passing
        check lets a half-open breaker close. Run it in a task group; cancel it to stop.
        """
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        probe_error = ProviderError("active health check failed", transient=True)
        while True:
            for name, healthy in (await self.health_check()).items():
                slot = self._by_name.get(name)
                if slot is None:
                    continue
                if healthy:
                    if slot.breaker.state != "closed" and slot.breaker.acquire():
                        slot.breaker.on_success()
                else:
                    slot.breaker.on_failure(probe_error)
            await anyio.sleep(interval)

    def stats(self) -> dict[str, Any]:
        """Per-provider health, breaker state, counts, latency, usage and cost (JSON-ready)."""
        return {
            "strategy": self.strategy_name,
            "spent": str(self._ledger.spent),
            "budget": None if self.budget is None else str(self.budget),
            "providers": {
                slot.name: {
                    "breaker": slot.breaker.snapshot(),
                    **slot.stats.snapshot(),
                    "budget": None if slot.budget is None else str(slot.budget),
                    "limits": None
                    if slot.limits is None
                    else {"in_flight": slot.limits.in_flight, "peak": slot.limits.peak_in_flight},
                }
                for slot in self._slots
            },
            **({} if self.state is None else {"state": self.state.snapshot()}),
        }

    async def aclose(self) -> None:
        """Close every provider's HTTP client on the running loop."""
        for slot in self._slots:
            try:
                await slot.provider.aclose()
            except Exception:
                logger.warning("closing %s failed", slot.name, exc_info=True)

    async def __aenter__(self) -> Router:
        if self.state is not None:
            await self.state.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.aclose()
        finally:
            if self.state is not None:
                with anyio.CancelScope(shield=True):
                    await self.state.sync()
                await self.state.__aexit__(*exc_info)
