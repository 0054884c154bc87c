"""The orchestrator's provider contract, run against the kit's fake OpenAI-compatible server.

Every standard test runs on asyncio and on trio. A test you cannot pass yet must be
overridden and marked ``@pytest.mark.xfail(reason=...)``; deleting one fails.
"""

from orchestrator.testing import ProviderContract

from {{ cookiecutter.import_name }} import (
    {{ cookiecutter.class_name }},
)


class TestContract(ProviderContract):
    provider_class = {{ cookiecutter.class_name }}
    entry_point = "{{ cookiecutter.provider_slug }}"
