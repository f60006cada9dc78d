"""What the handlers of both faces (the API and the console) read from a request: the
governance container the app holds, the principal the guard let in, the caller's address,
and a way to run the synchronous service layer (in the caller's name) without blocking the
event loop.

Plain functions rather than Litestar `Provide` dependencies: each is a lookup on the
request, and the dependency machinery costs time on every call (bench/RESULTS.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anyio import to_thread
from litestar import Request
from litestar.connection import ASGIConnection

from governance.bootstrap import Governance
from governance.services.people import Principal


def governance_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Governance:
    """The services, stores and settings the app was built with (app.py)."""
    governance: Governance = connection.app.state.governance
    return governance


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    """Who is calling: set by the bearer middleware (API) or the session guard (console)."""
    principal: Principal = request.user
    return principal


def client_address(request: Request[Any, Any, Any]) -> str | None:
    """The peer's address: behind a proxy, the proxy's (the per-address wait is then shared)."""
    return request.client.host if request.client else None


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Database and CPU work off the event loop: the service layer is synchronous."""
    return await to_thread.run_sync(lambda: function(*args))


async def as_caller(request: Request[Any, Any, Any], action: Callable[..., Any], *args: Any) -> Any:
    """`in_thread` for a service function that works in someone's name: each takes that
    principal first (its permission check, its audit event or the rows it shows depend on
    them), and a handler always works in the name of whoever is calling."""
    return await in_thread(action, principal_of(request), *args)
