"""Configuration: build a :class:`~orchestrator.Router` from a TOML file, a dict, or the
environment.

A file (read with the standard library's ``tomllib``) looks like this::

    strategy = "first-available"   # any registered strategy
    deadline = 30                  # seconds for a whole request, across retries and fallbacks

    [breaker]                      # circuit-breaker thresholds (BreakerConfig)
    cooldown = 15

    [providers.gigachat]           # the instance name; `type` defaults to it
    credentials = "${GIGACHAT_CREDENTIALS}"
    priority = 0                   # router-side: weight, priority

    [providers.yandex]
    type = "yandexgpt"             # the registered provider name
    api_key = "${YC_API_KEY}"
    folder_id = "${YC_FOLDER_ID}"

Every ``[providers.NAME]`` table holds the provider's own settings (its ``config_class``
fields) plus the router-side options of :class:`ProviderRouting`. ``${VAR}`` (or
``${VAR:-default}``) anywhere in a string is replaced by that environment variable; a secret
field (``api_key``, ``credentials``, ...) in a *file* must be such a reference, so keys never
live in files. Every error is a :class:`~orchestrator.errors.ConfigurationError` naming the
key (``providers.yandex.timeout``) and, for files, its line.

Adding a router option is one field: a field of :class:`RouterSettings` is passed to
``Router(...)`` by name, a field of :class:`ProviderRouting` to ``router.add_provider(...)``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from orchestrator import DOCS_URL
from orchestrator.config import ProviderConfig, Secret, _to_secret
from orchestrator.errors import ConfigurationError, NoProvidersError
from orchestrator.health import BreakerConfig

if TYPE_CHECKING:
    from orchestrator.plugins import PluginRegistry
    from orchestrator.router import Router
    from orchestrator.state import SharedState

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "BreakerSettings",
    "LimitsSettings",
    "PriceSettings",
    "ProviderRouting",
    "RouterSettings",
    "load_settings",
    "main",
    "reference_markdown",
    "router_from_config",
    "router_from_env",
]

#: The file ``orchestrator`` commands read when ``--config`` is not given.
DEFAULT_CONFIG_FILE = "orchestrator.toml"

_STRICT = ConfigDict(extra="forbid", hide_input_in_errors=True)

_BREAKER_DOCS = {
    "consecutive_failures": "Failures in a row that open the breaker.",
    "failure_rate": "Failure share over the window that opens the breaker (0..1].",
    "min_samples": "Calls needed in the window before `failure_rate` applies.",
    "window": "Seconds of the sliding window for the failure rate.",
    "cooldown": "Seconds an open breaker waits before a half-open probe (doubles per re-trip).",
    "max_cooldown": "Longest cooldown in seconds.",
    "half_open_probes": "Successful probes that close a half-open breaker.",
}


def _breaker_model() -> type[BaseModel]:
    """A pydantic mirror of :class:`BreakerConfig`, so new thresholds appear here by
    themselves."""
    hints = typing.get_type_hints(BreakerConfig)
    fields: dict[str, Any] = {
        f.name: (hints[f.name], Field(f.default, description=_BREAKER_DOCS.get(f.name, "")))
        for f in dataclasses.fields(BreakerConfig)
    }
    return create_model(
        "BreakerSettings",
        __config__=_STRICT,
        __doc__="Circuit-breaker thresholds (`[breaker]`).",
        **fields,
    )


BreakerSettings = _breaker_model()


class LimitsSettings(BaseModel):
    """Caps on one provider's traffic (``[providers.NAME.limits]``); unset = unlimited."""

    model_config = _STRICT

    max_in_flight: int | None = Field(default=None, ge=1, description="Requests in flight at once.")
    requests_per_minute: int | None = Field(
        default=None, ge=1, description="Requests per rolling minute."
    )
    tokens_per_minute: int | None = Field(
        default=None, ge=1, description="Tokens (prompt + completion) per rolling minute."
    )


class PriceSettings(BaseModel):
    """Roubles per 1,000 tokens (``[providers.NAME.prices.MODEL]``; model ``"*"`` = any)."""

    model_config = _STRICT

    prompt: Decimal = Field(ge=0, description="Roubles per 1,000 prompt tokens.")
    completion: Decimal = Field(ge=0, description="Roubles per 1,000 completion tokens.")


class ProviderRouting(BaseModel):
    """Router-side options of one provider (keys of ``[providers.NAME]`` beside its own
    settings); each field is passed to ``router.add_provider()`` by name (or alias)."""

    model_config = _STRICT

    type: str | None = Field(
        default=None,
        description="Registered provider name (`orchestrator providers` lists them); "
        "defaults to the table's name.",
    )
    weight: float = Field(
        default=1.0,
        ge=0,
        description="Share of traffic for the `weighted` and `random` strategies.",
    )
    priority: int | None = Field(
        default=None,
        description="Order for `first-available` (lower first; default: file order).",
    )
    attempt_timeout: float | None = Field(
        default=None,
        gt=0,
        serialization_alias="timeout",
        description="Seconds for one non-streaming attempt (streams are bounded by "
        "`first_chunk_timeout` and the deadline; the provider's own `timeout` bounds each "
        "HTTP request).",
    )
    first_chunk_timeout: float | None = Field(
        default=None,
        gt=0,
        description="Seconds to wait for a stream's first text before failing over "
        "(overrides the router's).",
    )
    limits: LimitsSettings | None = Field(
        default=None, description="Table `[providers.NAME.limits]`: caps on traffic."
    )
    prices: dict[str, PriceSettings] | None = Field(
        default=None,
        description="Tables `[providers.NAME.prices.MODEL]`: override the provider's prices.",
    )
    budget: Decimal | None = Field(
        default=None,
        ge=0,
        description="Roubles this provider may spend; then it gets no traffic.",
    )

    def add_provider_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``Router.add_provider``."""
        from orchestrator.limits import ProviderLimits
        from orchestrator.pricing import Price

        kwargs = self.model_dump(exclude={"type", "limits", "prices"}, by_alias=True)
        if self.limits is not None:
            kwargs["limits"] = ProviderLimits(**self.limits.model_dump())
        if self.prices is not None:
            kwargs["prices"] = {
                model: Price(price.prompt, price.completion) for model, price in self.prices.items()
            }
        return kwargs


class RouterSettings(BaseModel):
    """Top-level keys; each field except ``breaker``, ``providers`` and ``gateway`` is passed to
    ``Router(...)`` by name."""

    model_config = _STRICT

    strategy: str = Field(
        default="round-robin",
        description="Routing strategy: `round-robin`, `weighted`, `random`, "
        "`first-available`, `best-available`, `least-busy`, `lowest-cost`, `latency`, or "
        "one a plugin registers.",
    )
    deadline: float | None = Field(
        default=None,
        gt=0,
        description="Seconds allowed for a whole request across retries and "
        "fallbacks (none by default).",
    )
    first_chunk_timeout: float | None = Field(
        default=None,
        gt=0,
        description="Seconds to wait for a stream's first text before failing over.",
    )
    hedge_after: float | Literal["p95"] | None = Field(
        default=None,
        description='Seconds (or "p95" of the provider\'s latency) after which a slow '
        "request is also sent to the next provider; the first answer wins.",
    )
    on_limit: Literal["failover", "wait"] = Field(
        default="failover",
        description="When a provider is at its limits: try the next one, or wait for room.",
    )
    budget: Decimal | None = Field(
        default=None, ge=0, description="Roubles the router may spend in total."
    )
    breaker: BreakerSettings = Field(  # type: ignore[valid-type]
        default_factory=BreakerSettings,
        description="Circuit-breaker thresholds (table `[breaker]`).",
    )
    providers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="One table `[providers.NAME]` per provider instance.",
    )
    state: dict[str, Any] | None = Field(
        default=None,
        description='Shared state (table `[state]`): `backend = "redis"` (from '
        "`orchestrator-redis`) and its options (`url`, `prefix`, `timeout`, "
        "`retry_interval`); see deploying.md. Unset: state stays in this process.",
    )
    gateway: dict[str, Any] | None = Field(
        default=None,
        description="Table `[gateway]`: settings of `orchestrator serve` (read by "
        "orchestrator-gateway; the router ignores it).",
    )

    @field_validator("hedge_after")
    @classmethod
    def _hedge_after(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, float) and value < 0:
            raise ValueError('must be 0 or more seconds, or "p95"')
        return value


_ROUTING_KEYS = frozenset(ProviderRouting.model_fields)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# -- locating keys in TOML text ---------------------------------------------------------

_KEY_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART = re.compile(_KEY_PART)


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _PART.findall(dotted))


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each table and key path of a TOML document to its 1-based line number."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_multiline = False
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline:
            in_multiline = line.count('"""') % 2 == 0 and line.count("'''") % 2 == 0
            continue
        header = _HEADER.match(line)
        if header:
            table = _split_key(header.group(1))
            lines.setdefault(table, number)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            path = table + _split_key(assign.group(1))
            lines.setdefault(path, number)
            rest = line[assign.end() :]
            in_multiline = rest.count('"""') % 2 == 1 or rest.count("'''") % 2 == 1
    return lines


class _Source:
    """Where settings came from, to point errors at a key and line."""

    def __init__(self, origin: str | None = None, text: str | None = None) -> None:
        self.origin = origin
        self.lines = _key_lines(text) if text is not None else {}

    def where(self, loc: tuple[str | int, ...]) -> str:
        key = ".".join(str(part) for part in loc) or "(top level)"
        path = tuple(str(part) for part in loc)
        while path and path not in self.lines:
            path = path[:-1]
        if self.origin is None:
            return key
        line = f":{self.lines[path]}" if path else ""
        return f"{key} ({self.origin}{line})"

    def error(self, loc: tuple[str | int, ...], problem: str) -> ConfigurationError:
        return ConfigurationError(f"{self.where(loc)}: {problem}")


def _validation_error(
    source: _Source, exc: ValidationError, prefix: tuple[str | int, ...] = ()
) -> ConfigurationError:
    problems = []
    for err in exc.errors():
        loc = prefix + tuple(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = f"unknown key (check its spelling; see {DOCS_URL}/configuration.md)"
        problems.append(f"{source.where(loc)}: {message}")
    if len(problems) == 1:
        return ConfigurationError(problems[0])
    return ConfigurationError("Invalid configuration:\n  " + "\n  ".join(problems))


# -- ${ENV} references ---------------------------------------------------------------------


def _expand(value: Any, loc: tuple[str | int, ...], source: _Source, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            var, default = match.group(1), match.group(2)
            found = env.get(var)
            if found is None or (found == "" and default is not None):
                if default is not None:
                    return default
                raise source.error(
                    loc,
                    f"environment variable {var} is not set; export {var}=... "
                    f"(or give a default: ${{{var}:-value}})",
                )
            return found

        return _ENV_REF.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: _expand(v, (*loc, k), source, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*loc, i), source, env) for i, v in enumerate(value)]
    return value


# -- loading --------------------------------------------------------------------------------


def _read(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[dict[str, Any], _Source]:
    if isinstance(source, Mapping):
        return dict(source), _Source()
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"Configuration file {str(path)!r} not found; create it (see "
            f"{DOCS_URL}/configuration.md) or pass another path"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"Cannot read configuration file {str(path)!r}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: invalid TOML: {exc}") from None
    return data, _Source(str(path), text)


def load_settings(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    registry: PluginRegistry | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[RouterSettings, dict[str, tuple[ProviderConfig, ProviderRouting, type[Any]]]]:
    """Validate ``source`` without building anything: the router settings, and for each
    provider instance its config, its router-side options and its provider class."""
    from orchestrator.plugins import default_registry

    registry = registry or default_registry()
    env = os.environ if env is None else env
    raw, where = _read(source)
    try:
        settings = RouterSettings.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(where, exc) from None
    try:
        BreakerConfig(**settings.breaker.model_dump())  # type: ignore[attr-defined]
    except ValueError as exc:
        raise where.error(("breaker",), str(exc)) from None
    try:
        registry.strategy_class(settings.strategy)
    except ConfigurationError as exc:
        raise where.error(("strategy",), str(exc)) from None
    if settings.state is not None:  # ${VAR} references (e.g. a Redis URL with a password)
        settings.state = _expand(settings.state, ("state",), where, env)
    providers: dict[str, tuple[ProviderConfig, ProviderRouting, type[Any]]] = {}
    tables_by_name: dict[str, str] = {}  # provider name -> the table that gave it
    for name, table in settings.providers.items():
        loc: tuple[str | int, ...] = ("providers", name)
        if not isinstance(table, Mapping):
            raise where.error(loc, "must be a table of provider settings")
        table = _expand(table, loc, where, env)
        routing_values = {k: v for k, v in table.items() if k in _ROUTING_KEYS}
        try:
            routing = ProviderRouting.model_validate(routing_values)
        except ValidationError as exc:
            raise _validation_error(where, exc, loc) from None
        kind = routing.type or name
        try:
            info = registry.provider_info(kind)
        except ConfigurationError as exc:
            raise where.error((*loc, "type") if routing.type else loc, str(exc)) from None
        values = {k: v for k, v in table.items() if k not in _ROUTING_KEYS}
        values.setdefault("name", name)
        config_class: type[ProviderConfig] = info.cls.config_class
        try:
            config = config_class.model_validate(values)
        except ValidationError as exc:
            raise _validation_error(where, exc, loc) from None
        if where.origin is not None:
            written = raw["providers"][name]
            for key in values:
                literal = written.get(key)
                if isinstance(getattr(config, key, None), Secret) and not (
                    isinstance(literal, str) and _ENV_REF.search(literal)
                ):
                    raise where.error(
                        (*loc, key),
                        "secrets are never stored in the file: write "
                        f'{key} = "${{YOUR_ENV_VAR}}" and export that variable',
                    )
        other = tables_by_name.setdefault(config.name, name)
        if other != name:
            raise where.error(
                (*loc, "name"),
                f"name {config.name!r} is already used by [providers.{other}]; each provider "
                "needs a unique name (remove `name` to use the table's)",
            )
        providers[name] = (config, routing, info.cls)
    return settings, providers


def _router_kwargs(settings: RouterSettings) -> dict[str, Any]:
    kwargs = settings.model_dump(exclude={"breaker", "providers", "state", "gateway"})
    kwargs["breaker"] = BreakerConfig(**settings.breaker.model_dump())  # type: ignore[attr-defined]
    if settings.state is not None:
        kwargs["state"] = _shared_state(settings.state)
    return kwargs


#: Entry-point group of shared-state backends (``orchestrator-redis`` registers ``redis``).
STATE_GROUP = "orchestrator.state"


def _shared_state(table: Mapping[str, Any]) -> SharedState:
    """The backend a ``[state]`` table names, built with the table's other keys."""
    import importlib.metadata

    options = dict(table)
    backend = options.pop("backend", None)
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group=STATE_GROUP)}
    if not isinstance(backend, str) or backend not in found:
        have = ", ".join(sorted(found)) or "none installed"
        raise ConfigurationError(
            f"[state] backend = {backend!r} is not an installed state backend (have: {have}); "
            'install orchestrator-redis and set backend = "redis"'
        )
    cls = found[backend].load()
    try:
        state: SharedState = cls(**options)
    except TypeError as exc:  # an unknown or missing option (names only, never values)
        raise ConfigurationError(f"[state] backend {backend!r}: {exc}") from None
    return state


def router_from_config(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    registry: PluginRegistry | None = None,
) -> Router:
    """Build a router from a TOML file path or a mapping of the same shape."""
    from orchestrator.plugins import default_registry
    from orchestrator.router import Router

    registry = registry or default_registry()
    settings, providers = load_settings(source, registry=registry)
    if not providers:
        raise ConfigurationError(
            "No providers configured: add a [providers.NAME] table (see "
            f"{DOCS_URL}/configuration.md)"
        )
    router = Router(registry=registry, **_router_kwargs(settings))
    for config, routing, cls in providers.values():
        router.add_provider(cls(config), **routing.add_provider_kwargs())
    return router


def router_from_env(*, registry: PluginRegistry | None = None, **options: Any) -> Router:
    """Build a router from every installed provider whose credentials are in the
    environment (each provider class says how, through ``config_from_env``).

    ``options`` go to ``Router(...)`` (``strategy``, ``deadline``, ``breaker``, ...).
    """
    from orchestrator.plugins import default_registry
    from orchestrator.router import Router

    registry = registry or default_registry()
    registry.load_provider_classes()  # each class is asked; one that fails to import is left out
    router = Router(registry=registry, **options)
    for name, info in sorted(registry.providers.items()):
        config = info.cls.config_from_env(name)
        if config is not None:
            router.add_provider(info.cls(config))
    if not router.providers:
        installed = ", ".join(sorted(registry.providers)) or "none"
        raise NoProvidersError(
            "No provider has credentials in the environment (installed providers: "
            f"{installed}). Set GIGACHAT_CREDENTIALS for GigaChat, or YC_API_KEY and "
            "YC_FOLDER_ID for YandexGPT, or write an orchestrator.toml (see "
            f"{DOCS_URL}/configuration.md)"
        )
    return router


# -- the reference (docs/configuration.md is generated from this) ---------------------


def _type_name(annotation: Any) -> str:
    """A short, TOML-minded spelling of a field's type."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        inner = _type_name(args[0])
        secret = any(getattr(m, "func", None) is _to_secret for m in args[1:])
        return f"{inner} (secret: use ${{ENV_VAR}})" if secret else inner
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in args if arg is not type(None))
    if origin is typing.Literal:
        return " or ".join(f'"{arg}"' for arg in args)
    if origin in (list, tuple):
        return f"array of {_type_name(args[0])}" if args else "array"
    if origin is dict:
        return "table"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )


def _default_text(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


def _field_rows(
    model: type[BaseModel], skip: frozenset[str] = frozenset(), base: type[BaseModel] | None = None
) -> Iterator[str]:
    yield "| key | type | default | meaning |"
    yield "| --- | --- | --- | --- |"
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        if info.is_required():
            default = "required"
        elif info.default_factory is not None:
            default = "—"
        else:
            default = _default_text(info.default)
        description = info.description
        if not description and base is not None and name in base.model_fields:
            description = base.model_fields[name].description
        description = (description or "").replace("|", "\\|").replace("\n", " ")
        type_text = _type_name(
            info.annotation
            if not info.metadata
            else typing.Annotated[(info.annotation, *info.metadata)]
        )
        yield f"| `{name}` | {type_text.replace('|', chr(92) + '|')} | {default} | {description} |"


def reference_markdown(registry: PluginRegistry | None = None) -> str:
    """The configuration reference, generated from the pydantic models."""
    from orchestrator.plugins import default_registry

    registry = registry or default_registry()
    registry.load_provider_classes()  # every class's settings are listed
    out = ["### Top level", "", *_field_rows(RouterSettings), ""]
    out += ["### `[breaker]`", "", *_field_rows(BreakerSettings), ""]
    out += [
        "### `[providers.NAME]`: router-side options",
        "",
        *_field_rows(ProviderRouting),
        "",
        "### `[providers.NAME.limits]`",
        "",
        *_field_rows(LimitsSettings),
        "",
        "### `[providers.NAME.prices.MODEL]`",
        "",
        'Model `"*"` applies to models without their own entry.',
        "",
        *_field_rows(PriceSettings),
        "",
        "### `[providers.NAME]`: settings every provider has",
        "",
        "`name` is the table's name.",
        "",
        *_field_rows(ProviderConfig, frozenset({"name"})),
        "",
    ]
    base = frozenset(ProviderConfig.model_fields)
    for key, info in sorted(registry.providers.items()):
        config_class: type[ProviderConfig] = info.cls.config_class
        extra = [name for name in config_class.model_fields if name not in base]
        overridden = [
            name
            for name in base
            if name != "name"
            and config_class.model_fields[name].default != ProviderConfig.model_fields[name].default
        ]
        dist = f" (from `{info.distribution}`)" if info.distribution else ""
        out += [f'### `type = "{key}"`{dist}', ""]
        if not extra and not overridden:
            out += ["No settings beyond the common ones.", ""]
            continue
        shown = frozenset(base) - frozenset(overridden)
        out += [*_field_rows(config_class, shown, ProviderConfig), ""]
    return "\n".join(out).rstrip() + "\n"


BEGIN_MARK = "<!-- BEGIN REFERENCE (generated: python -m orchestrator.settings PAGE.md) -->"
END_MARK = "<!-- END GENERATED REFERENCE -->"


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated reference between the markers of a Markdown page."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m orchestrator.settings PAGE.md", file=sys.stderr)
        return 2
    page = Path(args[0])
    text = page.read_text(encoding="utf-8")
    if BEGIN_MARK not in text or END_MARK not in text:
        print(
            f"{page}: the reference markers are missing:\n{BEGIN_MARK}\n{END_MARK}", file=sys.stderr
        )
        return 1
    head, rest = text.split(BEGIN_MARK, 1)
    tail = rest.split(END_MARK, 1)[1]
    page.write_text(
        f"{head}{BEGIN_MARK}\n\n{reference_markdown()}\n{END_MARK}{tail}", encoding="utf-8"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
