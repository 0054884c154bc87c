"""Where the router comes from, and how LangChain's synchronous calls reach it.

LangChain calls the sync methods (``invoke``, ``stream``, ``batch``) from plain threads,
thread pools and code that already runs an event loop (a notebook cell), and the async ones
from asyncio. Async calls run the router on the caller's loop. Sync calls go through a
:class:`~orchestrator.SyncRouter`: one background event loop per router, shared by every
chat model and embeddings object over that router, so connection pools are reused and no
HTTP client is ever used from a loop it was not made on (``asyncio.run`` per call would
start a loop and a TLS handshake each time, and refuses to run inside a notebook's loop).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from orchestrator import Router, SyncRouter

__all__ = ["resolve_router", "sync_router"]

_lock = threading.Lock()
_sync_routers: weakref.WeakKeyDictionary[Router, SyncRouter] = weakref.WeakKeyDictionary()


def resolve_router(router: Any, config: Any) -> tuple[Router, SyncRouter | None]:
    """The router to use: ``router`` (a Router or a SyncRouter), or one built from
    ``config`` (a TOML path or a dict), or from the environment when both are None."""
    if router is not None and config is not None:
        raise ValueError("give either router= or config=, not both")
    if isinstance(router, SyncRouter):
        return router.router, router
    if isinstance(router, Router):
        return router, None
    if router is not None:
        raise TypeError(
            f"router must be an orchestrator Router or SyncRouter, got {type(router).__name__}"
        )
    if config is not None:  # a path or a dict (the models' fields say so)
        return Router.from_config(config), None
    return Router.from_env(), None


def sync_router(router: Router, given: SyncRouter | None) -> SyncRouter:
    """The SyncRouter that serves ``router``'s synchronous calls (the one the user gave, or
    one shared per router, closed at interpreter exit)."""
    if given is not None:
        return given
    with _lock:
        runner = _sync_routers.get(router)
        if runner is None or runner.closed:
            runner = _sync_routers[router] = SyncRouter(router)
        return runner
