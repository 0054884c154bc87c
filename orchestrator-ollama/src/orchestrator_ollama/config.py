"""Settings of an Ollama provider: :class:`OllamaConfig`.

``base_url`` is read from ``OLLAMA_HOST`` when not given, parsed as the official ``ollama``
client parses it (:func:`parse_host`: ``0.0.0.0:11434``, ``example.com``, ``https://host``
and ``[::1]:8080`` all work); ``api_key`` from ``OLLAMA_API_KEY`` (ollama.com's cloud). An
explicit value (even ``None``) wins over the environment.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from typing import Any

from pydantic import Field, field_validator, model_validator

from orchestrator.config import ProviderConfig, SecretStr

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_MODEL",
    "EMBEDDING_DIMENSIONS",
    "DEFAULT_PORT",
    "ENV_VARS",
    "OllamaConfig",
    "known_dimension",
    "parse_host",
]

DEFAULT_PORT = 11434
DEFAULT_BASE_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
DEFAULT_MODEL = "llama3.2"
DEFAULT_EMBEDDING_MODEL = "nomic-embed-text"
#: Embedding models whose vector length is known (by name without the ``:latest`` tag).
EMBEDDING_DIMENSIONS: dict[str, int] = {
    "nomic-embed-text": 768,
    "mxbai-embed-large": 1024,
    "all-minilm": 384,
    "bge-m3": 1024,
    "snowflake-arctic-embed": 1024,
}

#: Config field -> the environment variable it is read from when not given.
ENV_VARS: dict[str, str] = {"base_url": "OLLAMA_HOST", "api_key": "OLLAMA_API_KEY"}


def known_dimension(model: str) -> int | None:
    """The vector length of a known embedding model (``nomic-embed-text[:latest]`` ...)."""
    return EMBEDDING_DIMENSIONS.get(model.removesuffix(":latest"))


def parse_host(host: str | None) -> str:
    """``OLLAMA_HOST`` as the official client reads it: scheme ``http`` and port 11434 unless
    given (80/443 for an explicit ``http://``/``https://``), ``127.0.0.1`` for an empty host,
    a path kept without its trailing slash."""
    host, port = host or "", DEFAULT_PORT
    scheme, _, hostport = host.partition("://")
    if not hostport:
        scheme, hostport = "http", host
    elif scheme == "http":
        port = 80
    elif scheme == "https":
        port = 443
    split = urllib.parse.urlsplit(f"{scheme}://{hostport}")
    name = split.hostname or "127.0.0.1"
    port = split.port or port
    try:
        if isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address):
            name = f"[{name}]"
    except ValueError:
        pass
    if path := split.path.strip("/"):
        return f"{scheme}://{name}:{port}/{path}"
    return f"{scheme}://{name}:{port}"


class OllamaConfig(ProviderConfig):
    """Settings of :class:`~orchestrator_ollama.OllamaProvider`."""

    name: str = Field(
        "ollama",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="Unique name of this provider instance inside a router.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="Bearer key, for ollama.com or an authenticating proxy (env OLLAMA_API_KEY).",
    )
    base_url: str | None = Field(
        DEFAULT_BASE_URL,
        description="Ollama server (env OLLAMA_HOST, parsed as the official client does).",
    )
    model: str | None = Field(
        DEFAULT_MODEL, description="Model as `ollama list` shows it (the tag defaults to latest)."
    )
    timeout: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="Seconds allowed for one HTTP request (loading a model can take a while).",
    )
    seed: int | None = Field(
        None, description="options.seed: fixed sampling for repeatable answers."
    )
    num_ctx: int | None = Field(
        None, ge=1, description="options.num_ctx: the context window to load the model with."
    )
    keep_alive: str | float | None = Field(
        None, description="How long the model stays loaded after a call (`5m`, `0` unloads)."
    )
    ca_bundle_file: str | None = Field(
        None, description="PEM file of extra CAs to trust (a server behind a private CA)."
    )
    embedding_model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        min_length=1,
        description="Model of embed() (`ollama pull` it first).",
    )
    embedding_dimension: int | None = Field(
        None,
        ge=1,
        le=65_536,
        description="Numbers per vector: known models have a default (nomic-embed-text 768, "
        "mxbai-embed-large 1024, all-minilm 384, bge-m3 1024, snowflake-arctic-embed 1024); "
        "required for others. Below a known model's own size it is sent as `dimensions`.",
    )
    embedding_max_batch: int = Field(
        256, ge=1, le=100_000, description="Texts per /api/embed request."
    )
    embedding_space: str | None = Field(
        None,
        description="Name of the vector space embed() answers in (default "
        "ollama/<model:tag>): providers with the same name may answer for each other.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        # Only fields absent from the input: explicit values (even None) win. OLLAMA_HOST may be
        # empty (the client's default then), so only a non-empty value counts.
        if isinstance(data, dict):
            missing = {
                field: os.environ[var]
                for field, var in ENV_VARS.items()
                if field not in data and os.environ.get(var)
            }
            if missing:
                data = {**data, **missing}
        return data

    @model_validator(mode="after")
    def _embedding_dimension_known(self) -> OllamaConfig:
        if self.embedding_dimension is None and known_dimension(self.embedding_model) is None:
            raise ValueError(
                f"embedding_model {self.embedding_model!r} needs embedding_dimension (the "
                "length of its vectors: `ollama show <model>` lists it as embedding length)"
            )
        return self

    @field_validator("base_url", mode="before")
    @classmethod
    def _parse_host(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_host(value.strip())
        return value
