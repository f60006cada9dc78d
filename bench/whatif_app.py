"""A what-if for bench/admission.py: the governance app exactly as `governance serve` builds
it, except that the authorization guard is an `async def`.

Litestar runs a synchronous guard in its thread pool (`ensure_async_callable` wraps it in
`sync_to_thread`), so today every API request hops to a worker thread and back just to
look up a cached casbin answer. This module measures what an async guard would save,
without touching the product code: it swaps the guard in `governance.web.api`'s namespace
before the router is built.

    GOVERNANCE_HOME=… GOVERNANCE_DATABASE_URL=… .venv/bin/python -m uvicorn \
        whatif_app:app_from_env --factory --app-dir bench --workers 2 --log-level warning
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

import governance.web.api as api
from governance.config import Settings
from governance.web.app import create_app
from governance.web.auth import authorize


async def authorize_async(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The product's guard, awaited on the event loop instead of a worker thread."""
    authorize(connection, handler)


def create_whatif_app(settings: Settings, run_jobs: bool = True) -> Litestar:
    api.authorize = authorize_async  # type: ignore[assignment]
    try:
        return create_app(settings, run_jobs=run_jobs)
    finally:
        api.authorize = authorize


def app_from_env() -> Litestar:
    return create_whatif_app(Settings.from_env())
