"""The {{ cookiecutter.provider_name }} provider for the Multi-LLM Orchestrator.

Installing this package is all it takes: the orchestrator finds it through its entry point in
the ``orchestrator.providers`` group (see ``pyproject.toml``), which points at this module;
the hook below registers the provider under the entry point's name::

    from orchestrator import Router

    NAME = "{{ cookiecutter.provider_slug }}"
    router = Router()
    router.add_provider(router.registry.create_provider(NAME, api_key="..."))
"""

from __future__ import annotations

from collections.abc import Callable

import orchestrator

from {{ cookiecutter.import_name }}.provider import (
    {{ cookiecutter.class_name }},
)

__all__ = ["{{ cookiecutter.class_name }}", "register_providers"]
__version__ = "{{ cookiecutter.version }}"


@orchestrator.hookimpl
def register_providers(register: Callable[..., None]) -> None:
    """Register the provider class under the package's entry-point name."""
    register(
        {{ cookiecutter.class_name }},
        name="{{ cookiecutter.provider_slug }}",
    )
