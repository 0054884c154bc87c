"""Names of a package imported on first use (PEP 562), for the core and for plugins.

A plugin's package is imported whenever a registry loads plugins (every ``Router()``, and
``orchestrator providers``); exporting its provider class lazily keeps that from importing
the provider, pydantic and httpx::

    from orchestrator.lazy import lazy_exports

    __getattr__ = lazy_exports(__name__, {"AcmeProvider": "orchestrator_acme.provider"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each of ``names`` (name ->
    the module defining it) on first use and keeps it in the package, so the next use is a
    plain attribute; any other name raises ``AttributeError``."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
