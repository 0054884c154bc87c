"""Settings of an OpenAI-compatible provider: :class:`OpenAIConfig`.

Fields not given are read from the environment variables the official ``openai`` SDK reads
(``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``,
``OPENAI_CUSTOM_HEADERS``; see :data:`ENV_VARS`), so an existing environment works unchanged.
An explicit value (even ``None``) wins over the environment.

``preset="yandex"`` fills in what Yandex's OpenAI-compatible endpoint needs (base URL, the
folder as ``OpenAI-Project``, the model as a ``gpt://<folder>/...`` URI).
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import Field, field_serializer, field_validator, model_validator

from orchestrator.config import ProviderConfig, Secret, SecretStr

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_MODEL",
    "EMBEDDING_DIMENSIONS",
    "ENV_VARS",
    "YANDEX_BASE_URL",
    "YANDEX_DEFAULT_MODEL",
    "OpenAIConfig",
    "known_dimension",
    "parse_custom_headers",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
#: Embedding models whose size is known: vector length by model.
EMBEDDING_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
#: Yandex AI Studio's OpenAI-compatible API (the Yandex SDK's default for it).
YANDEX_BASE_URL = "https://llm.api.cloud.yandex.net/v1"
#: The model of the Yandex preset, below ``gpt://<folder>/``.
YANDEX_DEFAULT_MODEL = "yandexgpt/latest"

#: Config field -> the environment variable it is read from when not given (the SDK's names).
ENV_VARS: dict[str, str] = {
    "api_key": "OPENAI_API_KEY",
    "base_url": "OPENAI_BASE_URL",
    "organization": "OPENAI_ORG_ID",
    "project": "OPENAI_PROJECT_ID",
}
#: Extra headers, one ``Name: value`` per line, as the SDK reads them.
CUSTOM_HEADERS_VAR = "OPENAI_CUSTOM_HEADERS"


#: Header names whose values are credentials: kept as secrets (masked, redacted from errors).
_SENSITIVE_HEADER = re.compile(r"authorization|cookie|key|token|secret|password", re.IGNORECASE)


def known_dimension(model: str) -> int | None:
    """The vector length of a known embedding model (OpenAI's; Yandex's ``text-search-*``)."""
    if model in EMBEDDING_DIMENSIONS:
        return EMBEDDING_DIMENSIONS[model]
    if model.startswith("emb://") and "/text-search-" in model:
        return 256
    return None


def parse_custom_headers(text: str) -> dict[str, str]:
    """``OPENAI_CUSTOM_HEADERS`` as the SDK parses it: ``Name: value`` per line."""
    headers: dict[str, str] = {}
    for line in text.split("\n"):
        name, colon, value = line.partition(":")
        if colon and name.strip():
            headers[name.strip()] = value.strip()
    return headers


class OpenAIConfig(ProviderConfig):
    """Settings of :class:`~orchestrator_openai.OpenAIProvider`.

    ``api_key`` is required for ``api.openai.com``; a local server (vLLM, llama.cpp, LM
    Studio, Ollama's ``/v1``) may run without one, and then no ``Authorization`` is sent.
    """

    name: str = Field(
        "openai",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="Unique name of this provider instance inside a router.",
    )
    api_key: SecretStr | None = Field(None, description="API key (env OPENAI_API_KEY).")
    base_url: str | None = Field(
        None,
        description="API base URL ending in /v1 for most servers (env OPENAI_BASE_URL; "
        "default https://api.openai.com/v1).",
    )
    model: str | None = Field(None, description=f"Model name (default {DEFAULT_MODEL}).")
    organization: str | None = Field(
        None, description="Sent as OpenAI-Organization (env OPENAI_ORG_ID)."
    )
    project: str | None = Field(
        None,
        description="Sent as OpenAI-Project (env OPENAI_PROJECT_ID); Yandex: the folder id.",
    )
    auth_scheme: Literal["Bearer", "Api-Key"] = Field(
        "Bearer",
        description="How the key is sent: `Authorization: Bearer <key>` (OpenAI and most "
        "servers) or `Authorization: Api-Key <key>` (Yandex API keys).",
    )
    extra_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers added to every request (env OPENAI_CUSTOM_HEADERS, "
        "`Name: value` per line); values of credential-like names (Authorization, *Key*, "
        "*Token*, Cookie) are kept secret.",
    )
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens",
        description="The request field GenerationParams.max_tokens is sent as: OpenAI's "
        "reasoning models want max_completion_tokens; most compatible servers know max_tokens.",
    )
    stream_usage: bool = Field(
        True,
        description="Send stream_options.include_usage with streams (usage on the last chunk).",
    )
    ca_bundle_file: str | None = Field(
        None, description="PEM file of extra CAs to trust (a server behind a private CA)."
    )
    preset: Literal["yandex"] | None = Field(
        None,
        description="`yandex`: Yandex AI Studio's OpenAI-compatible endpoint (needs folder_id).",
    )
    folder_id: str | None = Field(
        None, description="Yandex preset: the folder id (env YC_FOLDER_ID)."
    )
    strict_schemas: bool | None = Field(
        None,
        description="Send response_format json_schema with strict=true: None (default) when "
        "the schema meets OpenAI's strict rules (every object closed with "
        "additionalProperties false and every property required), else strict=false; the "
        "router validates the answer either way.",
    )
    embedding_model: str | None = Field(
        None,
        description=f"Model of embed() (default {DEFAULT_EMBEDDING_MODEL}; Yandex preset: "
        "emb://<folder>/text-search-doc/latest).",
    )
    embedding_query_model: str | None = Field(
        None,
        description="Model of embed(kind='query') when it differs (Yandex preset: "
        "emb://<folder>/text-search-query/latest); default embedding_model.",
    )
    embedding_dimension: int | None = Field(
        None,
        ge=1,
        le=65_536,
        description="Numbers per vector. Known models have a default (text-embedding-3-small "
        "1536, -large 3072, ada-002 1536, Yandex text-search 256); required for others. "
        "Below a text-embedding-3 model's own size it is sent as `dimensions`.",
    )
    embedding_max_batch: int = Field(
        2048,
        ge=1,
        le=2048,
        description="Texts per /embeddings request (OpenAI allows 2048; Yandex preset: 1).",
    )
    embedding_encoding: Literal["base64", "float"] = Field(
        "base64",
        description="encoding_format of /embeddings: base64 (packed little-endian float32, "
        "fewer bytes than JSON numbers; what the openai SDK asks for) or float (Yandex "
        "preset; servers without base64).",
    )
    embedding_space: str | None = Field(
        None,
        description="Name of the vector space embed() answers in; providers with the same "
        "name may answer for each other. Default: openai/<model> on api.openai.com, "
        "yandexgpt/text-search for Yandex's text-search models, <host:port>/<model> elsewhere.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        # Only fields absent from the input: explicit values (even None) win, and on
        # assignment (every field present) nothing is re-read. Empty variables count as unset.
        if not isinstance(data, dict):
            return data
        missing: dict[str, Any] = {
            field: os.environ[var]
            for field, var in ENV_VARS.items()
            if field not in data and os.environ.get(var)
        }
        if "extra_headers" not in data and os.environ.get(CUSTOM_HEADERS_VAR):
            missing["extra_headers"] = parse_custom_headers(os.environ[CUSTOM_HEADERS_VAR])
        if data.get("preset") == "yandex":
            missing.update(cls._yandex_defaults(data))
        return {**data, **missing} if missing else data

    @staticmethod
    def _yandex_defaults(data: dict[str, Any]) -> dict[str, Any]:
        """What the Yandex preset fills in; its own defaults (and ``YC_*`` variables) win
        over the ``OPENAI_*`` ones, which are meant for OpenAI."""
        folder = data.get("folder_id") or os.environ.get("YC_FOLDER_ID")
        if not folder:
            raise ValueError(
                "preset 'yandex' needs folder_id (or YC_FOLDER_ID): the id of the Yandex Cloud "
                "folder, shown in the console next to the folder name (b1g...)"
            )
        model = data.get("model") or YANDEX_DEFAULT_MODEL
        if "://" not in model:
            model = f"gpt://{folder}/{model}"
        filled: dict[str, Any] = {"folder_id": folder, "model": model}
        if "base_url" not in data:
            filled["base_url"] = YANDEX_BASE_URL
        if "project" not in data:
            filled["project"] = folder
        if "api_key" not in data and os.environ.get("YC_API_KEY"):
            filled["api_key"] = os.environ["YC_API_KEY"]
        if "stream_usage" not in data:
            # Yandex documents only temperature, max_tokens, stream and response_format;
            # its yandexgpt streams carry no usage chunk anyway.
            filled["stream_usage"] = False
        # Embeddings: one string per request, as floats (Yandex's documented support); a
        # model for documents and one for queries, in one vector space.
        if not data.get("embedding_model"):
            filled["embedding_model"] = f"emb://{folder}/text-search-doc/latest"
            if not data.get("embedding_query_model"):
                filled["embedding_query_model"] = f"emb://{folder}/text-search-query/latest"
        if "embedding_max_batch" not in data:
            filled["embedding_max_batch"] = 1
        if "embedding_encoding" not in data:
            filled["embedding_encoding"] = "float"
        return filled

    @model_validator(mode="after")
    def _embedding_dimension_known(self) -> OpenAIConfig:
        model = self.embedding_model
        if self.embedding_dimension is None and model and known_dimension(model) is None:
            raise ValueError(
                f"embedding_model {self.embedding_model!r} needs embedding_dimension (the "
                "length of its vectors; the server's model card says it)"
            )
        return self

    @field_validator("extra_headers")
    @classmethod
    def _secret_header_values(cls, value: dict[str, str]) -> dict[str, str]:
        return {
            name: Secret(text) if _SENSITIVE_HEADER.search(name) else text
            for name, text in value.items()
        }

    @field_serializer("extra_headers")
    def _mask_secret_headers(self, value: dict[str, str]) -> dict[str, str]:
        return {name: "***" if isinstance(text, Secret) else text for name, text in value.items()}

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        if value is not None:
            value = value.rstrip("/")
            if not value.startswith(("http://", "https://")):
                raise ValueError(
                    "must be an http:// or https:// URL (e.g. http://localhost:8000/v1)"
                )
        return value

    @classmethod
    def yandex(
        cls,
        folder_id: str,
        api_key: str | None = None,
        *,
        model: str = YANDEX_DEFAULT_MODEL,
        auth_scheme: Literal["Bearer", "Api-Key"] = "Api-Key",
        **settings: Any,
    ) -> OpenAIConfig:
        """Yandex AI Studio's OpenAI-compatible endpoint: ``base_url``
        ``https://llm.api.cloud.yandex.net/v1``, ``OpenAI-Project: <folder_id>``, model
        ``gpt://<folder_id>/<model>``; the key as ``Api-Key`` (an API key) or ``Bearer`` (an
        API key or an IAM token)."""
        values: dict[str, Any] = {
            "name": "yandex-openai",
            "preset": "yandex",
            "folder_id": folder_id,
            "model": model,
            "auth_scheme": auth_scheme,
            **settings,
        }
        if api_key is not None:
            values["api_key"] = api_key
        return cls.model_validate(values)
