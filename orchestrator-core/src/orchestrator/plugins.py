"""Plugins: how providers and strategies get into the orchestrator.

For plugin authors
------------------
A plugin is a module with hook implementations, published in a distribution that names it
in the ``orchestrator.providers`` entry-point group::

    # pyproject.toml
    [project.entry-points."orchestrator.providers"]
    myvendor = "orchestrator_myvendor"

    # orchestrator_myvendor/__init__.py
    import orchestrator

    @orchestrator.hookimpl
    def register_providers(register):
        register(MyVendorProvider, name="myvendor", aliases=("mv",))

The entry-point name (``myvendor``) is what the allow and block lists below use; the names
passed to ``register`` are what ``create_provider("myvendor", config)`` and config files use.
The core validates what you register (a ``BaseProvider`` subclass, a unique name).

Discovery is lazy: nothing is imported until a name is first looked up; it runs once per
registry. A plugin that fails to import or register is skipped with a
:class:`PluginLoadWarning` naming it and its distribution, and is listed in
``registry.failures`` (and by ``orchestrator providers``) — it never breaks the router.

Environment variables:

- ``ORCHESTRATOR_PLUGINS`` — allow list, comma-separated entry-point names; when set, only
  those load (set but empty: no external plugin loads).
- ``ORCHESTRATOR_DISABLE_PLUGINS`` — block list, comma-separated entry-point names.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator._secrets import get_logger
from orchestrator.errors import ConfigurationError

if TYPE_CHECKING:
    import pluggy

    from orchestrator.config import ProviderConfig
    from orchestrator.providers.base import BaseProvider
    from orchestrator.strategies import Strategy

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "ENV_ALLOW",
    "ENV_BLOCK",
    "PluginFailure",
    "PluginLoadWarning",
    "PluginRegistry",
    "ProviderInfo",
    "StrategyInfo",
    "default_registry",
]

ENTRY_POINT_GROUP = "orchestrator.providers"
ENV_ALLOW = "ORCHESTRATOR_PLUGINS"
ENV_BLOCK = "ORCHESTRATOR_DISABLE_PLUGINS"
#: Built-in behaviour, registered through the same hooks third parties use.
DEFAULT_PLUGINS = ("orchestrator.strategies", "orchestrator.providers.mock")

#: Packages that provide well-known providers, for "pip install ..." hints.
KNOWN_PACKAGES = {
    "gigachat": "orchestrator-gigachat",
    "GigaChatProvider": "orchestrator-gigachat",
    "yandexgpt": "orchestrator-yandexgpt",
    "YandexGPTProvider": "orchestrator-yandexgpt",
}

logger = get_logger("orchestrator.plugins")


class PluginLoadWarning(RuntimeWarning):
    """A plugin could not be loaded or registered and was skipped."""


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """A registered provider class."""

    name: str
    cls: type[BaseProvider]
    aliases: tuple[str, ...] = ()
    plugin: str = "builtin"
    distribution: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    """A registered strategy class."""

    name: str
    cls: type[Strategy]
    plugin: str = "builtin"


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """A plugin that was skipped, and why."""

    plugin: str
    distribution: str | None
    version: str | None
    reason: str


def _names_from_env(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


@dataclass
class _Source:
    plugin: str
    distribution: str | None = None
    version: str | None = None


@dataclass
class PluginRegistry:
    """Providers and strategies from built-ins and installed plugins.

    ``entry_points=False`` gives a registry with the built-ins only (what tests want).
    """

    entry_points: bool = True
    providers: dict[str, ProviderInfo] = field(default_factory=dict)
    strategies: dict[str, StrategyInfo] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    _aliases: dict[str, str] = field(default_factory=dict)
    _sources: dict[str, _Source] = field(default_factory=dict)
    _pm: pluggy.PluginManager | None = None
    _loaded: bool = False
    #: Bumped whenever a plugin is added, so routers know to re-check lifecycle hooks.
    version: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- loading --------------------------------------------------------------------------

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The pluggy manager holding every loaded plugin module."""
        self.load()
        assert self._pm is not None
        return self._pm

    def load(self) -> None:
        """Import built-ins and (unless disabled) entry-point plugins; runs once."""
        if self._loaded:
            return
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self._loaded:  # another thread finished loading while we waited for the lock
            return
        import pluggy

        from orchestrator import hookspecs

        pm = pluggy.PluginManager("orchestrator")
        pm.add_hookspecs(hookspecs)
        self._pm = pm
        for module_name in DEFAULT_PLUGINS:
            self._add_plugin(importlib.import_module(module_name), _Source("builtin"))
        if self.entry_points:
            self._load_entry_points()
        self._loaded = True

    def _load_entry_points(self) -> None:
        allow = _names_from_env(ENV_ALLOW)
        block = _names_from_env(ENV_BLOCK) or set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if (allow is not None and ep.name not in allow) or ep.name in block:
                logger.debug("plugin %s skipped by %s/%s", ep.name, ENV_ALLOW, ENV_BLOCK)
                continue
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            source = _Source(ep.name, dist, version)
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break the router
                self._fail(source, f"import failed: {type(exc).__name__}: {exc}")
                continue
            self._add_plugin(module, source)

    def _fail(self, source: _Source, reason: str) -> None:
        failure = PluginFailure(source.plugin, source.distribution, source.version, reason)
        self.failures.append(failure)
        where = f" (distribution {source.distribution})" if source.distribution else ""
        message = f"orchestrator plugin {source.plugin!r}{where} skipped: {reason}"
        logger.warning(message)
        warnings.warn(message, PluginLoadWarning, stacklevel=2)

    def register_plugin(self, module: Any, name: str | None = None) -> None:
        """Register a plugin object (module or instance with hookimpls) by hand."""
        self.load()
        self._add_plugin(module, _Source(name or str(getattr(module, "__name__", module))))

    def _add_plugin(self, module: Any, source: _Source) -> None:
        """Register ``module``'s hooks; all of its registrations apply, or none do."""
        assert self._pm is not None
        try:
            self._pm.register(module, name=f"{source.plugin}:{id(module)}")
        except Exception as exc:
            self._fail(source, f"hook validation failed: {exc}")
            return
        staged: list[Callable[[], None]] = []
        for hook_name, registrar in (
            ("register_providers", self._provider_registrar),
            ("register_strategies", self._strategy_registrar),
        ):
            for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not module:
                    continue
                try:
                    impl.function(register=registrar(source, staged))
                except Exception as exc:
                    self._pm.unregister(module)
                    self._fail(source, f"{hook_name} raised {type(exc).__name__}: {exc}")
                    return
        for apply in staged:
            apply()
        self.version += 1

    def _provider_registrar(
        self, source: _Source, staged: list[Callable[[], None]]
    ) -> Callable[..., None]:
        def register(
            cls: type[BaseProvider], name: str | None = None, aliases: Iterable[str] = ()
        ) -> None:
            from orchestrator.providers.base import BaseProvider

            if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):
                raise TypeError(f"{cls!r} is not a BaseProvider subclass")
            key = (name or cls.__name__).lower()
            existing = self.providers.get(self._aliases.get(key, key))
            if existing is not None and existing.cls is not cls:
                raise ValueError(
                    f"provider name {key!r} is already registered by {existing.plugin}"
                )
            info = ProviderInfo(
                key, cls, tuple(aliases), source.plugin, source.distribution, source.version
            )

            def apply() -> None:
                self.providers[key] = info
                for alias in info.aliases:
                    self._aliases[alias.lower()] = key

            staged.append(apply)

        return register

    def _strategy_registrar(
        self, source: _Source, staged: list[Callable[[], None]]
    ) -> Callable[..., None]:
        def register(cls: type[Strategy], name: str | None = None) -> None:
            key = (name or getattr(cls, "name", "") or cls.__name__).lower()
            if not callable(getattr(cls, "order", None)):
                raise TypeError(f"strategy {cls!r} has no order() method")
            existing = self.strategies.get(key)
            if existing is not None and existing.cls is not cls:
                raise ValueError(f"strategy {key!r} is already registered by {existing.plugin}")
            info = StrategyInfo(key, cls, source.plugin)
            staged.append(lambda: self.strategies.__setitem__(key, info))

        return register

    # -- lookups --------------------------------------------------------------------------

    def provider_info(self, name: str) -> ProviderInfo:
        """The provider registered as ``name`` (or an alias); ConfigurationError if none."""
        self.load()
        key = name.lower()
        key = self._aliases.get(key, key)
        info = self.providers.get(key)
        if info is None:
            installed = ", ".join(sorted(self.providers)) or "none"
            hint = KNOWN_PACKAGES.get(name) or KNOWN_PACKAGES.get(key)
            fix = f"; install it with `pip install {hint}`" if hint else ""
            raise ConfigurationError(
                f"Unknown provider {name!r}{fix}. Installed providers: {installed}"
            )
        return info

    def provider_class(self, class_name: str) -> type[BaseProvider] | None:
        """The registered provider class called ``class_name``, if any."""
        self.load()
        for info in self.providers.values():
            if info.cls.__name__ == class_name:
                return info.cls
        return None

    def create_provider(
        self, name: str, config: ProviderConfig | None = None, **settings: Any
    ) -> BaseProvider:
        """Instantiate the provider registered as ``name``.

        ``config`` may be a ``ProviderConfig`` (upgraded to the provider's config class), or
        omitted and given as keyword settings; ``name`` defaults to the registered name.
        """
        info = self.provider_info(name)
        if config is None:
            settings.setdefault("name", info.name)
            config = info.cls.config_class(**settings)
        elif settings:
            raise TypeError("pass either a config or keyword settings, not both")
        return info.cls(config)

    def strategy_class(self, name: str) -> type[Strategy]:
        """The strategy registered as ``name``; ValueError listing valid ones if unknown."""
        self.load()
        info = self.strategies.get(name.lower())
        if info is None:
            valid = ", ".join(sorted(self.strategies))
            raise ConfigurationError(f"Unknown strategy {name!r}. Valid strategies: {valid}")
        return info.cls


_default: PluginRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> PluginRegistry:
    """The process-wide registry (built-ins plus installed plugins), created lazily."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = PluginRegistry()
    return _default
