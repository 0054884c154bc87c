"""pytest plugin of orchestrator-core (registered through the ``pytest11`` entry point).

It must stay cheap to import: pytest loads it in every project that installs
orchestrator-core.
"""
