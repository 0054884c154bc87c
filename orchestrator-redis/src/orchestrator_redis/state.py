"""RedisState: limits, breakers, budgets and usage totals shared through one Redis.

Consistency (what every router sharing a ``prefix`` gets while Redis answers):

- **requests/tokens per minute**: one sliding window per provider in Redis, checked and
  reserved by one Lua script per attempt: N routers together admit at most the limit in any
  60 s window (Redis's clock). Each router also keeps its local window (the fast path).
- **circuit breakers**: a router that trips a breaker publishes it before that request
  goes on (the failed attempt's sync); every router's next admission to that provider sees
  it open (and adopts the remaining cooldown locally). Failures are counted per router:
  the decision to trip is local, the open state and its cooldown (doubling with the shared
  trip count) are shared. After the cooldown each router sends its own half-open probe.
  A ``Retry-After`` hold is shared too.
- **budgets and usage totals**: each router pushes its own absolute totals after every
  attempt — a background task does it right after a success, off the caller's path, and
  admission pushes first whatever is still pending — and admission compares the shared
  spend with the budget. Overshoot is bounded by the attempts in flight, or ended but not
  yet pushed, when the budget ran out (at most ``sync_interval`` old).

When Redis fails or is slow, every call gives up after ``timeout`` seconds and Redis is
not asked again for ``retry_interval`` seconds: the router serves on local state alone
(each of N routers admits up to its own limit, so a shared limit may be exceeded up to
N times; budgets are checked against the last shared spend seen plus local spend since).
When Redis answers again, each router pushes its absolute totals (idempotently: counted
once even if Redis restarted empty) and its open breakers. After every failure the coredis
client is replaced by a fresh one (a connect cancelled mid-way can cost its pool a slot).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc
import anyio.lowlevel
import coredis
import coredis.connection
import coredis.exceptions
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from orchestrator.errors import (
    ConfigurationError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
)
from orchestrator.limits import LimitState, ProviderLimits
from orchestrator.state import SharedState
from orchestrator_redis.scripts import ADMIT, SYNC

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from coredis.commands.script import Script

    from orchestrator._routing.accounting import Ledger
    from orchestrator.health import ProviderSlot

__all__ = ["RedisState"]

logger = logging.getLogger("orchestrator.redis")

_MICRO = Decimal(1_000_000)
#: What a failing or unreachable Redis raises: coredis's own errors, sockets, our timeout,
#: and the anyio stream errors coredis lets through when a connection breaks under a call.
_FAULTS = (
    coredis.exceptions.RedisError,
    OSError,
    TimeoutError,
    EOFError,
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
)


class _TCPConnection(coredis.connection.TCPConnection):
    """coredis 6.9 leaves the memory streams of a connection that never ran, or failed to
    connect, open (a ResourceWarning each, many per Redis outage); this one closes them."""

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            await super().run(task_status=task_status)
        finally:
            _close_streams(self)

    def __del__(self) -> None:  # constructed, then its start was cancelled: never ran
        _close_streams(self)


class _UnixConnection(coredis.connection.UnixDomainSocketConnection):
    __doc__ = _TCPConnection.__doc__

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            await super().run(task_status=task_status)
        finally:
            _close_streams(self)

    def __del__(self) -> None:
        _close_streams(self)


def _close_streams(connection: object) -> None:
    for value in vars(connection).values():
        if isinstance(value, MemoryObjectSendStream | MemoryObjectReceiveStream):
            value.close()


def _micro(value: Decimal) -> int:
    """Roubles as whole micro-roubles (the unit of the shared totals)."""
    return int((value * _MICRO).to_integral_value())


def _roubles(micro: int) -> Decimal:
    return Decimal(micro) / _MICRO


def redact(url: str) -> str:
    """``url`` without its user name and password (safe for logs, reprs and errors)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    if parts.username or parts.password:
        netloc = f"***@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class RedisState(SharedState):
    """Router state shared through Redis (see the module docstring for the guarantees).

    ``url``: ``redis://[user:password@]host:port/db`` (or ``rediss://``); never logged.
    ``prefix``: routers with the same prefix share state. ``timeout``: seconds any Redis
    call may take before the router goes on without it. ``retry_interval``: seconds Redis is
    left alone after a failure before it is tried again. ``sync_interval``: an idle router
    still pushes its totals (and learns what the others spent) this often.

    Enter it on the event loop that serves the router (``async with router:`` does);
    asyncio and trio both work (coredis is built on anyio).
    """

    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "orchestrator",
        timeout: float = 0.25,
        retry_interval: float = 1.0,
        sync_interval: float = 1.0,
    ) -> None:
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigurationError(
                f"Redis URL must start with redis://, rediss:// or unix://, got {redact(url)!r}"
            )
        if not timeout > 0 or not retry_interval > 0 or not sync_interval > 0:
            raise ConfigurationError(
                "timeout, retry_interval and sync_interval must be > 0 seconds"
            )
        if not prefix or any(c.isspace() for c in prefix):
            raise ConfigurationError(f"prefix must be a non-empty word, got {prefix!r}")
        self._url = url
        self.endpoint = redact(url)
        self.prefix = prefix
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.sync_interval = sync_interval
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._members = itertools.count(1)
        self._client: coredis.Redis[str] | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self._renew: anyio.Event | None = None  # set: replace the client with a fresh one
        self._wake: anyio.Event | None = None  # set: an attempt ended, push it now
        self._dirty = False  # an attempt ended since the last sync
        self._warned_loop = False
        self._loop: object = None
        self._admit: Script[str] | None = None
        self._sync: Script[str] | None = None
        # Health of Redis itself.
        self.connected = False
        self.faults = 0
        self.last_fault: str | None = None
        self._down_until = 0.0
        self._down = False
        # What this router last pushed, and the shared totals as last read (micro-roubles).
        self._pushed_spent = 0
        self._pushed_cost: dict[str, int] = {}
        self._totals: dict[str, int] = {}
        self._breaker_changes: dict[str, int] = {}
        # Token corrections (actual - estimate) waiting for the next sync, per provider.
        self._corrections: dict[str, int] = {}
        # Per-scope local windows for acquire() while Redis is down.
        self._local_scopes: dict[str, LimitState] = {}

    def __repr__(self) -> str:
        return f"RedisState({self.endpoint!r}, prefix={self.prefix!r})"

    # -- lifecycle ---------------------------------------------------------------------

    def bind(self, slots: Sequence[ProviderSlot], ledger: Ledger) -> None:
        if self.ledger is not None:
            raise ConfigurationError(
                "This RedisState already serves a router; give each router its own "
                "(routers with the same prefix share state through Redis)"
            )
        super().bind(slots, ledger)

    async def __aenter__(self) -> RedisState:
        if self._tasks is not None:
            raise RuntimeError("RedisState is already entered")
        self._loop = anyio.lowlevel.current_token()
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        await self._tasks.start(self._keep_client)
        await self._guarded(self._ping)
        self._tasks.start_soon(self._sync_forever)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        tasks, self._tasks = self._tasks, None
        if tasks is not None:
            tasks.cancel_scope.cancel()
            await tasks.__aexit__(None, None, None)
        self.connected = False

    def _new_client(self) -> coredis.Redis[str]:
        client: coredis.Redis[str] = coredis.Redis.from_url(
            self._url,
            decode_responses=True,
            connect_timeout=self.timeout,
            stream_timeout=self.timeout,
        )
        pool = client.connection_pool  # from_url picks the class by scheme: ours instead
        if pool.connection_class is coredis.connection.TCPConnection:
            pool.connection_class = _TCPConnection
        elif pool.connection_class is coredis.connection.UnixDomainSocketConnection:
            pool.connection_class = _UnixConnection
        return client

    async def _keep_client(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Own the coredis client (entered and left in this one task) and replace it after
        each failure: a pool whose connect was cancelled may have lost that connection's
        slot for good, and a fresh client is cheap next to a Redis outage."""
        started = False
        while True:
            renew = self._renew = anyio.Event()
            try:
                async with self._new_client() as client:
                    self._client = client
                    self._admit = client.register_script(ADMIT)
                    self._sync = client.register_script(SYNC)
                    if not started:
                        started = True
                        task_status.started()
                    try:
                        await renew.wait()
                    finally:
                        self._client = None
                        self._admit = self._sync = None
            except Exception as exc:  # the client itself broke: Redis stays a fault domain
                self._fault(f"client failed: {type(exc).__name__}")
                if not started:
                    started = True
                    task_status.started()
                await anyio.sleep(self.retry_interval)

    async def _ping(self) -> Any:
        client = self._client
        return None if client is None else await client.ping()

    async def _sync_forever(self) -> None:
        """Push as soon as an attempt ended (off the request's path), and at least every
        ``sync_interval`` seconds, so that what other routers spent is never staler."""
        while True:
            wake = self._wake = anyio.Event()
            with anyio.move_on_after(self.sync_interval):
                await wake.wait()
            if wake.is_set() and not self._dirty:
                continue  # an admission pushed it already
            try:
                await self.sync()
            except Exception:  # a bug here must not take the router's task group down
                logger.exception("periodic sync with Redis at %s failed", self.endpoint)

    # -- Redis as a fault domain -----------------------------------------------------

    def _usable(self) -> bool:
        if self._client is None:
            return False
        if _current_loop() != self._loop:
            # A coredis client belongs to the loop it was entered on: this call is served
            # on local state, without disturbing the loop that owns the client.
            self.last_fault = "called from another event loop than the one it was entered on"
            if not self._warned_loop:
                self._warned_loop = True
                logger.warning(
                    "RedisState for %s used from another event loop than the one it was "
                    "entered on: those requests share nothing",
                    self.endpoint,
                )
            return False
        return time.monotonic() >= self._down_until

    async def _guarded(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """``call()``'s result, or None when Redis failed or took longer than ``timeout``."""
        if not self._usable():
            return None
        client = self._client
        try:
            with anyio.fail_after(self.timeout):
                result = await call()
        except _FAULTS as exc:
            self._fault(type(exc).__name__)
            return None
        except RuntimeError:
            if self._client is client:
                raise
            return None  # the client was replaced under this call (after a fault): local
        if self._down:
            self._down = False
            # Whatever was open here while Redis was away is published again.
            self._breaker_changes.clear()
            logger.warning("Redis at %s answers again; shared state resumed", self.endpoint)
        self.connected = True
        return result

    def _fault(self, what: str) -> None:
        if self._renew is not None:
            self._renew.set()
        self.faults += 1
        self.last_fault = what
        self.connected = False
        self._down_until = time.monotonic() + self.retry_interval
        self._corrections.clear()  # their window is gone by the time Redis is back
        if not self._down:
            self._down = True
            logger.warning(
                "Redis at %s failed (%s); serving on local state, retrying in %gs",
                self.endpoint,
                what,
                self.retry_interval,
            )

    # -- keys --------------------------------------------------------------------------

    def _keys(self, scope: str) -> list[str]:
        p = self.prefix
        return [f"{p}:rpm:{scope}", f"{p}:tpm:{scope}", f"{p}:tpmsum:{scope}"]

    def _member(self) -> str:
        return f"{self.id}-{next(self._members)}"

    # -- the router's calls ------------------------------------------------------------

    async def admit(self, slot: ProviderSlot, estimate: int) -> ProviderError | None:
        if self._dirty:
            # An attempt ended outside the engine (a stream closes in the caller's code):
            # publish its outcome and spend before asking for more.
            await self.sync()
        name = slot.name
        limits = slot.limits.limits if slot.limits is not None else None
        ledger = self.ledger
        budget = None if ledger is None else ledger.budget
        args: list[str | int] = [
            "",
            name,
            "" if budget is None else _micro(budget),
            "" if slot.budget is None else _micro(slot.budget),
            _limit(limits, "requests_per_minute"),
            _limit(limits, "tokens_per_minute"),
            estimate,
            self._member(),
        ]
        keys = [f"{self.prefix}:breaker:{name}", f"{self.prefix}:totals", *self._keys(name)]
        script = self._admit
        if script is None:
            return None
        reply = await self._guarded(lambda: script(keys=keys, args=args))
        if reply is None:
            return None
        verdict, seconds, spent, cost, trips = reply
        self._learn(spent, name, cost)
        wait = float(seconds)
        if verdict == "ok":
            return None
        if verdict == "open":
            slot.breaker.adopt(wait, 0.0, int(trips))
            return ServiceUnavailableError(
                f"circuit breaker open for {wait:.1f}s more (opened by a router sharing "
                f"state at {self.endpoint}, prefix {self.prefix!r})",
                provider=name,
            )
        if verdict == "held":
            slot.breaker.adopt(0.0, wait, 0)
            return RateLimitError(
                f"held off for {wait:.1f}s more by a Retry-After another router received",
                provider=name,
                retry_after=wait,
            )
        if verdict == "budget":
            return QuotaExceededError(
                f"the shared budget of {budget} RUB is spent ({_roubles(int(spent))} RUB "
                f"across the routers with prefix {self.prefix!r}); raise Router(budget=...)",
                provider=name,
            )
        if verdict == "provider_budget":
            return QuotaExceededError(
                f"its shared budget of {slot.budget} RUB is spent ({_roubles(int(cost))} RUB "
                "across routers); raise add_provider(budget=...)",
                provider=name,
            )
        limit = "requests_per_minute" if verdict == "rpm" else "tokens_per_minute"
        return RateLimitError(
            f"shared limit {limit}={getattr(limits, limit)} reached across the routers "
            f"with prefix {self.prefix!r}",
            provider=name,
            retry_after=wait,
        )

    def released(self, slot: ProviderSlot, estimate: int, tokens: int | None) -> None:
        self._dirty = True
        wake = self._wake
        if wake is not None and _current_loop() == self._loop:
            wake.set()  # the background task pushes it: the caller does not wait
        limits = slot.limits
        if (
            tokens is None
            or tokens == estimate
            or limits is None
            or limits.limits.tokens_per_minute is None
        ):
            return
        name = slot.name
        self._corrections[name] = self._corrections.get(name, 0) + tokens - estimate

    async def sync(self) -> None:
        script = self._sync
        ledger = self.ledger
        if script is None or ledger is None or not self._usable():
            return
        self._dirty = False
        fields: list[str | int] = ["spent", _micro(ledger.spent)]
        costs: dict[str, int] = {}
        for slot in self.slots:
            stats, name = slot.stats, slot.name
            costs[name] = cost = _micro(stats.cost)
            fields += [
                f"cost:{name}",
                cost,
                f"ok:{name}",
                stats.successes,
                f"failed:{name}",
                stats.failures,
                f"prompt_tokens:{name}",
                stats.prompt_tokens,
                f"completion_tokens:{name}",
                stats.completion_tokens,
            ]
        keys = [f"{self.prefix}:totals", f"{self.prefix}:router:{self.id}"]
        breakers: list[str | int] = []
        seen: dict[str, int] = {}
        for slot in self.slots:
            breaker = slot.breaker
            changes = breaker.changes
            if self._breaker_changes.get(slot.name) == changes:
                continue
            seen[slot.name] = changes
            state, open_for, held_for, trips = breaker.export()
            keys.append(f"{self.prefix}:breaker:{slot.name}")
            breakers += [state, int(open_for * 1000), int(held_for * 1000), trips]
        corrections = self._corrections
        self._corrections = {}
        tail: list[str | int] = []
        for name, delta in corrections.items():
            keys += self._keys(name)[1:]
            tail += [delta, self._member()]
        args = ["", len(fields) // 2, len(breakers) // 4, len(corrections), *fields, *breakers]
        args += tail
        reply = await self._guarded(lambda: script(keys=keys, args=args))
        if reply is None:
            return
        self._breaker_changes.update(seen)
        self._pushed_spent = _micro(ledger.spent)
        self._pushed_cost = costs
        flat = list(reply)
        self._totals = {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}
        for slot in self.slots:
            self._learn(None, slot.name, self._totals.get(f"cost:{slot.name}", 0))
        self._learn(self._totals.get("spent", 0), None, None)

    def _learn(self, spent: int | str | None, name: str | None, cost: int | str | None) -> None:
        """Take what the other routers spent from shared totals (this router's own part,
        as last pushed, subtracted)."""
        ledger = self.ledger
        if spent is not None and ledger is not None:
            ledger.others = max(Decimal(0), _roubles(int(spent) - self._pushed_spent))
        if name is not None and cost is not None:
            for slot in self.slots:
                if slot.name == name:
                    own = self._pushed_cost.get(name, 0)
                    slot.others_cost = max(Decimal(0), _roubles(int(cost) - own))
                    break

    async def acquire(self, scope: str, limits: ProviderLimits, estimate: int = 0) -> str | None:
        script = self._admit
        if script is not None:
            keys = [f"{self.prefix}:-", f"{self.prefix}:totals", *self._keys(f"key:{scope}")]
            args: list[str | int] = [
                "",
                "",
                "",
                "",
                _limit(limits, "requests_per_minute"),
                _limit(limits, "tokens_per_minute"),
                estimate,
                self._member(),
            ]
            reply = await self._guarded(lambda: script(keys=keys, args=args))
            if reply is not None:
                verdict = reply[0]
                if verdict == "ok":
                    return None
                return "requests_per_minute" if verdict == "rpm" else "tokens_per_minute"
        # Redis unusable: this process's own window for the scope.
        local = self._local_scopes.get(scope)
        if local is None or local.limits != limits:
            local = self._local_scopes[scope] = LimitState(
                ProviderLimits(None, limits.requests_per_minute, limits.tokens_per_minute)
            )
        refused = local.try_acquire(estimate)
        if refused is None:
            local.release(estimate)
            return None
        return refused.split("=")[0]

    def snapshot(self) -> dict[str, Any]:
        totals = self._totals
        providers: dict[str, dict[str, Any]] = {}
        for slot in self.slots:
            name = slot.name
            providers[name] = {
                "successes": totals.get(f"ok:{name}", 0),
                "failures": totals.get(f"failed:{name}", 0),
                "prompt_tokens": totals.get(f"prompt_tokens:{name}", 0),
                "completion_tokens": totals.get(f"completion_tokens:{name}", 0),
                "cost": str(_roubles(totals.get(f"cost:{name}", 0))),
            }
        return {
            "backend": self.name,
            "endpoint": self.endpoint,
            "prefix": self.prefix,
            "connected": self.connected,
            "faults": self.faults,
            "last_fault": self.last_fault,
            "spent": str(_roubles(totals.get("spent", 0))),
            "providers": providers,
        }


def _current_loop() -> object:
    """The running event loop's token (None outside one, e.g. a finalizer)."""
    try:
        return anyio.lowlevel.current_token()
    except RuntimeError:
        return None


def _limit(limits: ProviderLimits | None, name: str) -> str | int:
    value = None if limits is None else getattr(limits, name)
    return "" if value is None else int(value)
