"""Clients' API keys: who is asking (by the key's SHA-256, never the key), what they may use,
and whether their budget and rate limits let this request through.

The counters live behind :class:`KeyState`. :class:`LocalKeyState` (the default) keeps them in
this process: with N gateway replicas each enforces the limits on its own, so a key may get up
to N times its limits. :class:`SharedKeyState` counts each key's requests per minute in the
router's shared state (``[state]`` in the configuration, e.g. orchestrator-redis), so N
replicas count each key once; ``orchestrator serve`` uses it whenever the router has a shared
state. Any other store plugs in as an object with the three methods of :class:`KeyState`
(``create_app(..., key_state=...)``), atomic on its side.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from orchestrator_gateway.config import KeySettings, hash_key
from orchestrator_gateway.errors import GatewayError

__all__ = ["Client", "KeyState", "Keyring", "LocalKeyState"]

WINDOW = 60.0  # seconds: limits are per rolling minute


@dataclass(frozen=True, slots=True)
class Client:
    """The caller of one request: the key's name (from the config) and its settings."""

    name: str
    settings: KeySettings

    def may_use(self, model: str) -> bool:
        allowed = self.settings.models
        return allowed is None or "*" in allowed or model in allowed


class KeyState(Protocol):
    """Per-key counters: requests and tokens in the last minute, and the spend."""

    async def admit(self, client: Client) -> None:
        """Count a request, or raise :class:`GatewayError` 429 (with ``retry_after``) when
        the key is over its budget or limits. Must be atomic (check and count at once)."""

    async def record(self, client: Client, tokens: int, cost: Decimal | None) -> None:
        """Add what a finished request used."""

    async def spent(self, client: Client) -> Decimal:
        """Roubles the key has spent."""


@dataclass
class _Counters:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_sum: int = 0
    spent: Decimal = Decimal(0)


class LocalKeyState:
    """:class:`KeyState` in this process: exact sliding one-minute windows. (No awaits
    between check and count, so concurrent requests cannot both take the last slot.)"""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._counters: dict[str, _Counters] = {}

    def _of(self, client: Client) -> _Counters:
        return self._counters.setdefault(client.name, _Counters())

    async def admit(self, client: Client) -> None:
        limits = client.settings
        counters = self._of(client)
        now = self.clock()
        if limits.budget is not None and counters.spent >= limits.budget:
            raise GatewayError(
                429,
                f"API key {client.name!r} has spent its budget of {limits.budget} RUB",
                "insufficient_quota",
                "insufficient_quota",
                retry=False,
            )
        while counters.requests and counters.requests[0] <= now - WINDOW:
            counters.requests.popleft()
        while counters.tokens and counters.tokens[0][0] <= now - WINDOW:
            counters.token_sum -= counters.tokens.popleft()[1]
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        if rpm is not None and len(counters.requests) >= rpm:
            wait = counters.requests[0] + WINDOW - now
            raise GatewayError(
                429,
                f"API key {client.name!r} is over its limit of {rpm} requests per minute",
                "rate_limit_error",
                "rate_limit_exceeded",
                retry_after=wait,
            )
        if tpm is not None and counters.token_sum >= tpm:
            wait = counters.tokens[0][0] + WINDOW - now
            raise GatewayError(
                429,
                f"API key {client.name!r} is over its limit of {tpm} tokens per minute",
                "rate_limit_error",
                "rate_limit_exceeded",
                retry_after=wait,
            )
        counters.requests.append(now)

    async def record(self, client: Client, tokens: int, cost: Decimal | None) -> None:
        counters = self._of(client)
        if tokens > 0:
            counters.tokens.append((self.clock(), tokens))
            counters.token_sum += tokens
        if cost is not None:
            counters.spent += cost

    async def spent(self, client: Client) -> Decimal:
        return self._of(client).spent


class Keyring:
    """Finds the client of a request from its ``Authorization: Bearer`` header."""

    def __init__(self, keys: Mapping[str, KeySettings], hashes: Mapping[str, str]) -> None:
        self._by_hash = {digest: Client(name, keys[name]) for digest, name in hashes.items()}

    def __len__(self) -> int:
        return len(self._by_hash)

    def client(self, authorization: str | None) -> Client:
        if not authorization:
            raise GatewayError(
                401,
                "Missing API key: send Authorization: Bearer <key>",
                "invalid_request_error",
                "missing_api_key",
            )
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise GatewayError(
                401,
                "Malformed Authorization header: send Authorization: Bearer <key>",
                "invalid_request_error",
                "invalid_api_key",
            )
        # A lookup by the key's SHA-256: its timing can tell nothing about the key itself.
        client = self._by_hash.get(hash_key(key))
        if client is not None:
            return client
        raise GatewayError(
            401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
        )


class SharedKeyState:
    """Per-key requests per minute in the router's shared state: the state's
    ``acquire(scope, limits, estimate)`` (orchestrator-redis: one Lua script, atomic across
    replicas; on its own local window while Redis is away). Budgets and tokens per minute
    stay per process (``local``): the shared state has no per-key spend or token correction.
    """

    def __init__(self, state: Any, local: LocalKeyState | None = None) -> None:
        self.state = state
        self.local = local or LocalKeyState()

    async def admit(self, client: Client) -> None:
        rpm = client.settings.requests_per_minute
        local_only = client.settings.model_copy(update={"requests_per_minute": None})
        await self.local.admit(Client(client.name, local_only))
        if rpm is None:
            return
        from orchestrator.limits import ProviderLimits

        refused = await self.state.acquire(
            f"gateway-key:{client.name}", ProviderLimits(None, rpm, None), 0
        )
        if refused:
            raise GatewayError(
                429,
                f"API key {client.name!r} is over its limit of {rpm} requests per minute "
                "(shared by every replica)",
                "rate_limit_error",
                "rate_limit_exceeded",
                # The shared window does not say when it frees: one request's share of it.
                retry_after=WINDOW / rpm,
            )

    async def record(self, client: Client, tokens: int, cost: Decimal | None) -> None:
        await self.local.record(client, tokens, cost)

    async def spent(self, client: Client) -> Decimal:
        return await self.local.spent(client)
