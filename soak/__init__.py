"""The chaos soak of the orchestrator: ``nox -s soak`` (``python -m soak --help``).

Both vendors' emulators and a second GigaChat emulator run on loopback; N requests, chats and
streams, go through one :class:`~orchestrator.Router` at concurrency 50 while the emulators
inject faults (rate limits with and without Retry-After, 5xx, connections reset mid-body,
slow first bytes, truncated streams, malformed lines, expired tokens, wrong-shape JSON), the
servers are stopped and restarted under it, and callers cancel requests (asyncio.wait_for,
asyncio.timeout, anyio scopes). Then it checks what a user relies on: no untyped error, no
hung request, no mixed or truncated-but-successful stream, usage as the vendor reported it,
and every connection, task and counter back at rest, with no ResourceWarning and flat memory.

Modules, one concept each: ``world`` (servers, providers, the router), ``faults`` (what is
injected), ``workload`` (one request and its judgement), ``chaos`` (the concurrent run),
``checks`` (resources at rest), ``matrix`` (each fault x provider, measured), ``report``.
"""
