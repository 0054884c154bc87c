"""Credentials: what goes into the ``Authorization`` header of each YandexGPT call.

- :class:`ApiKeyAuth` — ``Api-Key <key>`` (a service account's long-lived API key).
- :class:`IamTokenAuth` — ``Bearer <IAM token>`` given by the user (they refresh it).
- :class:`ExchangedIamAuth` — ``Bearer <IAM token>`` obtained from the IAM endpoint with an
  OAuth token or a PS256-signed JWT of a service-account authorized key, reused for
  ``iam_refresh_interval`` (an hour) and refreshed single-flight: concurrent calls on one
  event loop wait for one exchange. The token cache is shared by all event loops; the
  lock is per loop (``provider.loop_lock``), because an anyio lock is bound to one loop.
"""

from __future__ import annotations

import abc
import json
import re
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator.boundary import mapped_transport_errors
from orchestrator.config import Secret
from orchestrator.errors import AuthenticationError, ConfigurationError, ProviderError
from orchestrator_yandexgpt.config import DEFAULT_IAM_URL
from orchestrator_yandexgpt.errors import TLS_HINT, error_from_response

if TYPE_CHECKING:
    from orchestrator.providers.base import BaseProvider

__all__ = [
    "ApiKeyAuth",
    "Credentials",
    "ExchangedIamAuth",
    "IamTokenAuth",
    "ServiceAccountKey",
    "parse_expires_at",
]

#: The JWT audience Yandex IAM requires, whatever URL the exchange is sent to.
JWT_AUDIENCE = DEFAULT_IAM_URL
_JWT_LIFETIME = 3600  # the maximum IAM accepts (exp - iat <= 1 h)
_EXPIRY_MARGIN = 300.0  # refresh this long before the token's own expiry
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_expires_at(value: Any) -> float | None:
    """Seconds since the epoch of an RFC 3339 time (nanoseconds allowed), or None."""
    if not isinstance(value, str) or not value:
        return None
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


class Credentials(abc.ABC):
    """Produces the ``Authorization`` header value."""

    #: ``Bearer`` credentials are IAM tokens (the docs send ``x-folder-id`` with them).
    bearer: bool = False

    @abc.abstractmethod
    async def authorization(self, provider: BaseProvider) -> str:
        """The header value to send now."""

    def invalidate(self, header: str) -> bool:
        """Forget ``header`` after a 401; True when a fresh one can be obtained."""
        return False


class ApiKeyAuth(Credentials):
    """``Authorization: Api-Key <key>``."""

    def __init__(self, key: str) -> None:
        self._header = Secret(f"Api-Key {key}")

    async def authorization(self, provider: BaseProvider) -> str:
        return self._header

    def __repr__(self) -> str:
        return "<ApiKeyAuth>"


class IamTokenAuth(Credentials):
    """``Authorization: Bearer <IAM token>`` with a token the user manages."""

    bearer = True

    def __init__(self, token: str) -> None:
        self._header = Secret(f"Bearer {token}")

    async def authorization(self, provider: BaseProvider) -> str:
        return self._header

    def __repr__(self) -> str:
        return "<IamTokenAuth>"


class ServiceAccountKey:
    """A service-account authorized key (the JSON ``yc iam key create`` writes)."""

    __slots__ = ("_private_key", "key_id", "service_account_id")

    def __init__(self, key_json: str) -> None:
        try:
            import jwt  # noqa: F401  (PyJWT: checked here so a missing extra fails early)
            from cryptography.hazmat.primitives.serialization import load_pem_private_key
        except ImportError:
            raise ConfigurationError(
                "Service-account keys need PyJWT with cryptography: "
                "pip install 'orchestrator-yandexgpt[jwt]'"
            ) from None
        try:
            data = json.loads(key_json)
            self.key_id = str(data["id"])
            self.service_account_id = str(data["service_account_id"])
            pem = str(data["private_key"])
        except (ValueError, KeyError, TypeError):
            raise ConfigurationError(
                "The service-account key is not an authorized key JSON with 'id', "
                "'service_account_id' and 'private_key'; create one with "
                "`yc iam key create --service-account-name <name> -o key.json`"
            ) from None
        # Yandex prefixes the PEM with "PLEASE DO NOT REMOVE THIS LINE! ..."; keep the PEM.
        start = pem.find("-----BEGIN")
        try:
            self._private_key = load_pem_private_key(pem[max(start, 0) :].encode(), password=None)
        except (ValueError, TypeError):
            raise ConfigurationError(
                f"The private key of service-account key {self.key_id!r} cannot be read; "
                "use the key file exactly as `yc iam key create` wrote it"
            ) from None

    def make_jwt(self, now: float | None = None) -> str:
        """A PS256 JWT for the IAM exchange, valid for one hour."""
        import jwt

        issued = int(time.time() if now is None else now)
        return jwt.encode(
            {
                "iss": self.service_account_id,
                "aud": JWT_AUDIENCE,
                "iat": issued,
                "exp": issued + _JWT_LIFETIME,
            },
            self._private_key,  # type: ignore[arg-type]
            algorithm="PS256",
            headers={"kid": self.key_id},
        )

    def __repr__(self) -> str:
        return f"<ServiceAccountKey id={self.key_id!r}>"


class ExchangedIamAuth(Credentials):
    """IAM tokens exchanged from an OAuth token or a service-account key, cached."""

    bearer = True

    def __init__(
        self,
        *,
        iam_url: str,
        refresh_interval: float,
        oauth_token: str | None = None,
        service_account_key: ServiceAccountKey | None = None,
    ) -> None:
        if (oauth_token is None) == (service_account_key is None):
            raise ValueError("give exactly one of oauth_token and service_account_key")
        self.iam_url = iam_url
        self.refresh_interval = refresh_interval
        self._oauth_token = oauth_token
        self._key = service_account_key
        self._state_lock = threading.Lock()
        self._header: str | None = None
        self._fetched_at = 0.0  # monotonic
        self._expires_at: float | None = None  # epoch seconds
        #: IAM exchanges made so far (tests and diagnostics).
        self.exchanges = 0

    def __repr__(self) -> str:
        source = "oauth" if self._oauth_token is not None else "service-account key"
        return f"<ExchangedIamAuth from {source}>"

    def _current(self) -> str | None:
        with self._state_lock:
            header = self._header
            if header is None:
                return None
            if time.monotonic() - self._fetched_at >= self.refresh_interval:
                return None
            if self._expires_at is not None and time.time() >= self._expires_at - min(
                _EXPIRY_MARGIN, self.refresh_interval
            ):
                return None
            return header

    async def authorization(self, provider: BaseProvider) -> str:
        header = self._current()
        if header is not None:
            return header
        async with provider.loop_lock("yandexgpt-iam"):
            header = self._current()  # another task refreshed while we waited
            if header is None:
                header = await self._exchange(provider)
        return header

    def invalidate(self, header: str) -> bool:
        with self._state_lock:
            if self._header == header:
                self._header = None
        return True

    async def _exchange(self, provider: BaseProvider) -> str:
        if self._key is not None:
            body = {"jwt": self._key.make_jwt()}
            source = "service-account key"
        else:
            body = {"yandexPassportOauthToken": str(self._oauth_token)}
            source = "OAuth token"
        client = provider.http_client()
        with mapped_transport_errors(
            provider.name, what="IAM token exchange failed", tls_hint=TLS_HINT
        ):
            response = await client.post(self.iam_url, json=body)
        if response.status_code != 200:
            error = error_from_response(
                response.status_code,
                response.content,
                provider=provider.name,
                request_id=response.headers.get("x-request-id"),
                headers=response.headers,
                what=f"IAM token exchange with the {source}",
            )
            if isinstance(error, AuthenticationError):
                error.message += f" (the {source} was rejected: create a new one)"
            raise error
        try:
            data = response.json()
            token = data["iamToken"]
            if not isinstance(token, str) or not token:
                raise TypeError("iamToken is not a string")
        except (ValueError, KeyError, TypeError, RecursionError):
            raise ProviderError(
                "IAM token exchange returned no iamToken; check iam_url",
                provider=provider.name,
                status_code=response.status_code,
            ) from None
        header = Secret(f"Bearer {Secret(token, ephemeral=True)}", ephemeral=True)
        with self._state_lock:
            self._header = header
            self._fetched_at = time.monotonic()
            self._expires_at = parse_expires_at(data.get("expiresAt"))
            self.exchanges += 1
        provider.logger.debug("%s: obtained an IAM token from the %s", provider.name, source)
        return header
