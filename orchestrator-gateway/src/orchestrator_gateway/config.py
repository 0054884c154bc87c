"""The ``[gateway]`` table of ``orchestrator.toml``: where to listen, the virtual models, and
the clients' API keys with their budgets, rate limits and allowed models.

Keys are never written in the file: each key is either ``key_sha256`` (the hex SHA-256 of the
key, made with ``python -m orchestrator_gateway hash-key``) or ``key_env`` (the name of an
environment variable holding the key, hashed when the settings load). Only hashes are kept.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.errors import ConfigurationError

__all__ = [
    "DEFAULT_MODEL",
    "GatewaySettings",
    "KeySettings",
    "VirtualModel",
    "hash_key",
    "load_gateway_settings",
]

_STRICT = ConfigDict(extra="forbid", hide_input_in_errors=True, frozen=True)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
#: The virtual model that is the whole router (its strategy, every provider).
DEFAULT_MODEL = "default"


def hash_key(key: str) -> str:
    """The hex SHA-256 of an API key: what the gateway keeps instead of the key. (Keys are
    long random strings, so a fast hash is the right one, as for GitHub's and LiteLLM's.)"""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class VirtualModel(BaseModel):
    """``[gateway.models.NAME]``: a model name clients ask for, served by a strategy over some
    of the router's providers (sharing their breakers, limits and budgets)."""

    model_config = _STRICT

    providers: tuple[str, ...] = Field(
        min_length=1, description="Provider instance names (tables [providers.NAME])."
    )
    strategy: str | None = Field(
        default=None, description="Routing strategy; the router's when unset."
    )
    description: str = ""


class KeySettings(BaseModel):
    """``[gateway.keys.NAME]``: one client's key and what it may do. ``NAME`` labels the key
    in logs and ``stats`` (the key itself never appears)."""

    model_config = _STRICT

    key_sha256: str | None = Field(default=None, description="Hex SHA-256 of the key.")
    key_env: str | None = Field(
        default=None, description="Environment variable holding the key (hashed on load)."
    )
    models: tuple[str, ...] | None = Field(
        default=None,
        description="Models this key may use (virtual or provider ids); all when unset.",
    )
    budget: Decimal | None = Field(
        default=None, ge=0, description="Roubles this key may spend; then 429 insufficient_quota."
    )
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)

    @field_validator("key_sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not _HEX64.fullmatch(value.lower()):
            raise ValueError(
                "must be 64 hex digits (python -m orchestrator_gateway hash-key prints it)"
            )
        return None if value is None else value.lower()

    @model_validator(mode="after")
    def _one_source(self) -> KeySettings:
        if (self.key_sha256 is None) == (self.key_env is None):
            raise ValueError("give exactly one of key_sha256 and key_env (never the key itself)")
        return self


class GatewaySettings(BaseModel):
    """``[gateway]``: everything ``orchestrator serve`` needs beyond the router."""

    model_config = _STRICT

    host: str = Field(
        default="127.0.0.1",
        description="Address to bind; loopback by default (set 0.0.0.0 behind a proxy).",
    )
    port: int = Field(default=8000, ge=0, le=65535)
    max_request_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest request body accepted (413)."
    )
    body_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a client may take to send its request body (408)."
    )
    max_embedding_inputs: int = Field(default=2048, ge=1)
    shutdown_timeout: float = Field(
        default=30.0, gt=0, description="Seconds in-flight requests get to finish on SIGTERM."
    )
    default_model: str = Field(
        default=DEFAULT_MODEL, description="The virtual model that is the whole router."
    )
    allow_unauthenticated: bool = Field(
        default=False,
        description="Serve without API keys (only sensible on loopback, for development).",
    )
    models: dict[str, VirtualModel] = Field(default_factory=dict)
    keys: dict[str, KeySettings] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, VirtualModel]) -> dict[str, VirtualModel]:
        for name in value:
            if not _NAME.fullmatch(name):
                raise ValueError(f"model name {name!r}: use letters, digits and . _ : / -")
        return value

    @model_validator(mode="after")
    def _keys_or_open(self) -> GatewaySettings:
        if not self.keys and not self.allow_unauthenticated:
            raise ValueError(
                "no API keys: add a [gateway.keys.NAME] table with key_env or key_sha256 "
                "(or allow_unauthenticated = true for development on loopback)"
            )
        if self.default_model in self.models:
            raise ValueError(
                f"default_model {self.default_model!r} is also a [gateway.models] table; "
                "rename one of them"
            )
        return self

    def key_hashes(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """``{hash: key name}`` for every key, reading ``key_env`` variables from ``env``."""
        env = os.environ if env is None else env
        hashes: dict[str, str] = {}
        for name, key in self.keys.items():
            if key.key_env is not None:
                secret = env.get(key.key_env, "")
                if not secret:
                    raise ConfigurationError(
                        f"gateway.keys.{name}.key_env: environment variable {key.key_env} is "
                        f"not set; export {key.key_env}=<the key>"
                    )
                digest = hash_key(secret)
            else:
                assert key.key_sha256 is not None
                digest = key.key_sha256
            other = hashes.setdefault(digest, name)
            if other != name:
                raise ConfigurationError(
                    f"gateway.keys.{name}: the same key as gateway.keys.{other}; "
                    "give each client its own key"
                )
        return hashes


def load_gateway_settings(raw: Mapping[str, Any] | None) -> GatewaySettings:
    """Validate a ``[gateway]`` table; errors name the key (``gateway.keys.alice.budget``)."""
    try:
        return GatewaySettings.model_validate(dict(raw or {}))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in ("gateway", *err["loc"]))
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key (check its spelling; see docs/deploying.md)"
            problems.append(f"{where}: {message}")
        raise ConfigurationError("; ".join(problems)) from None
