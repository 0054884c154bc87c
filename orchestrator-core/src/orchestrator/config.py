"""Provider configuration.

``ProviderConfig`` is the object the custom-provider guide passes to ``BaseProvider``. It
validates its ranges on creation and on assignment, and refuses unknown attributes.
Credentials are :class:`Secret` strings: ``f"Bearer {config.api_key}"`` gives the real key,
while ``repr(config)``, ``config.model_dump()`` and JSON show ``***``.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
)

from orchestrator import _secrets

__all__ = ["ProviderConfig", "Secret", "SecretStr"]


class Secret(str):
    """A ``str`` that is a credential: usable as a string, masked in ``repr``.

    Creating one registers the value for redaction. ``ephemeral=True`` is for values that are
    replaced regularly (access tokens a provider refreshes): the library remembers only the
    most recent ones, so refreshing for months keeps its set of secrets bounded.
    ``get_secret_value()`` returns the plain string, as pydantic's ``SecretStr`` does.
    """

    __slots__ = ()

    def __new__(cls, value: str, *, ephemeral: bool = False) -> Self:
        _secrets.register(value, ephemeral=ephemeral)
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"Secret('{_secrets.MASK}')"

    def get_secret_value(self) -> str:
        """The credential as a plain ``str`` (pydantic ``SecretStr`` compatibility)."""
        return str.__str__(self)


def _to_secret(value: str) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


#: A pydantic field type for credentials: validated as ``str``, kept as :class:`Secret`,
#: serialized as ``***``. Unlike pydantic's ``SecretStr`` the value *is* a ``str``
#: (``f"Bearer {config.api_key}"`` gives the key, as the custom-provider guide writes it);
#: like it, ``config.api_key.get_secret_value()`` gives the plain string.
SecretStr = Annotated[
    str,
    AfterValidator(_to_secret),
    PlainSerializer(lambda _: _secrets.MASK, return_type=str, when_used="always"),
]


class ProviderConfig(BaseModel):
    """Settings of one provider instance.

    Provider packages subclass it to add their own fields (e.g. GigaChat's ``scope``);
    a plain ``ProviderConfig`` given to such a provider is upgraded to its config class.
    """

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        str_strip_whitespace=True,
        hide_input_in_errors=True,  # a rejected value could be a key
    )

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="Unique name of this provider instance inside a router.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="Credential sent to the vendor (never logged or shown)."
    )
    base_url: str | None = Field(
        default=None, description="API base URL; the provider's default when unset."
    )
    model: str | None = Field(
        default=None, description="Model name; the provider's default when unset."
    )
    timeout: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds allowed for one HTTP request."
    )
    max_retries: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Retries after the first attempt on transient errors (0 = one call).",
    )
    verify_ssl: bool = Field(default=True, description="Verify the server's TLS certificate.")
    backoff_base: float = Field(
        default=0.5, ge=0, le=60, description="First backoff step in seconds (doubles each retry)."
    )
    backoff_max: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description="Longest wait between retries; a longer Retry-After fails over instead.",
    )
    http_transport: Literal["httpx", "aiohttp", "auto"] = Field(
        default_factory=lambda: os.environ.get("ORCHESTRATOR_HTTP_TRANSPORT", "httpx"),
        validate_default=True,
        description=(
            "HTTP transport on asyncio: `httpx` (httpx's own), `aiohttp` (needs the "
            "`orchestrator-core[aiohttp]` extra) or `auto` (aiohttp when installed); trio "
            "always uses httpx's. Default: `$ORCHESTRATOR_HTTP_TRANSPORT`, else `httpx`."
        ),
    )

    def upgrade(self, config_class: type[ProviderConfig]) -> ProviderConfig:
        """Re-validate this config as ``config_class`` (a subclass adding fields)."""
        if isinstance(self, config_class):
            return self
        values: dict[str, Any] = {key: getattr(self, key) for key in self.model_fields_set}
        return config_class(**values)
