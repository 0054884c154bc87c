"""Providers: the contract, the built-in mock, and every installed provider by class name.

``from orchestrator.providers import GigaChatProvider`` works once ``orchestrator-gigachat``
is installed: installed provider classes are looked up in the plugin registry (its
``orchestrator.providers`` entry point registers them) — no need to edit this file.

Importing this package is cheap (names are imported on first use): it is also the built-in
plugin that registers the mock provider, and loading plugins imports no provider class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orchestrator.hookspecs import hookimpl
from orchestrator.lazy import lazy_exports

if TYPE_CHECKING:
    from orchestrator.config import ProviderConfig
    from orchestrator.providers.base import BaseProvider
    from orchestrator.providers.mock import MockConfig, MockProvider
    from orchestrator.types import GenerationParams

__all__ = ["BaseProvider", "GenerationParams", "MockConfig", "MockProvider", "ProviderConfig"]

_LAZY = {
    "BaseProvider": "orchestrator.providers.base",
    "GenerationParams": "orchestrator.types",
    "MockConfig": "orchestrator.providers.mock",
    "MockProvider": "orchestrator.providers.mock",
    "ProviderConfig": "orchestrator.config",
}
_lazy = lazy_exports(__name__, _LAZY)


@hookimpl
def register_providers(register: Callable[..., None]) -> None:
    """Register the built-in mock provider (named, so it is imported on first use)."""
    register("orchestrator.providers.mock:MockProvider", name="mock")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return _lazy(name)
    if not name[:1].isupper() or name.startswith("__"):
        raise AttributeError(f"module 'orchestrator.providers' has no attribute {name!r}")
    from orchestrator.plugins import KNOWN_PACKAGES, default_registry

    cls = default_registry().provider_class(name)
    if cls is not None:
        return cls
    # The original guide put providers in modules of this package: find one already imported.
    import sys

    for module_name, module in list(sys.modules.items()):
        if module_name.startswith(__name__ + ".") and isinstance(getattr(module, name, None), type):
            return getattr(module, name)
    package = KNOWN_PACKAGES.get(name)
    fix = (
        f"install it with `pip install {package}`"
        if package
        else "install the plugin package that provides it (it registers through the "
        "'orchestrator.providers' entry point)"
    )
    raise ImportError(f"cannot import name {name!r} from 'orchestrator.providers': {fix}")
