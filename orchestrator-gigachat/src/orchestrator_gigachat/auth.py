"""GigaChat access tokens: OAuth with the authorization key, password auth, or pre-issued.

One :class:`TokenManager` per provider holds the current token for every event loop and
thread (a token is not bound to a loop). Refreshes are single-flight per event loop: the
first caller takes ``provider.loop_lock("gigachat-token")`` and fetches, the others wait
and reuse its token, so 100 concurrent first calls make one OAuth request.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.boundary import mapped_transport_errors
from orchestrator.config import Secret
from orchestrator.errors import AuthenticationError, ProviderError
from orchestrator_gigachat.errors import KEY_HELP, TLS_HINT, oauth_error, request_id_of

if TYPE_CHECKING:
    import httpx

    from orchestrator_gigachat.provider import GigaChatProvider

__all__ = ["AccessToken", "TokenManager", "parse_expires_at"]

_MILLISECONDS_FROM = 10**11  # below this an expiry is in seconds (year 5138 in seconds)


def parse_expires_at(value: Any) -> float:
    """Unix seconds from an ``expires_at``/``exp`` value in milliseconds or seconds."""
    number = float(value)
    return number / 1000.0 if number >= _MILLISECONDS_FROM else number


@dataclass(frozen=True, slots=True, repr=False)
class AccessToken:
    """A bearer token and when it expires (Unix seconds; ``inf`` when unknown)."""

    value: Secret
    expires_at: float = math.inf
    #: Where it came from: ``oauth``, ``password`` or ``preissued``.
    source: str = "oauth"

    def __repr__(self) -> str:
        return f"AccessToken(value='***', expires_at={self.expires_at!r}, source={self.source!r})"

    def usable(self, margin: float) -> bool:
        """True while more than ``margin`` seconds remain."""
        return self.expires_at - margin > time.time()


class TokenManager:
    """The current access token of one provider, refreshed before expiry."""

    LOCK_NAME = "gigachat-token"

    def __init__(self, provider: GigaChatProvider) -> None:
        self._provider = provider
        self._guard = threading.Lock()
        config = provider.config
        self._token: AccessToken | None = None
        if config.access_token:
            self._token = AccessToken(Secret(config.access_token), source="preissued")
        #: OAuth/password requests made so far (for tests and diagnostics).
        self.refreshes = 0

    @property
    def can_refresh(self) -> bool:
        """Whether a new token can be fetched (an authorization key or user/password)."""
        config = self._provider.config
        return bool(config.api_key or (config.user and config.password))

    def current(self) -> AccessToken | None:
        """The cached token if it is still usable."""
        token = self._token
        if token is not None and token.usable(self._provider.config.token_refresh_margin):
            return token
        return None

    def invalidate(self, token: AccessToken) -> None:
        """Drop ``token`` (after a 401) unless another caller already replaced it."""
        with self._guard:
            if self._token is token:
                self._token = None

    def expire(self) -> None:
        """Forget the current token: the next call fetches a new one."""
        with self._guard:
            self._token = None

    async def get(self) -> AccessToken:
        """A usable token, fetching one (once per loop, however many callers) if needed."""
        token = self.current()
        if token is not None:
            return token
        async with self._provider.loop_lock(self.LOCK_NAME):
            token = self.current()
            if token is not None:
                return token
            token = await self._fetch()
            with self._guard:
                self._token = token
            return token

    async def _fetch(self) -> AccessToken:
        config = self._provider.config
        if config.api_key:
            return await self._oauth(config.api_key)
        if config.user and config.password:
            return await self._password(config.user, config.password)
        raise AuthenticationError(
            "The GigaChat access token (config.access_token / GIGACHAT_ACCESS_TOKEN) was "
            "rejected or has expired and there is no authorization key to get a new one; "
            "pass a fresh token, or " + KEY_HELP,
            provider=self._provider.name,
            status_code=401,
        )

    async def _post(self, url: str, **kwargs: Any) -> httpx.Response:
        client = self._provider.http_client()
        self.refreshes += 1
        with mapped_transport_errors(
            self._provider.name, what=f"GigaChat token request to {url} failed", tls_hint=TLS_HINT
        ):
            return await client.post(url, **kwargs)

    async def _oauth(self, key: str) -> AccessToken:
        config = self._provider.config
        response = await self._post(
            config.auth_url,
            headers={
                "Authorization": f"Basic {key}",
                "RqUID": str(uuid.uuid4()),
                "Accept": "application/json",
            },
            data={"scope": config.scope},
        )
        if response.status_code != 200:
            raise oauth_error(response, provider=self._provider.name, scope=config.scope)
        token = self._parse(response, source="oauth")
        self._provider.logger.debug(
            "%s: new GigaChat access token (scope %s), valid for %.0fs",
            self._provider.name,
            config.scope,
            token.expires_at - time.time(),
        )
        return token

    async def _password(self, user: str, password: str) -> AccessToken:
        config = self._provider.config
        base = (config.base_url or "").rstrip("/")
        response = await self._post(
            f"{base}/token", auth=(user, password), headers={"Accept": "application/json"}
        )
        if response.status_code != 200:
            error = oauth_error(response, provider=self._provider.name, scope=config.scope)
            if isinstance(error, AuthenticationError):
                error.message = (
                    f"GigaChat rejected user {user!r} and its password (config.user/password, "
                    "GIGACHAT_USER/GIGACHAT_PASSWORD); check them with your administrator"
                )
            raise error
        return self._parse(response, source="password")

    def _parse(self, response: httpx.Response, *, source: str) -> AccessToken:
        try:
            data = response.json()
            value = data.get("access_token") or data.get("tok")
            raw_expiry = data.get("expires_at", data.get("exp"))
            expires_at = math.inf if raw_expiry is None else parse_expires_at(raw_expiry)
            if math.isnan(expires_at):
                value = None
        except (ValueError, TypeError, AttributeError, OverflowError, RecursionError):
            value = None
        if not isinstance(value, str) or not value:
            raise ProviderError(
                "GigaChat's token endpoint answered 200 without an access token "
                "(expected access_token/expires_at or tok/exp); check auth_url",
                provider=self._provider.name,
                status_code=response.status_code,
                request_id=request_id_of(response),
                transient=True,
            )
        return AccessToken(Secret(value, ephemeral=True), expires_at, source)
