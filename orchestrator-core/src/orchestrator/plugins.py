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
A plugin may also name the class instead of importing it, ``register(
"orchestrator_myvendor.provider:MyVendorProvider", name="myvendor", emulator=...)``: it is
imported on first lookup, so loading the plugins (and ``orchestrator providers``) stays cheap;
if it fails to import then, the plugin counts as one that failed to load (see below).
The core validates what you register: a ``BaseProvider`` subclass, and a name and aliases
that no other provider (built-in ``mock`` included) already holds as a name or an alias.

Discovery is lazy: nothing is imported until a name is first looked up; it runs once per
registry. A plugin that fails to import or register — whatever it raises, ``SystemExit``
included; only ``KeyboardInterrupt`` stops the loading — is skipped: the core logs a warning
on the ``orchestrator.plugins`` logger naming it and its distribution, lists it in
``registry.failures`` (and ``orchestrator providers`` shows it), and a lookup of a name it
would have provided says why it is missing. Loading never raises and never warns through
:mod:`warnings` (so ``-W error`` cannot turn one broken plugin into a broken program).

Environment variables:

- ``ORCHESTRATOR_PLUGINS`` — allow list, comma-separated entry-point names; when set, only
  those load (set but empty: no external plugin loads). A name that matches no installed
  entry point is logged and listed in ``registry.failures``.
- ``ORCHESTRATOR_DISABLE_PLUGINS`` — block list, comma-separated entry-point names.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator._secrets import get_logger, redact
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
DEFAULT_PLUGINS = ("orchestrator.strategies", "orchestrator.providers")

#: Packages that provide well-known providers, for "pip install ..." hints.
KNOWN_PACKAGES = {
    "gigachat": "orchestrator-gigachat",
    "GigaChatProvider": "orchestrator-gigachat",
    "yandexgpt": "orchestrator-yandexgpt",
    "YandexGPTProvider": "orchestrator-yandexgpt",
}

logger = get_logger("orchestrator.plugins")


class PluginLoadWarning(RuntimeWarning):
    """Formerly emitted when a plugin was skipped; no longer emitted.

    A plugin that fails to load is logged on the ``orchestrator.plugins`` logger and listed
    in :attr:`PluginRegistry.failures` instead: a warning raised inside the loading (under
    ``-W error``) broke the isolation it reported. The class stays so existing
    ``warnings`` filters naming it keep working.
    """


@dataclass(frozen=True, slots=True)
class _ClassRef:
    """A provider class named as ``"module:QualName"``, imported on first use."""

    target: str
    emulator: str | None = None

    @classmethod
    def parse(cls, target: str, emulator: str | None) -> _ClassRef:
        module, sep, qualname = target.partition(":")
        parts = [*module.split("."), *qualname.split(".")]
        if not sep or not all(part.isidentifier() for part in parts):
            raise TypeError(
                f"{target!r} is neither a BaseProvider subclass nor a 'package.module:Class' "
                "reference to one"
            )
        if emulator is not None and not isinstance(emulator, str):
            raise TypeError(f"emulator of {target!r} must be a 'module:factory' string")
        return cls(target, emulator)

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def qualname(self) -> str:
        return self.target.partition(":")[2]

    def load(self) -> Any:
        """Import the module and return the object the reference names."""
        value: Any = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            value = getattr(value, part)
        return value


class ProviderInfo:
    """A registered provider: its name, aliases, the plugin (and distribution) that
    registered it, and its class.

    A plugin may name its class as ``"module:Class"`` instead of importing it (the shipped
    plugins do, so that loading the plugins, and ``orchestrator providers``, import no
    provider, pydantic or HTTP client): :attr:`cls` imports it on first use, while
    :attr:`class_path` and :attr:`emulator` are known without importing anything. A class
    that fails to import then is reported as the plugin's load failure (see
    :meth:`PluginRegistry.provider_info`).
    """

    __slots__ = ("_cls", "_load", "_ref", "aliases", "distribution", "name", "plugin", "version")

    name: str
    aliases: tuple[str, ...]
    plugin: str
    distribution: str | None
    version: str | None
    _cls: type[BaseProvider] | None
    _ref: _ClassRef | None
    _load: Callable[[ProviderInfo], type[BaseProvider]] | None

    def __init__(
        self,
        name: str,
        cls: type[BaseProvider] | str,
        aliases: tuple[str, ...] = (),
        plugin: str = "builtin",
        distribution: str | None = None,
        version: str | None = None,
        *,
        emulator: str | None = None,
        load: Callable[[ProviderInfo], type[BaseProvider]] | None = None,
    ) -> None:
        ref = _ClassRef.parse(cls, emulator) if isinstance(cls, str) else None
        for attr, value in (
            ("name", name),
            ("aliases", tuple(aliases)),
            ("plugin", plugin),
            ("distribution", distribution),
            ("version", version),
            ("_cls", None if ref is not None else cls),
            ("_ref", ref),
            ("_load", load),
        ):
            object.__setattr__(self, attr, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ProviderInfo is read-only: cannot set {name!r}")

    @property
    def cls(self) -> type[BaseProvider]:
        """The provider class (imported now if the plugin named it as ``module:Class``)."""
        cls: type[BaseProvider] | None = self._cls
        if cls is not None:
            return cls
        if self._load is not None:
            return self._load(self)
        cls = _checked_provider_class(self._ref.load() if self._ref else None, self.name)
        object.__setattr__(self, "_cls", cls)
        return cls

    @property
    def loaded(self) -> bool:
        """Whether :attr:`cls` is imported (always, for a plugin that registered a class)."""
        return self._cls is not None

    @property
    def class_path(self) -> str:
        """``module.QualName`` of the class, without importing it (the class's own once
        imported)."""
        if self._cls is not None:
            return f"{self._cls.__module__}.{self._cls.__qualname__}"
        assert self._ref is not None
        return f"{self._ref.module}.{self._ref.qualname}"

    @property
    def class_name(self) -> str:
        """The class's ``__name__``, without importing it."""
        if self._cls is not None:
            return self._cls.__name__
        assert self._ref is not None
        return self._ref.qualname.rpartition(".")[2]

    @property
    def emulator(self) -> str | None:
        """The class's ``emulator`` (``"module:factory"`` of its vendor's API emulator); until
        a class named as ``module:Class`` is imported, what its plugin declared."""
        if self._cls is not None:
            return self._cls.emulator
        assert self._ref is not None
        return self._ref.emulator

    @property
    def _identity(self) -> object:
        return self._ref.target if self._ref is not None else self._cls

    def _key(self) -> tuple[object, ...]:
        return (
            self.name,
            self._identity,
            self.aliases,
            self.plugin,
            self.distribution,
            self.version,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProviderInfo):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        what = self.class_path if self._cls is None else repr(self._cls)
        return (
            f"ProviderInfo(name={self.name!r}, cls={what}, aliases={self.aliases!r}, "
            f"plugin={self.plugin!r}, distribution={self.distribution!r}, "
            f"version={self.version!r})"
        )


def _same_class(a: ProviderInfo, b: ProviderInfo) -> bool:
    if a._cls is not None and b._cls is not None:
        return a._cls is b._cls
    return a.class_path == b.class_path


def _checked_provider_class(cls: object, name: str) -> type[BaseProvider]:
    from orchestrator.providers.base import BaseProvider

    if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):
        raise TypeError(f"{cls!r} (provider {name!r}) is not a BaseProvider subclass")
    return cls


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


@dataclass(frozen=True, slots=True)
class _Source:
    plugin: str
    distribution: str | None = None
    version: str | None = None


def _names_from_env(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is (or carries) a Ctrl-C, the one thing loading lets through."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    return isinstance(exc, BaseExceptionGroup) and exc.subgroup(KeyboardInterrupt) is not None


def _describe(exc: BaseException) -> str:
    """``Type: message`` for a plugin's exception, even if its ``__str__`` is broken."""
    try:
        text = str(exc)
    except Exception:  # a plugin's exception class can be as broken as the plugin
        text = "<unprintable>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PluginRegistry:
    """Providers and strategies from built-ins and installed plugins.

    ``entry_points=False`` gives a registry with the built-ins only (what tests want).
    :attr:`providers`, :attr:`strategies` and :attr:`failures` are filled by the first
    lookup (or :meth:`load`); :attr:`version` is bumped whenever a plugin is added, so
    routers know to re-check lifecycle hooks.
    """

    def __init__(self, entry_points: bool = True) -> None:
        self.entry_points = entry_points
        self.providers: dict[str, ProviderInfo] = {}
        self.strategies: dict[str, StrategyInfo] = {}
        self.failures: list[PluginFailure] = []
        self.version = 0
        self._aliases: dict[str, str] = {}
        #: Entry points left out by the allow or block list: name -> which variable.
        self._skipped: dict[str, str] = {}
        self._pm: pluggy.PluginManager | None = None
        self._loaded = False
        self._loading = False
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        state = "loaded" if self._loaded else "not loaded"
        return (
            f"<PluginRegistry {state}: {len(self.providers)} providers, "
            f"{len(self.strategies)} strategies, {len(self.failures)} failures>"
        )

    # -- loading --------------------------------------------------------------------------

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The pluggy manager holding every loaded plugin module."""
        self.load()
        assert self._pm is not None
        return self._pm

    def load(self) -> None:
        """Import built-ins and (unless disabled) entry-point plugins; runs once.

        Never raises for a plugin's sake: each entry point is isolated (anything it raises
        but ``KeyboardInterrupt`` is recorded in :attr:`failures`). A ``KeyboardInterrupt``
        leaves the registry as it was before, so a later ``load()`` starts afresh.
        """
        if self._loaded:
            return
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        # Loaded by another thread while we waited for the lock, or re-entered by a plugin
        # that looks a provider up while it is being imported (it sees what is loaded so far).
        if self._loaded or self._loading:
            return
        import pluggy

        from orchestrator import hookspecs

        before = (
            dict(self.providers),
            dict(self.strategies),
            list(self.failures),
            dict(self._aliases),
            dict(self._skipped),
            self.version,
        )
        self._loading = True
        try:
            pm = pluggy.PluginManager("orchestrator")
            pm.add_hookspecs(hookspecs)
            self._pm = pm
            for module_name in DEFAULT_PLUGINS:
                self._add_plugin(importlib.import_module(module_name), _Source("builtin"))
            if self.entry_points:
                self._load_entry_points()
            self._loaded = True
        except BaseException:  # Ctrl-C (or a bug of the core): no half-loaded registry
            self._pm = None
            self.providers, self.strategies, self.failures = before[0], before[1], before[2]
            self._aliases, self._skipped, self.version = before[3], before[4], before[5]
            raise
        finally:
            self._loading = False

    def _load_entry_points(self) -> None:
        allow = _names_from_env(ENV_ALLOW)
        block = _names_from_env(ENV_BLOCK) or set()
        try:
            points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        except BaseException as exc:  # broken installed metadata
            if _is_interrupt(exc):
                raise
            self._fail(_Source(ENTRY_POINT_GROUP), f"listing entry points failed: {_describe(exc)}")
            return
        for ep in points:
            name = str(getattr(ep, "name", "?"))
            if allow is not None and name not in allow:
                self._skipped[name.lower()] = ENV_ALLOW
                logger.debug("plugin %s skipped: not in %s", name, ENV_ALLOW)
                continue
            if name in block:
                self._skipped[name.lower()] = ENV_BLOCK
                logger.debug("plugin %s skipped: listed in %s", name, ENV_BLOCK)
                continue
            self._load_entry_point(ep, name)
        if allow:
            found = {str(getattr(ep, "name", "")) for ep in points}
            installed = ", ".join(sorted(found)) or "none"
            for missing in sorted(allow - found):
                self._fail(
                    _Source(missing),
                    f"{ENV_ALLOW} names {missing!r}, but no installed plugin has that "
                    f"entry-point name (installed: {installed}); fix the spelling or install it",
                )

    def _load_entry_point(self, ep: Any, name: str) -> None:
        """Import and register one entry point; whatever it raises is recorded, not raised."""
        source = _Source(name)
        stage = "import"
        try:
            dist = getattr(ep, "dist", None)
            if dist is not None:
                source = _Source(name, dist.name, dist.version)
            module = ep.load()
            stage = "registration"
            self._add_plugin(module, source)
        except BaseException as exc:  # SystemExit, GeneratorExit, CancelledError, ... too
            if _is_interrupt(exc):
                raise
            self._fail(source, f"{stage} failed: {_describe(exc)}", exc)

    def _fail(self, source: _Source, reason: str, exc: BaseException | None = None) -> None:
        """Record and log a skipped plugin. Never raises and never warns: it runs inside
        the loading, where a raised warning (``-W error``) would break the isolation."""
        reason = redact(reason)
        self.failures.append(
            PluginFailure(source.plugin, source.distribution, source.version, reason)
        )
        where = ""
        if source.distribution:
            version = f" {source.version}" if source.version else ""
            where = f" (distribution {source.distribution}{version})"
        logger.warning("orchestrator plugin %r%s skipped: %s", source.plugin, where, reason)
        if exc is not None:
            logger.debug("orchestrator plugin %r traceback", source.plugin, exc_info=exc)

    def register_plugin(self, module: Any, name: str | None = None) -> None:
        """Register a plugin object (module or instance with hookimpls) by hand.

        Like an entry point, a plugin that fails to register is recorded in
        :attr:`failures` and logged rather than raised.
        """
        self.load()
        with self._lock:
            self._add_plugin(module, _Source(name or str(getattr(module, "__name__", module))))

    def _add_plugin(self, module: Any, source: _Source) -> None:
        """Register ``module``'s hooks; all of its registrations apply, or none do."""
        assert self._pm is not None
        pm = self._pm
        try:
            pm.register(module, name=f"{source.plugin}:{id(module)}")
        except BaseException as exc:  # pluggy reads the plugin's attributes: its code runs
            if _is_interrupt(exc):
                raise
            self._fail(source, f"hook validation failed: {_describe(exc)}", exc)
            return
        staged: list[Callable[[], None]] = []
        claims: dict[str, ProviderInfo] = {}  # the names and aliases this plugin takes
        for hook_name, registrar in (
            ("register_providers", self._provider_registrar(source, staged, claims)),
            ("register_strategies", self._strategy_registrar(source, staged)),
        ):
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not module:
                    continue
                try:
                    impl.function(register=registrar)
                except BaseException as exc:  # SystemExit too: see the module docstring
                    pm.unregister(module)
                    if _is_interrupt(exc):
                        raise
                    self._fail(source, f"{hook_name} raised {_describe(exc)}", exc)
                    return
        for apply in staged:
            apply()
        self.version += 1

    def _owner(self, name: str, claims: dict[str, ProviderInfo]) -> ProviderInfo | None:
        """Who holds ``name`` as a name or an alias, if anyone."""
        key = name if name in self.providers else self._aliases.get(name)
        if key is not None:
            return self.providers[key]
        return claims.get(name)

    def _provider_registrar(
        self, source: _Source, staged: list[Callable[[], None]], claims: dict[str, ProviderInfo]
    ) -> Callable[..., None]:
        def register(
            cls: type[BaseProvider] | str,
            name: str | None = None,
            aliases: Iterable[str] = (),
            emulator: str | None = None,
        ) -> None:
            if isinstance(cls, str):  # "module:Class": imported on first use, not now
                class_name = _ClassRef.parse(cls, emulator).qualname.rpartition(".")[2]
            else:
                from orchestrator.providers.base import BaseProvider

                if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):
                    raise TypeError(f"{cls!r} is not a BaseProvider subclass")
                if emulator is not None:
                    raise TypeError(
                        "emulator= goes with a provider named as 'module:Class'; a class "
                        f"declares its own (set {cls.__qualname__}.emulator)"
                    )
                class_name = cls.__name__
            if isinstance(aliases, str):
                raise TypeError(f"aliases must be a tuple of names, not the string {aliases!r}")
            key = (name or class_name).lower()
            names = [key]
            for alias in aliases:
                if not isinstance(alias, str) or not alias.strip():
                    raise TypeError(f"alias {alias!r} of provider {key!r} is not a name")
                if alias.lower() not in names:
                    names.append(alias.lower())
            info = ProviderInfo(
                key,
                cls,
                tuple(names[1:]),
                source.plugin,
                source.distribution,
                source.version,
                emulator=emulator,
                load=self._resolve,
            )
            # Names and aliases share one namespace: none may take over another provider's.
            for taken in names:
                holder = self._owner(taken, claims)
                if holder is None:
                    continue
                owner, plugin = holder.name, holder.plugin
                if owner == key and _same_class(holder, info):
                    continue  # the same class registered again under the same name
                label = (
                    f"provider name {taken!r}"
                    if taken == key
                    else f"alias {taken!r} of provider {key!r}"
                )
                role = "a provider name" if taken == owner else f"an alias of {owner!r}"
                raise ValueError(
                    f"{label} is already registered by {plugin} (as {role}); choose another"
                )
            for taken in names:
                claims[taken] = info

            def apply() -> None:
                self.providers[key] = info
                for alias in info.aliases:
                    self._aliases[alias] = key

            staged.append(apply)

        return register

    def _strategy_registrar(
        self, source: _Source, staged: list[Callable[[], None]]
    ) -> Callable[..., None]:
        pending: dict[str, type[Strategy]] = {}

        def register(cls: type[Strategy], name: str | None = None) -> None:
            key = (name or getattr(cls, "name", "") or cls.__name__).lower()
            if not callable(getattr(cls, "order", None)):
                raise TypeError(f"strategy {cls!r} has no order() method")
            existing = self.strategies.get(key)
            if existing is not None and existing.cls is not cls:
                raise ValueError(f"strategy {key!r} is already registered by {existing.plugin}")
            if pending.get(key, cls) is not cls:
                raise ValueError(f"strategy {key!r} is registered twice by {source.plugin}")
            pending[key] = cls
            info = StrategyInfo(key, cls, source.plugin)
            staged.append(lambda: self.strategies.__setitem__(key, info))

        return register

    # -- lookups --------------------------------------------------------------------------

    def provider_info(self, name: str) -> ProviderInfo:
        """The provider registered as ``name`` (or an alias), its class imported;
        ConfigurationError if none.

        The error says why when it can: the plugin that would provide ``name`` failed to
        load (and its reason; a class its plugin named as ``module:Class`` that fails to
        import now counts as such a failure), or was left out by the allow or block list.
        """
        self.load()
        key = name.lower()
        key = self._aliases.get(key, key)
        info = self.providers.get(key)
        if info is None:
            raise ConfigurationError(self._unknown_provider(name, key))
        if not info.loaded:
            self._resolve(info, asked=name)
        return info

    def load_provider_classes(self) -> None:
        """Import every provider class a plugin named as ``module:Class``; one that fails to
        import is removed from :attr:`providers` and its plugin recorded in :attr:`failures`
        (never raises, like :meth:`load`). For code that needs every class, e.g. to ask each
        for its settings; ``orchestrator providers --check`` runs it."""
        self.load()
        for info in list(self.providers.values()):
            if not info.loaded:
                with contextlib.suppress(ConfigurationError):
                    self._resolve(info)

    def _resolve(self, info: ProviderInfo, asked: str | None = None) -> type[BaseProvider]:
        """Import the class of a provider its plugin named as ``module:Class``.

        If it fails to import (or is no ``BaseProvider`` subclass), the provider is removed
        and its plugin recorded in :attr:`failures`, as if the plugin had failed to load;
        ConfigurationError says why.
        """
        with self._lock:
            if info._cls is not None:
                return info._cls
            ref = info._ref
            assert ref is not None
            stage = "import"
            try:
                value = ref.load()
                stage = "registration"
                cls = _checked_provider_class(value, info.name)
            except BaseException as exc:  # like a plugin's import: anything but Ctrl-C
                if _is_interrupt(exc):
                    raise
                failure = self._drop(info, f"{stage} failed: {_describe(exc)}", exc)
                raise ConfigurationError(
                    self._failed_provider(asked or info.name, failure)
                ) from None
            object.__setattr__(info, "_cls", cls)
            return cls

    def _drop(self, info: ProviderInfo, reason: str, exc: BaseException) -> PluginFailure:
        """Remove a provider whose class failed to import; record (once) and return why."""
        if self.providers.get(info.name) is info:
            del self.providers[info.name]
            for alias in info.aliases:
                if self._aliases.get(alias) == info.name:
                    del self._aliases[alias]
        source = _Source(info.plugin, info.distribution, info.version)
        for failure in self.failures:
            if (failure.plugin, failure.distribution, failure.version) == (
                source.plugin,
                source.distribution,
                source.version,
            ) and failure.reason == redact(reason):
                return failure
        self._fail(source, reason, exc)
        return self.failures[-1]

    def _failed_provider(self, name: str, failure: PluginFailure) -> str:
        installed = ", ".join(sorted(self.providers)) or "none"
        where = f" (distribution {failure.distribution})" if failure.distribution else ""
        return (
            f"Provider {name!r} is not available: plugin {failure.plugin!r}{where} "
            f"failed to load: {failure.reason}. Fix or reinstall it "
            "(`orchestrator providers --check` lists load failures). "
            f"Installed providers: {installed}"
        )

    def _unknown_provider(self, name: str, key: str) -> str:
        installed = ", ".join(sorted(self.providers)) or "none"
        package = KNOWN_PACKAGES.get(name) or KNOWN_PACKAGES.get(key)
        candidates = {key, f"orchestrator-{key}", f"orchestrator_{key}"}
        if package:
            candidates.add(package)
        for failure in self.failures:
            dist = (failure.distribution or "").lower()
            if failure.plugin.lower() in candidates or dist in candidates:
                return self._failed_provider(name, failure)
        skipped_by = self._skipped.get(key)
        if skipped_by is not None:
            return (
                f"Provider {name!r} is not available: plugin {key!r} is installed but "
                f"{skipped_by} leaves it out; change {skipped_by} to load it. "
                f"Installed providers: {installed}"
            )
        fix = f"; install it with `pip install {package}`" if package else ""
        failed = ""
        if self.failures:
            plugins = ", ".join(sorted({f.plugin for f in self.failures}))
            failed = (
                f" ({len(self.failures)} plugin load failure(s): {plugins}; "
                "see `orchestrator providers`)"
            )
        return f"Unknown provider {name!r}{fix}. Installed providers: {installed}{failed}"

    def provider_class(self, class_name: str) -> type[BaseProvider] | None:
        """The registered provider class called ``class_name``, if any (only that class is
        imported; one that fails to import is recorded in :attr:`failures`)."""
        self.load()
        for info in list(self.providers.values()):
            if info.class_name == class_name:
                with contextlib.suppress(ConfigurationError):
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
