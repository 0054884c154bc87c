"""The {{ cookiecutter.provider_name }} provider for the Multi-LLM Orchestrator.

Installing this package is all it takes: the orchestrator finds it through the
``orchestrator.providers`` entry point named ``{{ cookiecutter.provider_slug }}`` (see
``pyproject.toml``), which points at this module; the hook below registers the provider.

    from orchestrator import ProviderConfig, Router

    router = Router()
    router.add_provider(
        router.registry.create_provider("{{ cookiecutter.provider_slug }}", api_key="...")
    )
"""

from __future__ import annotations

from collections.abc import Callable

import orchestrator

from {{ cookiecutter.import_name }}.provider import {{ cookiecutter.class_name }}

__all__ = ["{{ cookiecutter.class_name }}", "register_providers"]
__version__ = "{{ cookiecutter.version }}"


@orchestrator.hookimpl
def register_providers(register: Callable[..., None]) -> None:
    """Register :class:`{{ cookiecutter.class_name }}` as ``{{ cookiecutter.provider_slug }}``."""
    register({{ cookiecutter.class_name }}, name="{{ cookiecutter.provider_slug }}")
