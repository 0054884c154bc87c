"""Settings of the YandexGPT provider: :class:`YandexGPTConfig` and the environment it reads.

One credential is used per provider, chosen by ``auth`` or, when ``auth`` is unset, by the
first credential field that is set in this order: ``api_key``, ``iam_token``, ``oauth_token``,
``service_account_key`` / ``service_account_key_file``. Unset fields are taken from the
environment variables Yandex's own SDK reads (see :data:`ENV_VARS`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from orchestrator.config import ProviderConfig, SecretStr
from orchestrator.errors import ConfigurationError

__all__ = [
    "CREDENTIAL_ENV_VARS",
    "DEFAULT_BASE_URL",
    "DEFAULT_IAM_URL",
    "DEFAULT_MODEL",
    "DEFAULT_OPERATION_URL",
    "ENV_VARS",
    "AuthMode",
    "ResolvedSettings",
    "YandexGPTConfig",
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
    "YC_API_ENDPOINT": "another base URL (default https://llm.api.cloud.yandex.net)",
    "YANDEXGPT_AUTH": "which credential to use: api_key, iam_token, oauth_token, "
    "service_account_key",
}


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
    folder = folder or _folder_from_uri(config.model)
    if not folder:
        raise ConfigurationError(
            f"YandexGPT provider {config.name!r} has no folder id: set folder_id= or "
            "YC_FOLDER_ID to the id of the folder holding the model (b1g..., shown in the "
            "Yandex Cloud console), or give model= as a full gpt://<folder>/... URI"
        )
    return ResolvedSettings(mode, credential, folder, key_json)
