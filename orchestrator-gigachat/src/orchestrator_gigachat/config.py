"""Settings of a GigaChat provider: :class:`GigaChatConfig`.

Every field not given explicitly is read from the environment variable the official
``gigachat`` SDK uses (``GIGACHAT_CREDENTIALS``, ``GIGACHAT_SCOPE``, ...; see
:data:`ENV_VARS`), so an existing GigaChat user's environment works unchanged. Passing a
field explicitly (even ``None``) wins over the environment. A variable whose value is not
valid is reported by its name (``GIGACHAT_SCOPE='BOGUS' is not valid: ...``), and
:func:`from_environment` turns that into a :class:`~orchestrator.errors.ConfigurationError`.
"""

from __future__ import annotations

import os
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestrator.config import ProviderConfig, SecretStr
from orchestrator.errors import ConfigurationError

__all__ = [
    "DEFAULT_AUTH_URL",
    "DEFAULT_BASE_URL",
    "DEFAULT_EMBEDDING_BATCH",
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_MODEL",
    "EMBEDDING_DIMENSIONS",
    "ENV_VARS",
    "SCOPES",
    "GigaChatConfig",
    "Scope",
    "from_environment",
]

DEFAULT_BASE_URL = "https://gigachat.devices.sberbank.ru/api/v1"
DEFAULT_AUTH_URL = "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
DEFAULT_MODEL = "GigaChat-2"
DEFAULT_EMBEDDING_MODEL = "Embeddings"
#: Texts per ``POST /embeddings`` by default: GigaChat documents no limit; 90 is what
#: langchain-community's ``GigaChatEmbeddings`` sent per request (``MAX_BATCH_SIZE_PARTS``).
DEFAULT_EMBEDDING_BATCH = 90
#: Vector sizes of the embedding models whose size is confirmed (counted in recordings).
EMBEDDING_DIMENSIONS: dict[str, int] = {"Embeddings": 1024}

Scope = Literal["GIGACHAT_API_PERS", "GIGACHAT_API_B2B", "GIGACHAT_API_CORP"]
SCOPES: tuple[str, ...] = ("GIGACHAT_API_PERS", "GIGACHAT_API_B2B", "GIGACHAT_API_CORP")

#: Config field -> the environment variable it is read from when not given.
ENV_VARS: dict[str, str] = {
    "api_key": "GIGACHAT_CREDENTIALS",
    "scope": "GIGACHAT_SCOPE",
    "base_url": "GIGACHAT_BASE_URL",
    "auth_url": "GIGACHAT_AUTH_URL",
    "model": "GIGACHAT_MODEL",
    "access_token": "GIGACHAT_ACCESS_TOKEN",
    "user": "GIGACHAT_USER",
    "password": "GIGACHAT_PASSWORD",
    "verify_ssl": "GIGACHAT_VERIFY_SSL_CERTS",
    "ca_bundle_file": "GIGACHAT_CA_BUNDLE_FILE",
    "cert_file": "GIGACHAT_CERT_FILE",
    "key_file": "GIGACHAT_KEY_FILE",
    "key_file_password": "GIGACHAT_KEY_FILE_PASSWORD",
    "timeout": "GIGACHAT_TIMEOUT",
}

#: What a valid value of a variable looks like, for the error that names it.
_EXPECTED: dict[str, str] = {
    "scope": "PERS, B2B or CORP (or GIGACHAT_API_PERS, GIGACHAT_API_B2B, GIGACHAT_API_CORP)",
    "base_url": "an http:// or https:// URL",
    "auth_url": "an http:// or https:// URL",
    "verify_ssl": "true or false",
    "timeout": "seconds, a number above 0 and at most 3600",
}
_SECRET_FIELDS = frozenset({"api_key", "access_token", "password", "key_file_password"})


class GigaChatConfig(ProviderConfig):
    """Settings of :class:`~orchestrator_gigachat.GigaChatProvider`.

    Credentials, in the order they are used: a pre-issued ``access_token``; the
    ``api_key`` (the *authorization key* from the Studio, exchanged for tokens over OAuth);
    ``user``/``password`` (``POST {base_url}/token``, some corporate installs). With an
    access token and a key, the key takes over once the token is rejected.
    """

    name: str = Field(
        "gigachat",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="Unique name of this provider instance inside a router.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="Authorization key (base64 of client_id:client_secret) for OAuth "
        "(env GIGACHAT_CREDENTIALS).",
    )
    base_url: str | None = Field(
        DEFAULT_BASE_URL, description="API base URL (env GIGACHAT_BASE_URL)."
    )
    model: str | None = Field(DEFAULT_MODEL, description="Model name (env GIGACHAT_MODEL).")
    scope: Scope = Field(
        "GIGACHAT_API_PERS",
        description="OAuth scope: GIGACHAT_API_PERS (individuals), GIGACHAT_API_B2B "
        "(prepaid business), GIGACHAT_API_CORP (pay-as-you-go business); the short forms "
        "PERS, B2B and CORP are accepted (env GIGACHAT_SCOPE).",
    )
    auth_url: str = Field(DEFAULT_AUTH_URL, description="OAuth URL (env GIGACHAT_AUTH_URL).")
    access_token: SecretStr | None = Field(
        None, description="A pre-issued access token, used as-is (env GIGACHAT_ACCESS_TOKEN)."
    )
    user: str | None = Field(None, description="User for password auth (env GIGACHAT_USER).")
    password: SecretStr | None = Field(
        None, description="Password for password auth (env GIGACHAT_PASSWORD)."
    )
    ca_bundle_file: str | None = Field(
        None,
        description="PEM file of extra CAs to trust, e.g. the Russian Trusted Root CA "
        "(env GIGACHAT_CA_BUNDLE_FILE).",
    )
    cert_file: str | None = Field(
        None, description="Client certificate for mTLS (env GIGACHAT_CERT_FILE)."
    )
    key_file: str | None = Field(
        None, description="Client private key for mTLS (env GIGACHAT_KEY_FILE)."
    )
    key_file_password: SecretStr | None = Field(
        None, description="Password of key_file (env GIGACHAT_KEY_FILE_PASSWORD)."
    )
    session_id: str | None = Field(
        None,
        max_length=256,
        description="Sent as X-Session-ID on every call: a stable value lets GigaChat "
        "cache the prompt prefix (precached_prompt_tokens).",
    )
    repetition_penalty: float | None = Field(
        None, gt=0, description="GigaChat repetition_penalty (> 0, 1.0 is neutral)."
    )
    update_interval: float | None = Field(
        None, ge=0, description="Streaming only: minimum seconds between chunks."
    )
    structured_output: Literal["native", "function"] = Field(
        "native",
        description="How response_format is sent: 'native' (GigaChat's response_format "
        "field, confirmed on some hosts only) or 'function' (a forced call of a function "
        "whose parameters are the schema; works wherever function calling does).",
    )
    embedding_model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        min_length=1,
        description="Model of embed(): Embeddings (1024 numbers), Embeddings-2, EmbeddingsGigaR...",
    )
    embedding_dimension: int | None = Field(
        None,
        ge=1,
        description="Numbers per vector of embedding_model; known for Embeddings (1024), "
        "required for the others.",
    )
    embedding_max_batch: int = Field(
        DEFAULT_EMBEDDING_BATCH,
        ge=1,
        le=10_000,
        description="Texts per POST /embeddings (the router splits larger batches).",
    )
    token_refresh_margin: float = Field(
        60.0,
        ge=0,
        le=1200,
        description="Refresh the access token when fewer seconds than this remain.",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _from_environment(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        # Only fields absent from the input: explicit values (even None) win, and on
        # assignment (every field present) nothing is re-read.
        missing: dict[str, str] = {}
        if isinstance(data, dict):
            missing = {
                field: os.environ[var]
                for field, var in ENV_VARS.items()
                if field not in data and os.environ.get(var)
            }
            if missing:
                data = {**data, **missing}
        try:
            return handler(data)
        except ValidationError as exc:
            for error in exc.errors():
                field = error["loc"][0] if error["loc"] else None
                if isinstance(field, str) and field in missing:
                    raise ValueError(_env_problem(field, missing[field], error["msg"])) from None
            raise

    @field_validator("scope", mode="before")
    @classmethod
    def _full_scope(cls, value: Any) -> Any:
        if isinstance(value, str):
            short = value.strip().upper()
            if short in ("PERS", "B2B", "CORP"):
                return f"GIGACHAT_API_{short}"
            return short
        return value

    @field_validator("base_url", "auth_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        if value is not None:
            value = value.rstrip("/")
            try:
                parts = urlsplit(value)
                parts.port  # noqa: B018  (raises ValueError for a bad port)
            except ValueError as exc:
                raise ValueError(f"must be an http:// or https:// URL ({exc})") from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL")
        return value


def _env_problem(field: str, value: str, problem: str) -> str:
    var = ENV_VARS[field]
    shown = var if field in _SECRET_FIELDS else f"{var}={value!r}"
    problem = problem.removeprefix("Value error, ")
    expected = _EXPECTED.get(field)
    fix = f"set it to {expected}" if expected else "correct it"
    return f"{shown} is not valid ({problem}); {fix}, or unset {var}"


def from_environment(name: str) -> GigaChatConfig:
    """A config read from the ``GIGACHAT_*`` variables.

    Raises :class:`ConfigurationError` naming the variable whose value is not valid.
    """
    try:
        return GigaChatConfig.model_validate({"name": name})
    except ValidationError as exc:
        problems = [str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()]
        raise ConfigurationError("; ".join(problems)) from None
