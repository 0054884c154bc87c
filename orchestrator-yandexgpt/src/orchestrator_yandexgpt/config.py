"""Settings of the YandexGPT provider: :class:`YandexGPTConfig` and the environment it reads.

One credential is used per provider, chosen by ``auth`` or, when ``auth`` is unset, by the
first credential field that is set in this order: ``api_key``, ``iam_token``, ``oauth_token``,
``service_account_key`` / ``service_account_key_file``. Unset fields are taken from the
environment variables Yandex's own SDK reads (see :data:`ENV_VARS`).

The one exception is the API host: Yandex's SDKs read ``YC_API_ENDPOINT`` as the host of
their *gRPC endpoint discovery* (default ``api.cloud.yandex.net:443``), which is not the REST
host this provider calls (``llm.api.cloud.yandex.net``). Sending REST requests to that value
would be wrong, so ``YC_API_ENDPOINT`` is not read; another REST base URL comes from
``base_url=`` or our own ``YANDEXGPT_BASE_URL``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from orchestrator.config import ProviderConfig, SecretStr
from orchestrator.errors import ConfigurationError

__all__ = [
    "BASE_URL_ENV",
    "CREDENTIAL_ENV_VARS",
    "DEFAULT_BASE_URL",
    "DEFAULT_IAM_URL",
    "DEFAULT_MODEL",
    "DEFAULT_OPERATION_URL",
    "ENV_VARS",
    "AuthMode",
    "MissingFolderError",
    "ResolvedSettings",
    "YandexGPTConfig",
    "base_url_from_env",
    "resolve_settings",
]

DEFAULT_BASE_URL = "https://llm.api.cloud.yandex.net"
DEFAULT_OPERATION_URL = "https://operation.api.cloud.yandex.net"
DEFAULT_IAM_URL = "https://iam.api.cloud.yandex.net/iam/v1/tokens"
DEFAULT_MODEL = "yandexgpt-lite"

AuthMode = Literal["api_key", "iam_token", "oauth_token", "service_account_key"]

#: Environment variables read for settings left unset in the config.
ENV_VARS: Mapping[str, str] = {
    "YC_API_KEY": "service-account API key (sent as `Authorization: Api-Key ...`)",
    "YC_IAM_TOKEN": "IAM token (sent as `Authorization: Bearer ...`)",
    "YC_OAUTH_TOKEN": "Yandex Passport OAuth token, exchanged for IAM tokens hourly",
    "YC_TOKEN": "a token: `t1.`-prefixed means IAM token, anything else an OAuth token",
    "YC_SERVICE_ACCOUNT_KEY_FILE": "path of a service-account authorized key (JSON)",
    "YC_FOLDER_ID": "the Yandex Cloud folder id (b1g...)",
    "YANDEXGPT_BASE_URL": "another REST base URL (default https://llm.api.cloud.yandex.net); "
    "`YC_API_ENDPOINT` is not read: Yandex's SDKs use it for their gRPC discovery host",
    "YANDEXGPT_AUTH": "which credential to use: api_key, iam_token, oauth_token, "
    "service_account_key",
}


#: Our own variable for another REST base URL (``YC_API_ENDPOINT`` means something else).
BASE_URL_ENV = "YANDEXGPT_BASE_URL"

_FOLDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _url_problem(value: str) -> str | None:
    """Why ``value`` is not an http(s) URL with a host, or None when it is one."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    return None


def base_url_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """``YANDEXGPT_BASE_URL`` without its trailing slash, or None when unset.

    Raises :class:`ConfigurationError` naming the variable when it is not an http(s) URL.
    """
    env = os.environ if environ is None else environ
    value = env.get(BASE_URL_ENV, "").strip()
    if not value:
        return None
    problem = _url_problem(value)
    if problem is not None:
        raise ConfigurationError(
            f"{BASE_URL_ENV}={value!r} {problem}; set it to the REST API's base URL "
            f"(e.g. {DEFAULT_BASE_URL}) or unset it"
        )
    return value.rstrip("/")


#: The variables that hold a credential (any of them makes the environment "configured").
CREDENTIAL_ENV_VARS = (
    "YC_API_KEY",
    "YC_IAM_TOKEN",
    "YC_OAUTH_TOKEN",
    "YC_TOKEN",
    "YC_SERVICE_ACCOUNT_KEY_FILE",
)


class YandexGPTConfig(ProviderConfig):
    """Settings of :class:`~orchestrator_yandexgpt.YandexGPTProvider`.

    ``api_key`` is a service-account API key unless ``auth`` says otherwise.
    """

    model: str | None = Field(
        default=DEFAULT_MODEL,
        description="Short name (yandexgpt-lite, yandexgpt, llama-lite, llama, optionally "
        "with /latest, /rc or /deprecated) or a full gpt:// URI (kept as is).",
    )
    folder_id: str | None = Field(
        default=None, description="Yandex Cloud folder id; YC_FOLDER_ID when unset."
    )
    auth: AuthMode | None = Field(
        default=None,
        description="Which credential to use; inferred from the set credential when unset.",
    )
    iam_token: SecretStr | None = Field(default=None, description="An IAM token (Bearer).")
    oauth_token: SecretStr | None = Field(
        default=None, description="A Yandex Passport OAuth token, exchanged for IAM tokens."
    )
    service_account_key: SecretStr | None = Field(
        default=None, description="A service-account authorized key: the JSON text of the key file."
    )
    service_account_key_file: str | None = Field(
        default=None, description="Path of a service-account authorized key file (JSON)."
    )
    iam_url: str = Field(default=DEFAULT_IAM_URL, description="IAM token exchange endpoint.")
    operation_url: str = Field(
        default=DEFAULT_OPERATION_URL, description="Base URL of the operations API (async calls)."
    )
    iam_refresh_interval: float = Field(
        default=3600.0, gt=0, le=43200, description="Seconds an exchanged IAM token is reused."
    )
    ca_bundle: str | None = Field(
        default=None, description="PEM file of CAs to trust instead of the system ones."
    )
    data_logging: bool = Field(
        default=True,
        description="False sends `x-data-logging-enabled: false` (Yandex keeps no request log).",
    )
    send_folder_header: bool | None = Field(
        default=None,
        description="Send `x-folder-id`; by default only with IAM-token credentials.",
    )
    poll_interval: float = Field(
        default=1.0, gt=0, le=600, description="Seconds between polls of an async operation."
    )
    embedding_doc_model: str = Field(
        default="text-search-doc",
        min_length=1,
        description="Model of embed(kind='document'): a short name (text-search-doc) or a "
        "full emb:// or gpt://.../text-embeddings/... URI (a fine-tune).",
    )
    embedding_query_model: str = Field(
        default="text-search-query",
        min_length=1,
        description="Model of embed(kind='query'); pairs with embedding_doc_model.",
    )
    embedding_dimension: int = Field(
        default=256,
        ge=1,
        le=65536,
        description="Numbers per vector of the embedding models (256 for text-search-*).",
    )

    @field_validator("base_url", "iam_url", "operation_url")
    @classmethod
    def _http_url(cls, value: Any) -> Any:
        if isinstance(value, str):
            problem = _url_problem(value)
            if problem is not None:
                raise ValueError(problem)
            return value.rstrip("/")
        return value


class MissingFolderError(ConfigurationError):
    """A credential was found but no folder id: the one incomplete setting that
    ``config_from_env`` reports as a warning instead of failing (the environment may be
    meant for another provider)."""


class ResolvedSettings:
    """The credential and folder a provider uses after reading the environment."""

    __slots__ = ("auth", "credential", "folder_id", "key_json")

    def __init__(
        self, auth: AuthMode, credential: str, folder_id: str, key_json: str | None = None
    ) -> None:
        self.auth = auth
        self.credential = credential
        self.folder_id = folder_id
        self.key_json = key_json

    def __repr__(self) -> str:
        return f"<ResolvedSettings auth={self.auth} folder_id={self.folder_id!r}>"


_HOW_TO_SET = (
    "set api_key= (a service-account API key) or YC_API_KEY; or iam_token= / YC_IAM_TOKEN; "
    "or oauth_token= / YC_OAUTH_TOKEN; or service_account_key_file= / "
    "YC_SERVICE_ACCOUNT_KEY_FILE"
)


def _folder_from_uri(model: str | None) -> str | None:
    if model and model.startswith("gpt://"):
        folder = model[len("gpt://") :].split("/", 1)[0]
        return folder or None
    return None


def resolve_settings(
    config: YandexGPTConfig, environ: Mapping[str, str] | None = None
) -> ResolvedSettings:
    """Pick the credential and folder from ``config``, then the environment.

    Raises :class:`ConfigurationError` naming what to set when either is missing.
    """
    env = os.environ if environ is None else environ
    from orchestrator.config import Secret  # registers env secrets for redaction

    def env_secret(name: str) -> str | None:
        value = env.get(name, "").strip()
        return Secret(value) if value else None

    candidates: dict[AuthMode, str | None] = {
        "api_key": config.api_key,
        "iam_token": config.iam_token,
        "oauth_token": config.oauth_token,
        "service_account_key": config.service_account_key,
    }
    key_file = config.service_account_key_file
    if not any(candidates.values()) and not key_file:
        candidates["api_key"] = env_secret("YC_API_KEY")
        candidates["iam_token"] = env_secret("YC_IAM_TOKEN")
        candidates["oauth_token"] = env_secret("YC_OAUTH_TOKEN")
        token = env_secret("YC_TOKEN")
        if token and not candidates["iam_token"] and token.startswith("t1."):
            candidates["iam_token"] = token
        elif token and not candidates["oauth_token"]:
            candidates["oauth_token"] = token
        key_file = env.get("YC_SERVICE_ACCOUNT_KEY_FILE", "").strip() or None

    mode = config.auth
    if mode is None:
        env_mode = env.get("YANDEXGPT_AUTH", "").strip()
        if env_mode:
            if env_mode not in candidates:
                raise ConfigurationError(
                    f"YANDEXGPT_AUTH={env_mode!r} is not a credential type; use one of "
                    "api_key, iam_token, oauth_token, service_account_key"
                )
            mode = env_mode
    if mode is None:
        for name, value in candidates.items():
            if value:
                mode = name
                break
        else:
            mode = "service_account_key" if key_file else None
    if mode is None:
        raise ConfigurationError(
            f"YandexGPT provider {config.name!r} has no credential: {_HOW_TO_SET}"
        )

    key_json: str | None = None
    if mode == "service_account_key":
        key_json = candidates["service_account_key"]
        if not key_json and key_file:
            try:
                with open(key_file, encoding="utf-8") as handle:
                    key_json = Secret(handle.read())
            except OSError as exc:
                raise ConfigurationError(
                    f"Cannot read the service-account key file {key_file!r} "
                    f"({exc.strerror}); check service_account_key_file / "
                    "YC_SERVICE_ACCOUNT_KEY_FILE"
                ) from None
        credential = key_json
    else:
        credential = candidates[mode]
    if not credential:
        field = "service_account_key_file" if mode == "service_account_key" else mode
        raise ConfigurationError(
            f"YandexGPT provider {config.name!r} uses auth={mode!r} but {field} is not set; "
            f"{_HOW_TO_SET}"
        )

    folder = config.folder_id or env.get("YC_FOLDER_ID", "").strip() or None
    if folder and not _FOLDER_ID.match(folder):
        source = "folder_id" if config.folder_id else "YC_FOLDER_ID"
        raise ConfigurationError(
            f"YandexGPT provider {config.name!r}: {source}={folder!r} is not a folder id; use "
            "the id shown in the Yandex Cloud console (letters and digits, b1g...)"
        )
    folder = folder or _folder_from_uri(config.model)
    if not folder:
        raise MissingFolderError(
            f"YandexGPT provider {config.name!r} has no folder id: set folder_id= or "
            "YC_FOLDER_ID to the id of the folder holding the model (b1g..., shown in the "
            "Yandex Cloud console), or give model= as a full gpt://<folder>/... URI"
        )
    return ResolvedSettings(mode, credential, folder, key_json)
